"""The VM stage's interface: a backend boots both kernels and brings two captures back.

Backends (syzkaller ``vm/`` style) sit behind one ``Backend`` protocol and a registry:
``qemu`` (``vm/orchestrate.py``, the default) and ``vagrant`` (``vm/vagrant.py``). A
backend only captures: diffing and rendering belong to the pipeline
(``regress.gate.pipeline``), which calls a backend once per comparison. Options that
must agree between ``run``, ``ci`` and ``selftest`` -- the defaults and the VM shape --
live in ``RunOptions`` here, so the three commands produce comparable captures.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from regress.errors import UsageError, VMError
from regress.guest.agent import spec_to_job
from regress.guest.discover import Discovery
from regress.model.capture import Capture, MachineInfo, capture_from_dict
from regress.model.events import Progress
from regress.model.paths import REPORTS_DIR, safe_component
from regress.model.workload import WorkloadSpec, resolve_workload
from regress.vm import kernels

DEFAULT_OLD = "debian:6.1.0-47-cloud-amd64"
DEFAULT_NEW = "debian:6.1.0-56-cloud-amd64"
DEFAULT_WORKLOAD = "ps-loop"
DEFAULT_RUNS = 5
MAX_RUNS = 10_000


def default_cpus() -> int:
    """vCPUs per guest: 1 on hosts with < 4 cores, else 2.

    Old and new boot in parallel and a TCG vCPU keeps a host core busy; on this 2-core
    machine one vCPU per guest used 25% less host CPU for the same ps-loop runs (28 vs
    37 s user, 2026-11-24) and never waits for a descheduled sibling vCPU.
    """
    return 1 if (os.cpu_count() or 1) < 4 else 2


@dataclass(frozen=True)
class KernelPaths:
    """A user-built kernel given as paths."""

    bzimage: Path
    modules: Path
    headers: Path | None = None
    label: str = ""  # how reports name this side (default: the bzImage's path)


@dataclass
class RunOptions:
    """One two-kernel comparison as the VM stage runs it; CLI defaults come from here."""

    old: str = DEFAULT_OLD
    new: str = DEFAULT_NEW
    old_paths: KernelPaths | None = None
    new_paths: KernelPaths | None = None
    workload: str = DEFAULT_WORKLOAD
    runs: int = DEFAULT_RUNS
    iterations: int | None = None
    functions: list[str] | None = None
    function_returns: bool = False  # also count what the functions return (kretprobes)
    tracepoints: list[str] | None = None
    fresh_boot_per_run: bool = False
    timeout_s: float | None = None  # per boot; None: derived from the workload
    out_dir: Path | None = None
    accel: str = "auto"
    cpus: int = field(default_factory=lambda: default_cpus())  # same shape for run/ci/selftest
    mem_mb: int = 2048
    append: list[str] = field(default_factory=list)
    parallel: bool = True  # boot old and new at the same time (each VM keeps its own CPUs)
    # Positive control (regress selftest): ``regress.guest.faults.FaultSpec.to_job()``, loaded by
    # the agent in the NEW kernel's guests only and recorded in that capture's notes.
    fault: dict[str, Any] | None = None


@dataclass
class CapturePair:
    """What a backend hands the pipeline: both captures, and how the boots went."""

    out_dir: Path
    captures: dict[str, Path]  # "old" / "new" -> complete capture file
    boots: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Backend(Protocol):
    """Boots each kernel of a comparison and runs the guest agent there."""

    name: str

    def capture_pair(
        self,
        opts: RunOptions,
        progress: Progress,
        cancel: threading.Event | None = None,
    ) -> CapturePair:
        """Both sides' complete captures under ``out_dir(opts)``; raises on a failed side."""
        ...

    def dry_run_lines(self, opts: RunOptions) -> list[str]:
        """Exactly what ``capture_pair`` would run, as shell lines; fetches and builds nothing."""
        ...

    def discover_pair(
        self, opts: RunOptions, syscalls: list[str], max_functions: int, progress: Progress
    ) -> dict[str, Discovery]:
        """The functions the workload runs under ``syscalls`` on each kernel (narrowing)."""
        ...


_REGISTRY: dict[str, Callable[[], Backend]] = {}


def register(name: str, factory: Callable[[], Backend]) -> None:
    _REGISTRY[name] = factory


def get(name: str) -> Backend:
    _load_builtin()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise UsageError(
            f"unknown backend {name!r} (choose from {', '.join(sorted(_REGISTRY))})"
        ) from None


def _load_builtin() -> None:
    # The built-in backends register themselves on import (kept lazy: they import us).
    from regress.vm import orchestrate, vagrant  # noqa: F401


def _release_hint(ref: str) -> str:
    m = re.match(r"^debian:(\d+\.\d+\.\d+-\d+)", ref)
    return m.group(1) if m else re.sub(r"[^A-Za-z0-9.-]+", "_", Path(ref).name)[:40]


def default_out_dir(opts: RunOptions, spec_name: str) -> Path:
    old = _release_hint(str(opts.old_paths.bzimage) if opts.old_paths else opts.old)
    new = _release_hint(str(opts.new_paths.bzimage) if opts.new_paths else opts.new)
    name = safe_component(f"{spec_name}-{old}-vs-{new}", limit=120)
    return REPORTS_DIR / name


def load_workload(opts: RunOptions) -> WorkloadSpec:
    spec = resolve_workload(opts.workload)
    if opts.iterations is not None:
        spec = spec.with_iterations(opts.iterations)
    if opts.function_returns:
        spec = spec.with_function_returns()
    return spec


def validate(opts: RunOptions) -> None:
    if not 1 <= opts.runs <= MAX_RUNS:
        raise UsageError(f"--runs must be between 1 and {MAX_RUNS}")
    if opts.cpus < 1 or opts.mem_mb < 256:
        raise UsageError("--cpus must be >= 1 and --mem >= 256 (MB)")
    if opts.timeout_s is not None and opts.timeout_s <= 0:
        raise UsageError("--timeout must be positive")
    if opts.accel not in ("auto", "kvm", "tcg"):
        raise UsageError("--accel must be auto, kvm or tcg")
    for ref, paths in ((opts.old, opts.old_paths), (opts.new, opts.new_paths)):
        if paths is None:
            kernels.parse_debian_ref(ref)


def out_dir_for(opts: RunOptions) -> Path:
    """Where a comparison's captures, logs and reports go."""
    return opts.out_dir or default_out_dir(opts, load_workload(opts).name)


def guest_job(
    opts: RunOptions, spec: WorkloadSpec, machine: MachineInfo, runs: int, boot: int
) -> dict[str, Any]:
    return {
        "kind": "capture",
        "boot": boot,
        "runs": runs,
        "workload": spec_to_job(spec),
        "functions": opts.functions,
        "tracepoints": opts.tracepoints,
        "machine": {**machine.shape(), "hostname": machine.hostname},
    }


def merge_boots(
    parts: list[tuple[int, dict[str, Any]]], requested: int, source: str
) -> Capture | None:
    """One capture from the per-boot captures, runs renumbered and tagged with their boot."""
    base: Capture | None = None
    for boot, doc in parts:
        cap = capture_from_dict(doc, source=f"{source} boot {boot}")
        if base is None:
            base = replace(cap, runs=[], requested_runs=requested)
        elif cap.tracer.fingerprint != base.tracer.fingerprint:
            raise VMError(f"{source}: boot {boot} ran a different tracer than boot 0")
        for run in cap.runs:
            base.runs.append(replace(run, index=len(base.runs), boot=boot))
    return base

"""The QEMU backend: old and new kernel, each booted in a VM, one capture each.

Steps: resolve/fetch both kernels, build (or reuse) the guest image, then per kernel one
boot running all runs (or ``fresh_boot_per_run``: one boot per run), merging the runs
into ``old.json`` / ``new.json`` under the output directory. A capture is written only
when complete; what a failed boot did finish is kept as ``<side>.partial.json`` (its
``complete`` flag is False), and the other kernel's finished capture is kept as well.

Core code: reports progress through a callback and raises ``regress.errors`` classes.
Diffing and rendering are the pipeline's (``regress.gate.pipeline``), not this module's.
"""

from __future__ import annotations

import shlex
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from regress import errors
from regress.errors import RegressError, VMError
from regress.guest.agent import spec_to_job
from regress.guest.discover import Discovery
from regress.guest.modfault import MODULE_FILE
from regress.model.capture import MachineInfo, save_capture
from regress.model.events import Event, Progress, ignore
from regress.model.paths import cache_root
from regress.model.workload import WorkloadSpec
from regress.vm import backend, image, kernels, modbuild, qemu
from regress.vm.backend import (
    CapturePair,
    KernelPaths,
    RunOptions,
    default_cpus,
    guest_job,
    load_workload,
    merge_boots,
    out_dir_for,
    validate,
)
from regress.vm.kernels import Kernel


@dataclass
class Side:
    """One kernel of the comparison and where its files go."""

    name: str  # "old" / "new"
    ref: str
    paths: KernelPaths | None
    kernel: Kernel | None = None


def boot_timeout(opts: RunOptions, spec: WorkloadSpec, runs_in_boot: int) -> float:
    """Per-boot limit: boot + bcc compile, then ~6x the measured TCG cost per iteration.

    A hang is only noticed at this limit, so it is not the sum of the spec's per-iteration
    timeouts (those are enforced in the guest by the runner).
    """
    if opts.timeout_s is not None:
        return opts.timeout_s
    return 180.0 + runs_in_boot * (30.0 + spec.iterations * 1.0)


def _kernel_for(side: Side, progress: Progress) -> Kernel:
    if side.paths is not None:
        progress(Event("stage", side=side.name, message=f"{side.name}: kernel from paths"))
        return kernels.from_paths(
            side.paths.bzimage,
            side.paths.modules,
            side.paths.headers,
            label=side.paths.label or str(side.paths.bzimage),
        )
    release = kernels.resolve_release(side.ref)
    hit = kernels.cached(release)
    if hit is not None:
        return hit
    progress(Event("stage", side=side.name, message=f"fetching {side.ref} with apt"))
    return kernels.fetch_debian(side.ref)


def _machine(opts: RunOptions, accel: str) -> MachineInfo:
    return MachineInfo(
        backend="qemu",
        arch="x86_64",
        cpus=opts.cpus,
        mem_mb=opts.mem_mb,
        accel=accel,
        hostname="regress-guest",
    )


def boot_config(
    opts: RunOptions,
    kernel: Kernel,
    root: Path,
    work: Path,
    side: str,
    boot: int,
    accel: str,
    timeout_s: float,
    *,
    initrd: Path | None = None,
    kdisk: Path | None = None,
) -> qemu.BootConfig:
    return qemu.BootConfig(
        kernel=kernel,
        root_image=root,
        kernel_disk=kdisk or kernel.vmlinuz.parent / "kernel.ext4",
        initrd=initrd or image.initramfs(kernel),
        job_disk=work / f"{side}-boot{boot}.job.tar",
        result_disk=work / f"{side}-boot{boot}.result.img",
        console_log=work / f"{side}-boot{boot}.console.log",
        accel=accel,
        cpus=opts.cpus,
        mem_mb=opts.mem_mb,
        append=list(opts.append),
        timeout_s=timeout_s,
    )


def boot_command(
    kernel: Kernel,
    command: list[str],
    work: Path,
    *,
    timeout: float = 600,
    append: list[str] | None = None,
    what: str = "command boot",
    cpus: int | None = None,
    extra: dict[str, bytes] | None = None,
) -> qemu.BootResult:
    """Boot ``kernel`` once and run ``command`` in the guest (benchmarks, guest-side tests).

    ``extra`` files land in the guest's /job. The result's ``result["command"]`` holds
    rc/stdout/stderr; a panic, hang or agent
    failure raises ``VMError`` naming the console log under ``work``.
    """
    root = image.build_root_image()
    opts = RunOptions(cpus=cpus or default_cpus(), append=list(append or []))
    cfg = boot_config(
        opts,
        kernel,
        root.path,
        work,
        "command",
        0,
        qemu.choose_accel().name,
        timeout,
        initrd=image.initramfs(kernel),
        kdisk=image.kernel_disk(kernel),
    )
    qemu.write_job_disk(
        cfg.job_disk, {"kind": "command", "command": command, "timeout_s": timeout}, extra=extra
    )
    qemu.new_result_disk(cfg.result_disk)
    res = qemu.boot(cfg)
    failure = qemu.failure_of(res, what=what)
    if failure is not None:
        raise failure
    return res


def discover_functions(
    kernel: Kernel,
    spec: WorkloadSpec,
    syscalls: list[str],
    work: Path,
    opts: RunOptions,
    *,
    max_functions: int,
    side: str = "discover",
) -> Discovery:
    """Boot ``kernel`` once and list the functions ``spec`` runs under ``syscalls``
    (``regress.guest.discover``; function_graph in the guest)."""
    root = image.build_root_image()
    work.mkdir(parents=True, exist_ok=True)
    cfg = boot_config(
        opts,
        kernel,
        root.path,
        work,
        side,
        0,
        qemu.choose_accel(opts.accel).name,
        boot_timeout(opts, spec, 1),
        initrd=image.initramfs(kernel),
        kdisk=image.kernel_disk(kernel),
    )
    job = {
        "kind": "discover",
        "workload": spec_to_job(spec),
        "syscalls": list(syscalls),
        "max_functions": max_functions,
    }
    qemu.write_job_disk(cfg.job_disk, job)
    qemu.new_result_disk(cfg.result_disk)
    res = qemu.boot(cfg)
    cfg.job_disk.unlink(missing_ok=True)
    cfg.result_disk.unlink(missing_ok=True)
    what = f"function discovery on {kernel.release}"
    failure: RegressError | None = qemu.failure_of(res, what=what)
    result = res.result or {}
    if failure is None and result.get("state") == "failed":
        failure = _agent_error(result, what, cfg.console_log)
    if failure is not None:
        raise failure
    return Discovery.from_dict(result.get("discovery") or {})


def _agent_error(result: dict[str, Any], what: str, log: Path) -> RegressError:
    """The guest's exception, re-raised on the host as the same class, naming the log."""
    err = result.get("error") or {}
    cls = getattr(errors, str(err.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, RegressError)):
        cls = VMError
    message = f"{what}: {err.get('message') or 'agent failed'}; console log: {log}"
    return cls(message, hint=err.get("hint"))


def run_side(
    opts: RunOptions,
    spec: WorkloadSpec,
    side: Side,
    root: Path,
    out_dir: Path,
    accel: qemu.Accel,
    progress: Progress,
    boots_log: list[dict[str, Any]],
    cancel: threading.Event | None = None,
) -> Path:
    """All boots of one kernel; returns the path of its complete capture."""
    assert side.kernel is not None
    kernel = side.kernel
    kdisk = image.kernel_disk(kernel)
    initrd = image.initramfs(kernel)
    machine = _machine(opts, accel.name)
    per_boot = [1] * opts.runs if opts.fresh_boot_per_run else [opts.runs]
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    parts: list[tuple[int, dict[str, Any]]] = []
    config = kernel.vmlinuz.parent / "config"
    extra = {"boot-config": config.read_bytes()} if config.is_file() else {}
    done_runs = 0
    for boot, nruns in enumerate(per_boot):
        cfg = boot_config(
            opts,
            kernel,
            root,
            logs,
            side.name,
            boot,
            accel.name,
            boot_timeout(opts, spec, nruns),
            initrd=initrd,
            kdisk=kdisk,
        )
        job = guest_job(opts, spec, machine, nruns, boot)
        boot_extra = dict(extra)
        if opts.fault is not None and side.name == "new":
            job["fault"] = opts.fault
            if opts.fault.get("kind") == "module":  # built for this side's kernel
                boot_extra[MODULE_FILE] = modbuild.build_module(
                    kernel, opts.fault["module_source"], opts.fault["module_name"]
                )
        qemu.write_job_disk(cfg.job_disk, job, extra=boot_extra)
        qemu.new_result_disk(cfg.result_disk)
        what = f"{side.name} kernel {kernel.release} boot {boot}"
        progress(
            Event(
                "boot",
                side=side.name,
                boot=boot,
                boots=len(per_boot),
                release=kernel.release,
                path=str(cfg.console_log),
            )
        )
        base_runs = done_runs

        def relay(ev: Event, _side: str = side.name, _base: int = base_runs) -> None:
            # The guest counts its own boot's runs; the comparison counts all of them.
            if ev.kind == "saved":
                progress(ev.on_side(_side, runs_done=_base + ev.runs_done, runs=opts.runs))
            else:
                progress(ev.on_side(_side))

        res = qemu.boot(cfg, on_event=relay, cancel=cancel)
        boots_log.append(
            {
                "side": side.name,
                "boot": boot,
                "wall_s": round(res.wall_s, 2),
                "agent_ready_s": res.agent_ready_s,
                "console_log": str(cfg.console_log),
            }
        )
        cfg.job_disk.unlink(missing_ok=True)
        result = res.result or {}
        if result.get("capture"):
            parts.append((boot, result["capture"]))
        cfg.result_disk.unlink(missing_ok=True)
        failure: RegressError | None = qemu.failure_of(res, what=what)
        if failure is None and result.get("state") == "failed":
            failure = _agent_error(result, what, cfg.console_log)
        if failure is None:
            got = len((result.get("capture") or {}).get("runs", []))
            if got < nruns:
                failure = VMError(
                    f"{what}: the agent finished with {got} of {nruns} runs; "
                    f"console log: {cfg.console_log}"
                )
        if failure is not None:
            partial = merge_boots(parts, opts.runs, f"{side.name} capture")
            if partial is not None and partial.runs:
                path = out_dir / f"{side.name}.partial.json"
                save_capture(partial, path)
                failure.message += (
                    f" (partial capture with {len(partial.runs)} of "
                    f"{opts.runs} runs kept as {path})"
                )
            raise failure
        done_runs += nruns
    capture = merge_boots(parts, opts.runs, f"{side.name} capture")
    assert capture is not None and capture.complete
    # The guest knows the release; the host knows how the side was named and built.
    label = side.paths.label or str(side.paths.bzimage) if side.paths else side.ref
    capture = replace(
        capture,
        kernel=replace(capture.kernel, label=label, build=dict(kernel.build) or None),
    )
    path = out_dir / f"{side.name}.json"
    save_capture(capture, path)
    (out_dir / f"{side.name}.partial.json").unlink(missing_ok=True)
    return path


def probe_kvm(kernel: Kernel, root: Path, logs: Path) -> qemu.Accel:
    """Try one trivial KVM boot of a stock kernel; TCG if it fails. The verdict is cached
    per host kernel and QEMU binary, so only the first run on a machine pays for it."""
    import hashlib
    import json
    import os
    import shutil

    qbin = shutil.which(qemu.QEMU) or qemu.QEMU
    key = hashlib.sha256(f"{os.uname().release}|{qbin}|{Path(qbin).stat().st_mtime}".encode())
    verdict = cache_root() / f"kvm-probe-{key.hexdigest()[:12]}.json"
    try:
        doc = json.loads(verdict.read_text())
        return qemu.Accel(str(doc["name"]), str(doc["reason"]))
    except (OSError, ValueError, KeyError):
        pass
    logs.mkdir(parents=True, exist_ok=True)
    cfg = boot_config(RunOptions(), kernel, root, logs, "kvm-probe", 0, "kvm", 60.0)
    qemu.write_job_disk(cfg.job_disk, {"kind": "command", "command": ["true"], "boot": 0})
    qemu.new_result_disk(cfg.result_disk)
    res = qemu.boot(cfg)
    cfg.job_disk.unlink(missing_ok=True)
    cfg.result_disk.unlink(missing_ok=True)
    failure = qemu.failure_of(res, what="KVM probe boot")
    accel = (
        qemu.Accel("kvm", "a stock kernel booted under KVM")
        if failure is None
        else qemu.Accel("tcg", f"KVM probe boot failed: {failure.one_line()[:200]}")
    )
    verdict.parent.mkdir(parents=True, exist_ok=True)
    verdict.write_text(json.dumps({"name": accel.name, "reason": accel.reason}) + "\n")
    return accel


def dry_run_lines(opts: RunOptions) -> list[str]:
    """What ``regress run`` would do, with the exact QEMU commands; fetches and builds nothing."""
    validate(opts)
    spec = load_workload(opts)
    out_dir = out_dir_for(opts)
    accel = qemu.choose_accel(opts.accel)
    root = image.cached_root_image()
    lines = [
        f"# workload {spec.name}: {opts.runs} runs x {spec.iterations} iterations; "
        f"accel {accel.name} ({accel.reason})"
    ]
    if root is None:
        lines.append(
            f"# would build the guest image (recipe {image.recipe_hash()}) under "
            f"{image.images_dir()}"
        )
        root_path = image.images_dir() / image.recipe_hash() / "root.ext4"
    else:
        root_path = root.path
    per_boot = [1] * opts.runs if opts.fresh_boot_per_run else [opts.runs]
    for name, ref, paths in (("old", opts.old, opts.old_paths), ("new", opts.new, opts.new_paths)):
        if paths is not None:
            key, entry = kernels.paths_entry(paths.bzimage, paths.modules, paths.headers)
            hit = kernels.cached(key)
            if hit is None:
                lines.append(
                    f"# would copy {paths.bzimage}, {paths.modules}"
                    + (f", {paths.headers}" if paths.headers else "")
                    + f" into {entry} (content key {key}; nothing is written beside them)"
                )
                kernel = Kernel(
                    label=paths.label or str(paths.bzimage),
                    release=paths.modules.name,
                    vmlinuz=entry / "vmlinuz",
                    tree=entry / "tree",
                    source="paths",
                )
                initrd = entry / "initramfs-<hash>.cpio.gz"
            else:
                kernel = hit
                initrd = image.initramfs_path(hit)[0]
        else:
            release = kernels.resolve_release(ref)
            hit = kernels.cached(release)
            if hit is None:
                lines.append(
                    f"# would fetch {ref} with apt-get download into "
                    f"{kernels.kernels_dir() / release}"
                )
                kernel = Kernel(
                    label=ref,
                    release=release,
                    vmlinuz=kernels.kernels_dir() / release / "vmlinuz",
                    tree=kernels.kernels_dir() / release / "tree",
                )
                initrd = kernel.vmlinuz.parent / "initramfs-<hash>.cpio.gz"
            else:
                kernel = hit
                initrd = image.initramfs_path(hit)[0]
        for boot, nruns in enumerate(per_boot):
            cfg = boot_config(
                opts,
                kernel,
                root_path,
                out_dir / "logs",
                name,
                boot,
                accel.name,
                boot_timeout(opts, spec, nruns),
                initrd=initrd,
            )
            lines.append(
                f"# {name} kernel {kernel.release}, boot {boot}: {nruns} run(s), "
                f"timeout {cfg.timeout_s:.0f} s, console log {cfg.console_log}"
            )
            lines.append(shlex.join(qemu.qemu_argv(cfg)))
    lines.append(f"# then: {out_dir}/old.json, new.json (the pipeline diffs and renders)")
    return lines


def capture_pair(
    opts: RunOptions, progress: Progress = ignore, cancel: threading.Event | None = None
) -> CapturePair:
    """Both kernels' captures. Raises on the first failed side (finished captures stay)."""
    emit = progress
    validate(opts)
    spec = load_workload(opts)
    out_dir = out_dir_for(opts)
    out_dir.mkdir(parents=True, exist_ok=True)
    sides = [Side("old", opts.old, opts.old_paths), Side("new", opts.new, opts.new_paths)]
    for side in sides:
        side.kernel = _kernel_for(side, emit)
    if image.cached_root_image() is None:
        emit(Event("stage", message="building the guest image (debootstrap, ~1 min)"))
    root = image.build_root_image()
    accel = qemu.choose_accel(opts.accel)
    if accel.name == "kvm" and opts.accel == "auto":
        assert sides[0].kernel is not None
        accel = probe_kvm(sides[0].kernel, root.path, out_dir / "logs")
    emit(Event("stage", message=f"accelerator: {accel.name} ({accel.reason})"))
    outcome = CapturePair(out_dir=out_dir, captures={})
    for side in sides:
        for stale in (out_dir / f"{side.name}.json",):
            stale.unlink(missing_ok=True)
    failures: dict[str, BaseException] = {}
    cancel = cancel or threading.Event()

    def one(side: Side) -> None:
        try:
            outcome.captures[side.name] = run_side(
                opts, spec, side, root.path, out_dir, accel, emit, outcome.boots, cancel
            )
        except BaseException as exc:  # re-raised below, after the other kernel finished
            failures[side.name] = exc

    if opts.parallel:
        # A TCG guest keeps about one host core busy; two fit this 2-core machine. Each
        # kernel still gets the same VM shape, so the captures stay comparable.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="regress-vm") as pool:
            try:
                list(pool.map(one, sides))
            except BaseException:  # Ctrl-C: kill both VMs instead of waiting for them
                cancel.set()
                raise
    else:
        for side in sides:
            one(side)
            if failures:
                break
    for name in ("old", "new"):
        if name in failures:
            exc = failures[name]
            other = "new" if name == "old" else "old"
            if isinstance(exc, RegressError) and other in outcome.captures:
                exc.message += f" ({other} capture kept: {outcome.captures[other]})"
            raise exc
    return outcome


def discover_pair(
    opts: RunOptions,
    syscalls: list[str],
    *,
    max_functions: int,
    progress: Progress = ignore,
) -> dict[str, Discovery]:
    """Function discovery (``discover_functions``) on both kernels, in parallel."""
    validate(opts)
    spec = load_workload(opts)
    work = out_dir_for(opts) / "logs"
    sides = [Side("old", opts.old, opts.old_paths), Side("new", opts.new, opts.new_paths)]
    found: dict[str, Discovery] = {}
    failures: dict[str, BaseException] = {}

    def one(side: Side) -> None:
        try:
            kernel = side.kernel or _kernel_for(side, progress)
            progress(
                Event("stage", side=side.name, message=f"discovering functions on {side.name}")
            )
            found[side.name] = discover_functions(
                kernel,
                spec,
                syscalls,
                work,
                opts,
                max_functions=max_functions,
                side=f"{side.name}-discover",
            )
        except BaseException as exc:
            failures[side.name] = exc

    with ThreadPoolExecutor(max_workers=2 if opts.parallel else 1) as pool:
        list(pool.map(one, sides))
    for name in ("old", "new"):
        if name in failures:
            raise failures[name]
    return found


class QemuBackend:
    """QEMU under TCG or KVM; the default backend."""

    name = "qemu"

    def capture_pair(
        self, opts: RunOptions, progress: Progress, cancel: threading.Event | None = None
    ) -> CapturePair:
        return capture_pair(opts, progress, cancel)

    def dry_run_lines(self, opts: RunOptions) -> list[str]:
        return dry_run_lines(opts)

    def discover_pair(
        self, opts: RunOptions, syscalls: list[str], max_functions: int, progress: Progress
    ) -> dict[str, Discovery]:
        return discover_pair(opts, syscalls, max_functions=max_functions, progress=progress)


backend.register("qemu", QemuBackend)

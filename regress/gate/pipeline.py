"""One comparison end to end: capture both kernels -> diff once -> render once.

Every command that compares kernels (``run``, ``ci`` per workload, ``selftest``) goes
through ``compare``, so each workload is diffed exactly once with the user's thresholds
(plus the A/A negative control on the old side's runs) and its reports are written
exactly once. ``judge`` is the same without the VM stage, for saved captures.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from regress.diff.differ import diff_captures
from regress.errors import RegressError
from regress.gate.controls import MIN_AA_RUNS, AAControl, aa_control
from regress.model.capture import Capture, atomic_write_text, load_capture
from regress.model.events import Event, Progress, ignore
from regress.model.result import DiffResult, DiffWarning, Thresholds
from regress.report.view import build_view
from regress.report.write import write_reports
from regress.vm import backend as vm_backend
from regress.vm.backend import RunOptions


@dataclass(frozen=True)
class Judged:
    """A diff of two captures with its negative control."""

    result: DiffResult  # ``aa_false_positives`` set from ``aa``
    old: Capture
    new: Capture
    aa: AAControl


@dataclass(frozen=True)
class Comparison:
    """What ``compare`` produced for one workload."""

    out_dir: Path
    captures: dict[str, Path]
    judged: Judged
    reports: dict[str, Path]  # "html" / "text" -> file
    boots: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def result(self) -> DiffResult:
        return self.judged.result


def judge_captures(
    old: Capture,
    new: Capture,
    thresholds: Thresholds,
    *,
    force: bool = False,
    old_path: str = "old",
    new_path: str = "new",
) -> Judged:
    """The one diff of a comparison, plus the A/A split of the old side (>= 4 runs)."""
    result = diff_captures(
        old, new, thresholds=thresholds, force=force, old_path=old_path, new_path=new_path
    )
    n = len(old.runs)
    if n >= MIN_AA_RUNS:
        aa = aa_control(old, thresholds)
    else:  # halves of 1 run are pooled-rate tests: a "false positive level" would mislead
        aa = AAControl(
            old.kernel.release,
            n,
            0,
            None,
            0,
            warnings=[f"A/A control needs >= {MIN_AA_RUNS} runs of the old kernel (has {n})"],
        )
    return Judged(result.with_aa(aa.false_positives), old, new, aa)


def judge(old: Path, new: Path, thresholds: Thresholds, *, force: bool = False) -> Judged:
    return judge_captures(
        load_capture(old),
        load_capture(new),
        thresholds,
        force=force,
        old_path=str(old),
        new_path=str(new),
    )


def render(judged: Judged, out_dir: Path) -> dict[str, Path]:
    """The HTML and text reports of a comparison, written once into ``out_dir``."""
    html, text = out_dir / "report.html", out_dir / "report.txt"
    write_reports(judged.result, judged.old, judged.new, html=html, text=text)
    repro = out_dir / "repro.sh"  # the reproducer without regress, next to the reports
    atomic_write_text(repro, build_view(judged.result, judged.old, judged.new).repro_script)
    repro.chmod(0o755)
    return {"html": html, "text": text, "repro": repro}


def _narrowed(
    opts: RunOptions, judged: Judged, thresholds: Thresholds, progress: Progress, backend: str
) -> Judged:
    """``judged`` with the narrowing pass's findings -- or, when the pass fails (a guest
    error, a boot that hangs), with a footnote saying so: the first pass's evidence and
    captures stand, and its report is still written."""
    from regress.gate.narrow import narrow as run_narrowing

    try:
        outcome = run_narrowing(opts, judged, thresholds, progress, backend=backend)
    except RegressError as exc:
        note = f"the narrowing pass failed, the first pass's result stands: {exc.one_line()}"
        progress(Event("stage", message=note))
        warning = DiffWarning("narrowing-failed", note)
        result = replace(judged.result, warnings=(*judged.result.warnings, warning))
        return replace(judged, result=result)
    return judged if outcome is None else replace(judged, result=outcome.result)


def compare(
    opts: RunOptions,
    thresholds: Thresholds,
    progress: Progress = ignore,
    *,
    backend: str = "qemu",
    cancel: threading.Event | None = None,
    narrow: bool = False,
) -> Comparison:
    """Capture both kernels with ``backend``, diff once, (``narrow``: when something
    regressed, run the narrowing pass), render once."""
    started = time.monotonic()
    pair = vm_backend.get(backend).capture_pair(opts, progress, cancel)
    progress(Event("stage", message="diffing"))
    judged = judge(pair.captures["old"], pair.captures["new"], thresholds)
    if narrow:
        judged = _narrowed(opts, judged, thresholds, progress, backend)
    if judged.result.significant:  # what changed between two Debian packages, ranked
        from regress.gate.suspects import attach_suspects

        suspects = attach_suspects(judged.result, judged.old.kernel, judged.new.kernel)
        judged = replace(judged, result=suspects)
    reports = render(judged, pair.out_dir)
    return Comparison(
        out_dir=pair.out_dir,
        captures=dict(pair.captures),
        judged=judged,
        reports=reports,
        boots=list(pair.boots),
        notes=list(pair.notes),
        wall_s=time.monotonic() - started,
    )

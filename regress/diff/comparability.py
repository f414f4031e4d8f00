"""Which captures may be compared at all, and what about them deserves a footnote.

Only the kernel may differ between the two sides: a different workload, tracer, VM
shape or iterations per run make a diff meaningless, and it is refused with the reason
(``--force`` overrides and records it). Everything else that differs (command line,
bcc/regress version, host, partial captures, lost events) becomes a warning.
"""

from __future__ import annotations

from regress.model.capture import Capture
from regress.model.result import DiffWarning


def _short(h: str) -> str:
    return h[:12] if h else "(none)"


def comparability(old: Capture, new: Capture) -> tuple[list[str], list[DiffWarning]]:
    """(problems that make a diff meaningless, differences worth a footnote)."""
    problems: list[str] = []
    warnings: list[DiffWarning] = []
    if old.workload.hash != new.workload.hash:
        problems.append(
            f"workload differs (old {old.workload.name!r} {_short(old.workload.hash)}, "
            f"new {new.workload.name!r} {_short(new.workload.hash)})"
        )
    if old.tracer.fingerprint != new.tracer.fingerprint:
        problems.append(
            f"tracer differs (fingerprint {_short(old.tracer.fingerprint)} vs "
            f"{_short(new.tracer.fingerprint)}): capture both sides with the same regress "
            "version and probe options"
        )
    so, sn = old.machine.shape(), new.machine.shape()
    for k in sorted(so):
        if so[k] != sn.get(k):
            problems.append(f"machine {k} differs ({so[k]} vs {sn.get(k)})")
    io, inew = old.iterations_per_run, new.iterations_per_run
    if io is None or inew is None:
        side = "old" if io is None else "new"
        problems.append(f"{side} capture has runs with different iteration counts")
    elif io != inew:
        problems.append(f"iterations per run differ ({io} vs {inew})")

    def warn(code: str, msg: str) -> None:
        warnings.append(DiffWarning(code, msg))

    if old.kernel.cmdline != new.kernel.cmdline:
        warn(
            "cmdline",
            f"kernel command lines differ: {old.kernel.cmdline!r} vs {new.kernel.cmdline!r}",
        )
    if old.bcc_version != new.bcc_version:
        warn("bcc-version", f"bcc versions differ ({old.bcc_version} vs {new.bcc_version})")
    if old.regress_version != new.regress_version:
        warn(
            "regress-version",
            f"captured by different regress versions ({old.regress_version or '?'} vs "
            f"{new.regress_version or '?'})",
        )
    if old.machine.hostname != new.machine.hostname:
        warn(
            "hostname",
            f"captured on different hosts ({old.machine.hostname} vs {new.machine.hostname})",
        )
    both_imported = old.machine.backend == "import" and new.machine.backend == "import"
    if not both_imported and old.kernel.identity == new.kernel.identity:
        warn(
            "same-kernel",
            f"both captures are from the same kernel ({old.kernel.release}): an A/A comparison, "
            "so every significant row is noise or a non-kernel change",
        )
    return problems, warnings


def quality_warnings(side: str, cap: Capture) -> list[DiffWarning]:
    out: list[DiffWarning] = []
    if not cap.complete:
        out.append(
            DiffWarning(
                f"partial-{side}",
                f"{side} capture is partial: {len(cap.runs)} of {cap.requested_runs} runs"
                + (" (interrupted by the user)" if cap.interrupted else ""),
            )
        )
    lost = cap.lost_totals()
    if lost:
        detail = ", ".join(f"{k}={v}" for k, v in lost.items())
        out.append(
            DiffWarning(
                f"lost-{side}", f"{side} capture lost events ({detail}): its counts may be low"
            )
        )
    return out

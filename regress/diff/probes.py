"""Probes one side could not observe: reported as "absent", never as a count of 0.

A probe is absent on a side when its record there says absent/failed, or when a
pattern matched nothing there while it resolved to concrete probes on the other
side. Such keys get an "absent" row (with the kernel's reason) and are not tested.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field

import numpy as np

from regress.diff.keys import KeyTuple
from regress.diff.rank import TIER_ABSENT, TIER_WEIGHT
from regress.model.capture import FAMILY_PROBE_KINDS, Capture
from regress.model.result import FAMILY, DiffWarning, Divergence, SideValues

_GLOB_CHARS = frozenset("*?[")


@dataclass
class _ProbeView:
    """What one capture could observe.

    ``missing``: (kind, name) -> (status, reason) for probes not attached (names may
    be patterns that matched nothing). ``attached``: concrete names per kind.
    ``recorded``: kinds with any probe record; a capture without records for a kind
    (bpftrace imports, hand-made files) is taken as having probed whatever it counted.
    """

    missing: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)
    attached: dict[str, set[str]] = field(default_factory=dict)
    recorded: set[str] = field(default_factory=set)
    counted: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, cap: Capture) -> _ProbeView:
        view = cls()
        for p in cap.probes:
            kind = p.kind
            view.recorded.add(kind)
            if p.status == "attached":
                view.attached.setdefault(kind, set()).add(p.name)
                continue
            name = FAMILY if p.kind in FAMILY_PROBE_KINDS else p.name
            view.missing.setdefault((kind, name), (p.status, p.reason))
        for run in cap.runs:
            view.counted.setdefault("tracepoint", set()).update(run.tracepoints)
            view.counted.setdefault("function", set()).update(run.functions)
            view.counted.setdefault("funcret", set()).update(run.funcrets)
        return view

    def probed(self, kind: str, name: str) -> bool:
        if (kind, name) in self.missing:
            return False
        if kind not in self.recorded or name == "*":  # a family is probed unless missing
            return True
        return name in self.attached.get(kind, set())

    def why_not(self, kind: str, name: str) -> tuple[str, str | None]:
        """Status and reason for a name this side did not probe (exact or via a pattern)."""
        if (kind, name) in self.missing:
            return self.missing[(kind, name)]
        for (k, pattern), status in sorted(self.missing.items()):
            if k == kind and fnmatch.fnmatchcase(name, pattern):
                return status
        return ("absent", "not probed on this kernel")


def _side_counts_for(cap: Capture, kind: str, name: str) -> tuple[list[int], list[float]]:
    """Raw and per-iteration counts of one probe (family total for "*") per run."""
    raw: list[int] = []
    for run in cap.runs:
        if kind == "syscall" and name == "*":
            n = sum(sum(v.values()) for v in run.syscalls.values())
        elif kind == "retval" and name == "*":
            n = sum(sum(v.values()) for v in run.retvals.values())
        elif kind == "tracepoint":
            n = run.tracepoints.get(name, 0)
        elif kind == "funcret":
            n = sum(run.funcrets.get(name, {}).values())
        else:
            n = run.functions.get(name, 0)
        raw.append(n)
    return raw, [n / r.iterations for n, r in zip(raw, cap.runs, strict=True)]


def absent_rows(
    old: Capture, new: Capture
) -> tuple[list[Divergence], set[KeyTuple], list[DiffWarning]]:
    """Rows for probes one side could not observe; their keys are then not tested.

    Candidates: syscall/retval families with a non-attached record, every concrete
    tracepoint/function either side attached or counted, and non-pattern names
    recorded as missing. A pattern that matched nothing on one side and resolved to
    concrete probes on the other yields rows for those concrete names.
    """
    vo, vn = _ProbeView.of(old), _ProbeView.of(new)
    candidates: set[tuple[str, str]] = set()
    for view in (vo, vn):
        for kind, name in view.missing:
            if name == "*" or not (_GLOB_CHARS & set(name)):
                candidates.add((kind, name))
        for kind in ("tracepoint", "function", "funcret"):
            for name in view.attached.get(kind, set()) | view.counted.get(kind, set()):
                candidates.add((kind, name))
    rows: list[Divergence] = []
    skip: set[KeyTuple] = set()
    both: list[str] = [f"{kind}:{name}" for kind, name in sorted(set(vo.missing) & set(vn.missing))]
    for kind, name in sorted(candidates):
        po, pn = vo.probed(kind, name), vn.probed(kind, name)
        if po and pn:
            continue
        skip.add((kind, name, ""))
        if not po and not pn:
            continue  # listed in the "absent-both" warning when both recorded it
        sides: list[SideValues] = []
        for cap, view, probed in ((old, vo, po), (new, vn, pn)):
            if not probed:
                status, reason = view.why_not(kind, name)
                sides.append(SideValues((), (), math.nan, status, reason))
            else:
                raw, per = _side_counts_for(cap, kind, name)
                center = float(np.median(per)) if per else math.nan
                sides.append(SideValues(tuple(per), tuple(raw), center))
        rows.append(
            Divergence(
                kind=kind,  # type: ignore[arg-type]
                name=name,
                sub="",
                cls="absent",
                old=sides[0],
                new=sides[1],
                ratio=None,
                ratio_ci=None,
                delta=0.0,
                test="none",
                p=None,
                q=None,
                significant=False,
                regression=False,
                score=TIER_ABSENT * TIER_WEIGHT,
            )
        )
    warnings = []
    if both:
        warnings.append(
            DiffWarning("absent-both", "probes not attached on either kernel: " + ", ".join(both))
        )
    return rows, skip, warnings

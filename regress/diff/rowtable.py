"""Per-key test results as columns, turned into ``Divergence`` rows only where read.

The differ computes every key's p, q, class and score as arrays. Objects are built here:
at once for the notable keys (every class but "unchanged", and every row of a syscall
whose ENOSYS row is significant, because ``differ.interpret`` rewrites those), and on
first access for the rest (``regress.model.rows.Rows``). Ranking is one ``np.lexsort``
over score, kind order and key text for all rows, eager or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from regress.diff.keys import BoolArray, FloatArray, KeyCounts, display_sub
from regress.diff.rank import KIND_ORDER, Classes
from regress.diff.tests import TestRun
from regress.model.names import errno_name
from regress.model.result import Divergence, SideValues, Thresholds
from regress.model.rows import Rows

ENOSYS_SUB = "38"  # as captured: errno numbers


# Rows are built from per-key slices of the arrays; past this many rows, the columns
# are converted to lists once (cheaper per row when --all or JSON reads every row).
_BULK_AFTER = 2048
_RAW = (1, 4)  # positions of the raw per-run counts in ``RowTable._arrays``


def _plain(position: int, values: npt.NDArray[Any]) -> list[Any]:
    """A column slice as Python values (raw counts as ints)."""
    return (values.astype(np.int64) if position in _RAW else values).tolist()  # type: ignore[no-any-return]


@dataclass
class RowTable:
    """Everything a tested key's row holds, one entry per key of ``counts``."""

    counts: KeyCounts
    run: TestRun
    q: FloatArray
    classes: Classes
    th: Thresholds
    few_runs: bool  # the comparison has a "few-runs" warning: QL/MWU rows carry it
    single_run: bool
    _built: int = field(default=0, init=False)

    def _arrays(self) -> tuple[npt.NDArray[Any], ...]:
        """Every per-key array a row reads, in ``_row``'s unpacking order (the raw
        counts, positions ``_RAW``, are cast to int after slicing: only what is read)."""
        c, run, cl = self.counts, self.run, self.classes
        return (
            c.per_iter_old,
            c.old,
            c.center_old,
            c.per_iter_new,
            c.new,
            c.center_new,
            run.lo,
            run.hi,
            run.p,
            self.q,
            cl.cls,
            cl.significant,
            cl.regression,
            cl.score,
            cl.gated,
        )

    @cached_property
    def _columns(self) -> tuple[list[Any], ...]:
        return tuple(_plain(i, a) for i, a in enumerate(self._arrays()))

    def _values(self, idx: list[int]) -> list[tuple[Any, ...]]:
        """The row values of keys ``idx``: fancy-indexed subsets, or the bulk lists."""
        self._built += len(idx)
        if self._built > _BULK_AFTER:
            cols = self._columns
            return [tuple(col[i] for col in cols) for i in idx]
        at = np.asarray(idx, dtype=np.intp)
        return list(zip(*(_plain(i, a[at]) for i, a in enumerate(self._arrays())), strict=True))

    def rows(self, idx: list[int]) -> list[Divergence]:
        """The rows of keys ``idx``."""
        return [self._row(i, v) for i, v in zip(idx, self._values(idx), strict=True)]

    def row(self, i: int) -> Divergence:
        """Key ``i``'s row."""
        return self._row(i, self._values([i])[0])

    def _row(self, i: int, values: tuple[Any, ...]) -> Divergence:
        kind, name, sub = self.counts.keys[i]
        t = self.run.test[i]
        (po, ro, co, pn, rn, cn, lo, hi, p, q, cls, sig, reg, score, gated) = values
        notes: tuple[str, ...] = ()
        if t in ("ql", "mwu"):
            notes = ("few-runs",) if self.few_runs else ()
        elif t != "exact":
            notes = ("single-run",) if self.single_run else ()
        if gated:
            notes = (*notes, "effect-gate")
        elif kind == "retval" and q <= self.th.alpha:
            notes = (*notes, "retval-context")
        return Divergence(
            kind=kind,  # type: ignore[arg-type]
            name=name,
            sub=display_sub(kind, sub),
            cls=cls,
            old=SideValues(tuple(po), tuple(ro), co),
            new=SideValues(tuple(pn), tuple(rn), cn),
            ratio=cn / co if co > 0 else None,
            ratio_ci=(lo, hi) if lo == lo and co != 0 else None,  # lo == lo: not NaN
            delta=cn - co,
            test=t,
            p=p,
            q=q,
            significant=sig,
            regression=reg,
            score=score,
            notes=notes,
        )

    def notable(self) -> BoolArray:
        """Keys whose row is built at once (see the module docstring)."""
        mask = self.classes.cls != "unchanged"
        keys = self.counts.keys
        enosys = {
            keys[i][1]
            for i in np.flatnonzero(self.classes.significant)
            if keys[i][0] == "syscall" and keys[i][2] == ENOSYS_SUB
        }
        if enosys:
            mask = mask | np.array([k[0] == "syscall" and k[1] in enosys for k in keys])
        return np.asarray(mask, dtype=bool)


def ranked_rows(table: RowTable, eager: Sequence[Divergence], quiet: npt.NDArray[np.intp]) -> Rows:
    """All rows in rank order: highest score first, ties by kind, then key.

    ``eager`` are built rows (notable keys, absent and outcome rows), ``quiet`` the key
    indices whose rows are built on demand.
    """
    keys = table.counts.keys
    qkeys = [keys[i] for i in quiet.tolist()]
    score = np.concatenate([np.array([d.score for d in eager]), table.classes.score[quiet]])
    kind = np.array(
        [KIND_ORDER.get(d.kind, 9) for d in eager] + [KIND_ORDER.get(k[0], 9) for k in qkeys]
    )
    text = np.array([d.key for d in eager] + [_key_text(k) for k in qkeys], dtype=str)
    order = np.lexsort((text, kind, -score)) if len(score) else np.zeros(0, dtype=np.intp)
    n_eager = len(eager)
    entries = [e if e < n_eager else -1 - (e - n_eager) for e in order.tolist()]
    qidx = quiet.tolist()
    tests = frozenset(table.run.test[i] for i in qidx)
    return Rows(eager, entries, lambda j: table.row(qidx[j]), quiet_tests=tests)


def _key_text(key: tuple[str, str, str]) -> str:
    """``Divergence.key`` of a captured key, without building the row."""
    kind, name, sub = key
    if kind == "syscall" and sub:
        sub = errno_name(sub)
    elif kind in ("funcret", "origin"):
        sub = display_sub(kind, sub)
    return f"{kind}:{name}:{sub}" if sub else f"{kind}:{name}"

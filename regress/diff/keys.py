"""Captures -> one (keys x runs) count matrix per side, keys shared between the sides.

A key is ``(kind, name, sub)`` with ``sub`` as the capture stores it (errno number or
log2 bucket as text, "" for flat counts). The matrix is what every statistical test
reads (``KeyCounts``): per-run counts, iterations per run, and the per-iteration
values and centres derived from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain
from typing import Protocol

import numpy as np
import numpy.typing as npt

from regress.model.capture import Capture, Run
from regress.model.names import errno_name
from regress.model.result import CONTEXT_KINDS, FUNCTION_KINDS

# EINTR and the kernel's restart codes (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND,
# ERESTART_RESTARTBLOCK): what a syscall returns when a signal lands in it.
SIGNAL_RACE_ERRNOS = frozenset({"4", "512", "513", "514", "516"})

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
KeyTuple = tuple[str, str, str]  # (kind, name, sub as captured): sub = errno / bucket / ""


def display_sub(kind: str, sub: str) -> str:
    """The ``Divergence.sub`` of a captured key: errno numbers become kernel names
    (``openat ENOENT``; a function's ``-2`` return becomes ``-ENOENT``, its ``0``
    ``NULL/0``)."""
    if kind == "syscall" and sub:
        return errno_name(sub)
    if kind == "origin":
        err, sep, fn = sub.partition("@")
        return f"{errno_name(err)}@{fn}" if sep and err.isdigit() else sub
    if kind == "funcret":
        if sub == "0":
            return "NULL/0"
        if sub.startswith("-") and sub[1:].isdigit():
            return "-" + errno_name(sub[1:])
    return sub


class KeyIndex:
    """Key -> row number, two-level (family/name -> sub -> row) to avoid a tuple per count."""

    def __init__(self, skip: set[KeyTuple]) -> None:
        self.skip = skip
        self.by_name: dict[tuple[str, str], dict[str, int]] = {}
        self.keys: list[KeyTuple] = []

    def rows_for(self, fam: str, name: str, subs: Iterable[str]) -> list[int] | None:
        """Row numbers for ``subs`` of one name (new keys get new rows); None if skipped."""
        sub_index = self.by_name.get((fam, name))
        if sub_index is None:
            if (fam, "*", "") in self.skip or (fam, name, "") in self.skip:
                return None
            sub_index = self.by_name[(fam, name)] = {}
        out: list[int] = []
        for sub in subs:
            i = sub_index.get(sub)
            if i is None:
                i = sub_index[sub] = len(self.keys)
                self.keys.append((fam, name, sub))
            out.append(i)
        return out

    def run_entries(self, cap: Capture) -> list[tuple[list[int], list[int]]]:
        """Per run: (row numbers, counts) for every key the run recorded.

        Runs of one capture almost always record the same keys in the same order, so
        the row numbers of a name's subs (and of a whole flat table) are remembered by
        the tuple of their names: one tuple comparison per name instead of one lookup
        per key and run (50k keys x 20 runs was half the differ's time).
        """
        per_run: list[tuple[list[int], list[int]]] = []
        seen: dict[tuple[str, str], tuple[tuple[str, ...], list[int] | None]] = {}
        flat_seen: dict[str, tuple[tuple[str, ...], list[int], list[bool]]] = {}
        # A whole nested table shaped as in the run before (the same names, each with the
        # same subs in the same order): its rows again, its values in one C-level pass.
        table_seen: dict[str, tuple[tuple[tuple[str, ...], ...], tuple[str, ...], list[int]]] = {}
        for run in cap.runs:
            rows: list[int] = []
            vals: list[int] = []
            nested = (
                ("syscall", run.syscalls),
                ("retval", run.retvals),
                ("funcret", run.funcrets),
                ("origin", run.origins),
            )
            for fam, table in nested:
                names = tuple(table)
                shape = tuple(map(tuple, table.values()))
                thit = table_seen.get(fam)
                if thit is not None and thit[0] == shape and thit[1] == names:
                    rows.extend(thit[2])
                    vals.extend(chain.from_iterable(map(dict.values, table.values())))
                    continue
                table_rows: list[int] = []
                whole = True  # no name skipped: the table's rows can be reused as one
                for name, inner in table.items():
                    subs = tuple(inner)
                    hit = seen.get((fam, name))
                    if hit is not None and hit[0] == subs:
                        r = hit[1]
                    else:
                        r = self.rows_for(fam, name, subs)
                        seen[(fam, name)] = (subs, r)
                    if r is not None:
                        table_rows.extend(r)
                        vals.extend(inner.values())
                    else:
                        whole = False
                rows.extend(table_rows)
                if whole:
                    table_seen[fam] = (shape, names, table_rows)
            for fam, flat in (
                ("tracepoint", run.tracepoints),
                ("function", run.functions),
                ("map", run.maps),
            ):
                names = tuple(flat)
                fhit = flat_seen.get(fam)
                if fhit is None or fhit[0] != names:
                    frows: list[int] = []
                    keep: list[bool] = []
                    for name in names:
                        r = self.rows_for(fam, name, ("",))
                        keep.append(r is not None)
                        if r is not None:
                            frows.extend(r)
                    fhit = flat_seen[fam] = (names, frows, keep)
                rows.extend(fhit[1])
                if all(fhit[2]):
                    vals.extend(flat.values())
                else:
                    vals.extend(n for n, k in zip(flat.values(), fhit[2], strict=True) if k)
            per_run.append((rows, vals))
        return per_run


def _matrix(
    cap: Capture, entries: list[tuple[list[int], list[int]]], nkeys: int
) -> tuple[FloatArray, FloatArray]:
    counts = np.zeros((nkeys, len(cap.runs)), dtype=np.float64)
    for j, (rows, vals) in enumerate(entries):
        if rows:  # a run names each key once, so plain assignment is exact
            counts[np.asarray(rows, dtype=np.intp), j] = np.asarray(vals, dtype=np.float64)
    iters = np.asarray([r.iterations for r in cap.runs], dtype=np.float64)
    return counts, iters


class Sequences(Protocol):
    """One side's per-iteration counts, asked for a few keys at a time (the exact rule
    asks only about small constant counts; a keys x runs x iterations array for 50k keys
    would cost more than the whole diff)."""

    @property
    def known(self) -> bool:
        """Every run has per-iteration counts over the same number of iterations."""
        ...

    def repeated(self, key: KeyTuple) -> tuple[int, ...] | None:
        """The key's per-iteration counts when every run saw exactly this sequence; None
        when the runs differ or there is nothing to tell (not ``known``)."""
        ...


@dataclass(frozen=True)
class RunSequences:
    """``Sequences`` read from a capture's runs (schema >= 4 ``per_iteration``)."""

    runs: Sequence[Run]

    @property
    def known(self) -> bool:
        return bool(self.runs) and all(
            r.per_iteration is not None and r.iterations == self.runs[0].iterations
            for r in self.runs
        )

    def repeated(self, key: KeyTuple) -> tuple[int, ...] | None:
        if not self.known:
            return None
        iterations = self.runs[0].iterations
        kind, name, sub = key
        first: tuple[int, ...] | None = None
        for run in self.runs:
            values = (run.per_iteration or {}).get(kind, {}).get(name, {}).get(sub)
            seq = tuple(values) if values is not None else (0,) * iterations
            if first is None:
                first = seq
            elif seq != first:
                return None
        return first


@dataclass(frozen=True)
class KeyCounts:
    """Both sides' counts of the same keys: what every statistical test reads."""

    keys: list[KeyTuple]
    old: FloatArray  # (keys, old runs) raw counts
    new: FloatArray  # (keys, new runs)
    old_iters: FloatArray  # iterations per old run
    new_iters: FloatArray
    # Per-iteration counts, when the captures have them (imports and schema < 4 do not)
    old_seq: Sequences | None = field(default=None, compare=False)
    new_seq: Sequences | None = field(default=None, compare=False)

    @classmethod
    def of(cls, old: Capture, new: Capture, skip: set[KeyTuple]) -> KeyCounts:
        index = KeyIndex(skip)
        e_old, e_new = index.run_entries(old), index.run_entries(new)
        co, io = _matrix(old, e_old, len(index.keys))
        cn, inew = _matrix(new, e_new, len(index.keys))
        return cls(index.keys, co, cn, io, inew, RunSequences(old.runs), RunSequences(new.runs))

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def n_old(self) -> int:
        return int(self.old.shape[1])

    @property
    def n_new(self) -> int:
        return int(self.new.shape[1])

    @cached_property
    def per_iter_old(self) -> FloatArray:
        return np.asarray(self.old / self.old_iters[None, :], dtype=np.float64)

    @cached_property
    def per_iter_new(self) -> FloatArray:
        return np.asarray(self.new / self.new_iters[None, :], dtype=np.float64)

    @cached_property
    def center_old(self) -> FloatArray:
        return np.median(self.per_iter_old, axis=1) if len(self) else np.zeros(0)

    @cached_property
    def center_new(self) -> FloatArray:
        return np.median(self.per_iter_new, axis=1) if len(self) else np.zeros(0)

    @cached_property
    def total_old(self) -> FloatArray:
        return np.asarray(self.old.sum(axis=1), dtype=np.float64)

    @cached_property
    def total_new(self) -> FloatArray:
        return np.asarray(self.new.sum(axis=1), dtype=np.float64)

    def column(self, what: str) -> npt.NDArray[np.object_]:
        """``kind``, ``name`` or ``sub`` of every key, as an object array."""
        i = ("kind", "name", "sub").index(what)
        return np.array([k[i] for k in self.keys], dtype=object)

    @cached_property
    def signal_race(self) -> BoolArray:
        """Syscall errors (and their origins) a signal landing mid-call produces: their
        counts follow machine load, so they pass ``Thresholds.min_ratio_signal``."""
        return np.array(
            [
                k[0] in ("syscall", "origin") and k[2].split("@", 1)[0] in SIGNAL_RACE_ERRNOS
                for k in self.keys
            ],
            dtype=bool,
        )

    @cached_property
    def function_level(self) -> BoolArray:
        """Counts of kernel functions (calls, return classes): the boot's state moves them."""
        return np.array([k[0] in FUNCTION_KINDS for k in self.keys], dtype=bool)

    @cached_property
    def context(self) -> BoolArray:
        """Rows that are context only (return-value buckets): never significant."""
        return np.array([k[0] in CONTEXT_KINDS for k in self.keys], dtype=bool)

    def syscall_totals(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Per row: all calls and successful calls of the row's syscall, old and new.

        Rows that are not syscalls get 0.
        """
        kinds = self.column("kind")
        subs = self.column("sub")
        is_sys = kinds == "syscall"
        ids: dict[str, int] = {}
        nid = np.array(
            [ids.setdefault(k[1], len(ids)) if k[0] == "syscall" else -1 for k in self.keys],
            dtype=np.intp,
        )
        at = np.maximum(nid, 0)
        is_ok = is_sys & (subs == "0")

        def per_row(mask: BoolArray, totals: FloatArray) -> FloatArray:
            sums = np.bincount(nid[mask], weights=totals[mask], minlength=len(ids))
            return np.where(is_sys, sums[at] if len(ids) else 0.0, 0.0)

        return (
            per_row(is_sys, self.total_old),
            per_row(is_sys, self.total_new),
            per_row(is_ok, self.total_old),
            per_row(is_ok, self.total_new),
        )

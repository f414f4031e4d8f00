"""The ranked rows of a diff, most of them built only when something reads them.

A comparison of 50k keys has ~49k rows that nothing changed about. Building a
``Divergence`` object for each of them was over half of the differ's time
(bench/bench_differ.py), yet the terminal table, the reports' main sections, the gates
and "Where it diverges" read only the *notable* rows (every row whose class is not
"unchanged", and the outcome/absent rows). ``Rows`` keeps those as objects and the rest
as a factory: ``rows[i]`` and iteration build a quiet row on first access and keep it.
It is an immutable ``Sequence``: ranking order is fixed when it is made.

Stdlib only, like the rest of ``regress.model``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    from regress.model.result import Divergence


class Rows(Sequence["Divergence"]):
    """Ranked rows: eager (notable) ones as objects, quiet ones built on first read.

    ``order`` lists the rows in rank order: an entry ``e >= 0`` is ``eager[e]``, an
    entry ``e < 0`` is quiet row ``-1 - e``, built by ``make``. ``quiet_tests`` are the
    test ids the quiet rows name (so a result can check them without building them).
    The caller guarantees that quiet rows are unchanged: never significant, never a
    regression, not shown by default.
    """

    __slots__ = ("_built", "_eager", "_make", "_notable", "_order", "quiet_tests")

    def __init__(
        self,
        eager: Sequence[Divergence],
        order: Sequence[int] | None = None,
        make: Callable[[int], Divergence] | None = None,
        quiet_tests: frozenset[str] = frozenset(),
    ) -> None:
        self._eager = tuple(eager)
        self._order = list(range(len(self._eager)) if order is None else order)
        if make is None and any(e < 0 for e in self._order):
            raise ValueError("quiet rows need a factory")
        self._make = make
        self._built: dict[int, Divergence] = {}
        self.quiet_tests = quiet_tests
        self._notable = tuple(self._eager[e] for e in self._order if e >= 0)

    def notable(self) -> tuple[Divergence, ...]:
        """The eager rows in rank order: everything but quiet "unchanged" rows."""
        return self._notable

    def _at(self, e: int) -> Divergence:
        if e >= 0:
            return self._eager[e]
        row = self._built.get(e)
        if row is None:
            assert self._make is not None
            row = self._built[e] = self._make(-1 - e)
        return row

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, i: int) -> Divergence: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[Divergence, ...]: ...
    def __getitem__(self, i: int | slice) -> Divergence | tuple[Divergence, ...]:
        if isinstance(i, slice):
            return tuple(self._at(e) for e in self._order[i])
        return self._at(self._order[i])

    def __iter__(self) -> Iterator[Divergence]:
        return (self._at(e) for e in self._order)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Rows({len(self._notable)} notable of {len(self)})"

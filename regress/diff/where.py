"""Where it diverges: the kernel functions the comparison points at, ranked.

The rows of a diff are per key; an engineer wants per function. This gathers, for every
traced function, what the differ found about it and ranks the functions by how
directly the evidence ties them to the failure:

1. its **returns** differ between the failing and passing iterations of one kernel (the
   failure-conditioned contrast): the function behaves differently exactly when the
   workload breaks -- the seed story's ``find_ge_pid()`` returning NULL early;
2. its **returns** changed between the kernels (``funcret`` rows: significant, then
   certain-but-small, then suggestive);
3. only its **call count** changed (``function`` rows, contrast or diff): often downstream
   of the culprit, listed last.

Within a rank, by the strength of the evidence (q, then the row's score). Only what was
measured is said: return classes need ``--function-returns``, contrasts need iterations
that failed and passed on one kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from regress.model.result import Contrast, Culprit, Divergence, Evidence

MAX_CULPRITS = 10
FUNCTION_KINDS = frozenset({"funcret", "function"})
_CLASS_RANK = {"rate": 0, "appeared": 0, "vanished": 0, "certain-small": 1, "suggestive": 2}
BASIS = {
    0: "its returns differ when the workload fails",
    1: "its returns changed between the kernels",
    2: "its call count changed",
}


@dataclass
class _Found:
    rank: int
    strength: float  # lower is stronger
    evidence: list[Evidence] = field(default_factory=list)


def culprits(
    divergences: tuple[Divergence, ...], contrasts: tuple[Contrast, ...]
) -> tuple[Culprit, ...]:
    """One entry per function with function-level evidence, strongest first."""
    found: dict[str, _Found] = {}

    def note(name: str, rank: int, strength: float, ev: Evidence) -> None:
        f = found.setdefault(name, _Found(rank, strength))
        if (rank, strength) < (f.rank, f.strength):
            f.rank, f.strength = rank, strength
        f.evidence.append(ev)

    for c in contrasts:
        for r in c.rows:
            if r.kind in FUNCTION_KINDS:
                rank = 0 if r.kind == "funcret" else 2
                ev = Evidence("contrast", r.label, r.passing, r.failing, c.side, r.q, None, "")
                note(r.name, rank, r.q, ev)
    for d in divergences:
        if d.kind not in FUNCTION_KINDS or d.cls not in _CLASS_RANK:
            continue
        rank = 1 if d.kind == "funcret" else 2
        ev = Evidence("diff", d.label, d.old.center, d.new.center, "", d.q, d.ratio, d.cls)
        note(d.name, rank, _CLASS_RANK[d.cls] - d.score / 1e6, ev)
    ranked = sorted(found.items(), key=lambda kv: (kv[1].rank, kv[1].strength, kv[0]))
    return tuple(
        Culprit(function=name, basis=BASIS[f.rank], evidence=tuple(f.evidence))
        for name, f in ranked[:MAX_CULPRITS]
    )

"""Where it diverges: the kernel functions the comparison points at, ranked.

The rows of a diff are per key; an engineer wants per function. This gathers, for every
traced function, what the differ found about it and ranks the functions by how
directly the evidence ties them to the failure:

0. the **mix** of its returns differs between the failing and passing iterations of one
   kernel (``returnmix``): it returns something else exactly when the workload breaks --
   the seed story's ``find_ge_pid()`` returning NULL after 1 pid instead of 3;
1. the mix of its returns changed between the kernels;
2. how *often* it returns each class differs between failing and passing iterations (the
   failure-conditioned contrast of ``funcret`` counts);
3. how often it returns each class changed between the kernels (``funcret`` rows:
   significant, then certain-but-small, then suggestive);
4. only its **call count** changed (``function`` rows, contrast or diff): often
   downstream of the culprit, listed last.

A function downstream of the culprit runs less often but returns the same mix, so it
lands in 2-4, below the function whose returns changed. Within a rank, by the strength
of the evidence (q, then the size of the change). Only what was measured is said: return
classes need ``--function-returns``, contrasts need iterations that failed and passed on
one kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from regress.model.result import Contrast, Culprit, Divergence, Evidence, MixChange

MAX_CULPRITS = 10
FUNCTION_KINDS = frozenset({"funcret", "function"})
_CLASS_RANK = {"rate": 0, "appeared": 0, "vanished": 0, "certain-small": 1, "suggestive": 2}
BASIS = {
    0: "what it returns differs when the workload fails",
    1: "what it returns changed between the kernels",
    2: "how often it returns each value differs when the workload fails",
    3: "how often it returns each value changed between the kernels",
    4: "its call count changed",
}


@dataclass
class _Found:
    rank: int
    strength: float  # lower is stronger
    evidence: list[Evidence] = field(default_factory=list)


def culprits(
    divergences: Sequence[Divergence],
    contrasts: tuple[Contrast, ...],
    mix: tuple[MixChange, ...] = (),
) -> tuple[Culprit, ...]:
    """One entry per function with function-level evidence, strongest first."""
    found: dict[str, _Found] = {}

    def note(name: str, rank: int, strength: float, ev: Evidence) -> None:
        f = found.setdefault(name, _Found(rank, strength))
        if (rank, strength) < (f.rank, f.strength):
            f.rank, f.strength = rank, strength
        f.evidence.append(ev)

    def share_label(m: MixChange) -> str:
        return Divergence.label_of("funcret", m.function, m.sub)

    for c in contrasts:
        for m in c.mix:
            ev = Evidence(
                "contrast", share_label(m), m.before, m.after, c.side, m.q, None, "", "share"
            )
            note(m.function, 0, m.q - abs(m.after - m.before) / 1e6, ev)
    for m in mix:
        ev = Evidence("diff", share_label(m), m.before, m.after, "", m.q, None, "", "share")
        note(m.function, 1, m.q - abs(m.after - m.before) / 1e6, ev)
    for c in contrasts:
        for r in c.rows:
            if r.kind in FUNCTION_KINDS:
                rank = 2 if r.kind == "funcret" else 4
                ev = Evidence("contrast", r.label, r.passing, r.failing, c.side, r.q, None, "")
                note(r.name, rank, r.q, ev)
    for d in divergences:
        if d.kind not in FUNCTION_KINDS or d.cls not in _CLASS_RANK:
            continue
        rank = 3 if d.kind == "funcret" else 4
        ev = Evidence("diff", d.label, d.old.center, d.new.center, "", d.q, d.ratio, d.cls)
        note(d.name, rank, _CLASS_RANK[d.cls] - d.score / 1e6, ev)
    ranked = sorted(found.items(), key=lambda kv: (kv[1].rank, kv[1].strength, kv[0]))
    return tuple(
        Culprit(function=name, basis=BASIS[f.rank], evidence=tuple(f.evidence))
        for name, f in ranked[:MAX_CULPRITS]
    )

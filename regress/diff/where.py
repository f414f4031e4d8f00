"""Where it diverges: the kernel functions the comparison points at, ranked.

The rows of a diff are per key; an engineer wants per function. This gathers, for every
traced function, what the differ found about it and ranks the functions by how
directly the evidence ties them to the failure:

0. the **mix** of its returns differs between the failing and passing iterations of one
   kernel (``returnmix``): it returns something else exactly when the workload breaks --
   the seed story's ``find_ge_pid()`` returning NULL after 1 pid instead of 3 -- or an
   errno born in it (``origin`` keys) differs between them;
1. an errno whose syscall row is a regression is now born in it (``origin`` rows:
   retsnoop's "which function first returned -E", compared): it explains the regression;
2. the mix of its returns changed between the kernels (a function whose inputs changed
   does this too, which is why the origin of the regressed errno comes first);
3. how *often* it returns each class differs between failing and passing iterations (the
   failure-conditioned contrast of ``funcret`` counts);
4. how often it returns each class changed between the kernels (``funcret`` rows:
   significant, then certain-but-small, then suggestive; and other origin rows);
5. only its **call count** changed (``function`` rows, contrast or diff): often
   downstream of the culprit, listed last.

A function downstream of the culprit runs less often but returns the same mix, so it
lands in 3-5, below the function whose returns changed. Within a rank, by the strength
of the evidence (q, then the size of the change). Suggestive rows alone name no culprit
(an A/A pair has some by chance). Only what was measured is said: return
classes need ``--function-returns``, contrasts need iterations that failed and passed on
one kernel.

Each culprit names the syscalls it explains: the syscall whose errno it gives birth to,
else the syscalls it ran under (``fn_syscalls`` of the captures) that have a diverging
row, else those it ran under most; and, for an errno origin, the kernel call path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from regress.model.result import Contrast, Culprit, Divergence, Evidence, MixChange

MAX_CULPRITS = 10
FUNCTION_KINDS = frozenset({"funcret", "function", "origin"})
MAX_SYSCALLS = 3
_CLASS_RANK = {"rate": 0, "appeared": 0, "vanished": 0, "certain-small": 1, "suggestive": 2}
BASIS = {
    0: "what it returns differs when the workload fails",
    1: "the regressed errno is born in it",
    2: "what it returns changed between the kernels",
    3: "how often it returns each value differs when the workload fails",
    4: "how often it returns each value changed between the kernels",
    5: "its call count changed",
}


@dataclass
class _Found:
    rank: int
    strength: float  # lower is stronger
    evidence: list[Evidence] = field(default_factory=list)


def _origin_function(sub: str) -> str | None:
    """The function an origin row's sub (``EACCES@fn``) names; None when born untraced."""
    fn = sub.partition("@")[2]
    return None if fn in ("", "?") else fn


def culprits(
    divergences: Sequence[Divergence],
    contrasts: tuple[Contrast, ...],
    mix: tuple[MixChange, ...] = (),
    fn_syscalls: Mapping[str, Mapping[str, int]] | None = None,
    origin_paths: Mapping[tuple[str, str], Sequence[str]] | None = None,
) -> tuple[Culprit, ...]:
    """One entry per function with function-level evidence, strongest first.

    ``fn_syscalls``: function -> syscall -> returns under it (both captures);
    ``origin_paths``: (syscall, displayed origin sub) -> call path.
    """
    found: dict[str, _Found] = {}
    born: dict[str, list[tuple[str, str]]] = {}  # function -> (syscall, origin sub)

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
        note(m.function, 2, m.q - abs(m.after - m.before) / 1e6, ev)
    for c in contrasts:
        for r in c.rows:
            if r.kind not in FUNCTION_KINDS:
                continue
            fn = _origin_function(r.sub) if r.kind == "origin" else r.name
            if fn is None:
                continue
            rank = {"origin": 0, "funcret": 3}.get(r.kind, 5)
            ev = Evidence("contrast", r.label, r.passing, r.failing, c.side, r.q, None, "")
            note(fn, rank, r.q, ev)
            if r.kind == "origin":
                born.setdefault(fn, []).append((r.name, r.sub))
    regressed = {(d.name, d.sub) for d in divergences if d.kind == "syscall" and d.regression}
    for d in divergences:
        if d.kind not in FUNCTION_KINDS or d.cls not in _CLASS_RANK:
            continue
        fn = _origin_function(d.sub) if d.kind == "origin" else d.name
        if fn is None:
            continue
        if d.kind == "origin":
            rank = 1 if (d.name, d.sub.partition("@")[0]) in regressed else 4
        else:
            rank = 4 if d.kind == "funcret" else 5
        ev = Evidence("diff", d.label, d.old.center, d.new.center, "", d.q, d.ratio, d.cls)
        note(fn, rank, _CLASS_RANK[d.cls] - d.score / 1e6, ev)
        if d.kind == "origin":
            born.setdefault(fn, []).append((d.name, d.sub))
    diverging = {
        d.name for d in divergences if d.kind in ("syscall", "retval") and d.cls in _CLASS_RANK
    }
    # Suggestive rows (p <= alpha, not past the FDR) support a function that has other
    # evidence; alone they name no culprit (an A/A pair has some by chance).
    found = {fn: f for fn, f in found.items() if any(e.cls != "suggestive" for e in f.evidence)}
    ranked = sorted(found.items(), key=lambda kv: (kv[1].rank, kv[1].strength, kv[0]))
    paths = origin_paths or {}

    def explained(fn: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        origins = born.get(fn, [])
        if origins:
            names = list(dict.fromkeys(s for s, _ in origins))
            path = next((tuple(paths[o]) for o in origins if o in paths), ())
            return tuple(names[:MAX_SYSCALLS]), path
        under = (fn_syscalls or {}).get(fn, {})
        by_count = sorted((s for s in under if s != "-"), key=lambda s: (-under[s], s))
        hit = [s for s in by_count if s in diverging]
        return tuple((hit or by_count)[:MAX_SYSCALLS]), ()

    out = []
    for name, f in ranked[:MAX_CULPRITS]:
        syscalls, path = explained(name)
        out.append(Culprit(name, BASIS[f.rank], tuple(f.evidence), syscalls, path))
    return tuple(out)

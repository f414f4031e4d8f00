"""Planted-effect benchmark of the differ's statistics: recall and A/A false positives.

Noise models are fitted from real captures (``--profile NAME=OLD.json[,NEW.json]``;
defaults: the QEMU ps-loop captures in ``tests/testdata``), plus one over-dispersed
stress profile. A model keeps what the captures show:

* the per-iteration rates of all keys and the iterations per run;
* the fraction of keys whose count is the same in every run ("constant");
* for the other keys, their relative run-to-run spread, how much of it is one factor
  shared by all keys of a run (the dash ``wait``/SIGCHLD counters move together), and
  which of them are signal races (EINTR/ERESTART*: a synthetic key drawn from one is
  named as one, so the product's gate for them applies).

From a model, pairs of synthetic count matrices are generated at n runs per side with
effects planted in 2% of the keys each (x1.2, x1.5, x2, x5 up or down, appear, vanish)
and, separately, A/A pairs with none. Recall counts the planted keys whose true change
passes the product's effect gate (``rank.effect_gate`` on the true rates: |delta| >= 0.05
per iteration, ratio >= x1.2, signal races x3 -- smaller changes cannot be significant by
design), split by whether their counts vary between runs or
are the same in every run (as generated, after rounding to whole counts). Each pair is
judged by regress's statistics (QL with a shared prior, guarded exact rule) and by the
method before (Mann–Whitney + exact rule without the guard), with the same thresholds,
BH and effect gate. Liveness is
benchmarked as one endpoint: failure rate 0 -> 5% over n runs x iterations.

Prints recall per effect for constant and varying keys, false positives per 10k keys on
A/A pairs, and the differ's wall time on 50k keys x 10 runs. No assertions: figures go
to bench/README.md.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from regress.diff import quasi, rank, tests
from regress.diff.keys import KeyCounts
from regress.gate.controls import aa_control
from regress.model.capture import load_capture
from regress.model.result import Thresholds

FloatArray = npt.NDArray[np.float64]
DATA = Path(__file__).resolve().parent.parent / "tests" / "testdata"
EFFECTS: tuple[tuple[str, float], ...] = (
    ("x1.2", 1.2),
    ("x1.5", 1.5),
    ("x2", 2.0),
    ("x5", 5.0),
    ("appear", 0.0),
    ("vanish", -1.0),
)
PLANT_FRACTION = 0.02  # of the keys, per effect


@dataclass(frozen=True)
class NoiseModel:
    name: str
    const_rates: FloatArray  # per-iteration rates of keys constant in every run
    vary_rates: FloatArray  # per-iteration rates of keys that vary...
    vary_sd: FloatArray  # ...and their run-to-run sd in counts (paired with the rate)
    # ...and whether they are signal races (EINTR/ERESTART*: the product gates them at
    # Thresholds.min_ratio_signal, so a synthetic key drawn from one is named as one)
    vary_signal: npt.NDArray[np.bool_]
    iterations: int
    const_frac: float
    shared: float  # share of the varying keys' variance that is one per-run factor
    overdispersion: float = 0.0  # gamma-Poisson dispersion on every key (stress profile)
    # Of the constant keys, the share whose per-iteration counts repeat in every run
    # (None: the captures have no per-iteration counts, and neither do the pairs)
    repeat_frac: float | None = None

    def describe(self) -> str:
        rel = self.vary_sd / np.maximum(self.vary_rates * self.iterations, 1e-9)
        return (
            f"{self.name}: {self.iterations} it/run, {100 * self.const_frac:.0f}% constant "
            f"keys; varying keys move by {np.median(self.vary_sd):.1f} counts per run "
            f"(median; relative {np.median(rel):.3f}), {100 * self.shared:.0f}% of it one "
            f"factor shared by the run, {100 * self.vary_signal.mean():.0f}% of them signal "
            "races"
            + (f"; gamma-Poisson dispersion {self.overdispersion:g}" if self.overdispersion else "")
            + (
                f"; {100 * self.repeat_frac:.0f}% of the constant keys repeat their "
                "per-iteration counts in every run"
                if self.repeat_frac is not None
                else "; no per-iteration counts"
            )
        )


def one_factor_share(z: FloatArray, rng: np.random.Generator) -> float:
    """How much of the standardised run-to-run movement (keys x runs, rows z-scored) one
    factor explains beyond chance: the first principal component's share, against its
    mean over independent Gaussian rows of the same shape. Signs are free -- in ps-loop
    ``sigreturn(-1)`` returning 0 moves *against* the race count that moves the other
    keys (150 - R next to R, 250 + R, 400 + 2R), which an average of the z-scores (the
    estimate before) cancelled: it read 43% where one factor explains all of it."""
    if z.shape[0] < 2:
        return 0.0

    # (the share makes rows unit length itself: centring is all a null draw needs)
    draws = (rng.standard_normal(z.shape) for _ in range(500))
    null = float(
        np.mean([quasi.first_component_share(g - g.mean(axis=1, keepdims=True)) for g in draws])
    )
    return float(np.clip((quasi.first_component_share(z) - null) / (1.0 - null), 0.0, 1.0))


def fit(name: str, paths: list[Path]) -> NoiseModel:
    """A noise model from real captures (each capture's runs are one sample of noise)."""
    rng = np.random.default_rng(0)  # the chance level of the one-factor share
    const_rates: list[float] = []
    vary_rates: list[float] = []
    vary_sd: list[float] = []
    vary_signal: list[bool] = []
    shares: list[float] = []
    repeats: list[bool] = []
    its = 0
    for path in paths:
        cap = load_capture(path)
        kc = KeyCounts.of(cap, cap, set())
        y = kc.old[~kc.context]
        signal = kc.signal_race[~kc.context]
        its = int(cap.iterations_per_run or 1)
        constant = (y == y[:, :1]).all(axis=1)
        if kc.old_seq is not None and kc.old_seq.known:
            keys = [k for k, c in zip(kc.keys, ~kc.context, strict=True) if c]
            repeats += [
                kc.old_seq.repeated(k) is not None
                for k, const, n in zip(keys, constant, y[:, 0], strict=True)
                if const and n > 0
            ]
        const_rates += list(y[constant].mean(axis=1) / its)
        v = y[~constant]
        if len(v):
            mean = v.mean(axis=1, keepdims=True)
            sd = v.std(axis=1, ddof=1, keepdims=True)
            vary_rates += list(mean.ravel() / its)
            vary_sd += list(sd.ravel())
            vary_signal += list(signal[~constant])
            shares.append(one_factor_share((v - mean) / sd, rng))
    n_const, n_vary = len(const_rates), len(vary_rates)
    return NoiseModel(
        name=name,
        const_rates=np.asarray([r for r in const_rates if r > 0] or [1.0], dtype=np.float64),
        vary_rates=np.asarray(vary_rates or [1.0], dtype=np.float64),
        vary_sd=np.asarray(vary_sd or [1.0], dtype=np.float64),
        vary_signal=np.asarray(vary_signal or [False], dtype=np.bool_),
        iterations=its,
        const_frac=n_const / max(n_const + n_vary, 1),
        shared=float(np.mean(shares)) if shares else 0.0,
        repeat_frac=float(np.mean(repeats)) if repeats else None,
    )


def stress(base: NoiseModel) -> NoiseModel:
    """Over-dispersed: no constant keys, gamma-Poisson noise on every key, twice the
    spread, half of it shared by the run."""
    return NoiseModel(
        name="stress (over-dispersed)",
        const_rates=base.const_rates,
        vary_rates=np.concatenate([base.vary_rates, base.const_rates]),
        vary_sd=np.concatenate([base.vary_sd, base.vary_sd.mean() * np.ones(base.const_rates.size)])
        * 2,
        iterations=base.iterations,
        const_frac=0.0,
        shared=0.5,
        overdispersion=0.05,
        repeat_frac=base.repeat_frac,
        vary_signal=np.concatenate([base.vary_signal, np.zeros(base.const_rates.size, dtype=bool)]),
    )


@dataclass
class Pair:
    old: FloatArray
    new: FloatArray
    planted: npt.NDArray[np.int_]  # effect index per key, -1 = none
    constant: npt.NDArray[np.bool_]  # counts equal in every run on both sides (observed)
    clear: npt.NDArray[np.bool_]  # run-to-run spread <= CLEAR_SPREAD of the key's count
    signal: npt.NDArray[np.bool_]  # drawn from a signal-race key: named as one
    eligible: npt.NDArray[np.bool_]  # the true change passes the effect gate
    iterations: int
    sd_old: FloatArray | None = None  # the true run-to-run sd per key (for the oracle)
    sd_new: FloatArray | None = None
    mean_old: FloatArray | None = None  # the true count per run
    mean_new: FloatArray | None = None
    overdispersion: float = 0.0  # gamma-Poisson on top (0: counts are rounded, not Poisson)
    shared: float = 0.0  # share of the run-to-run variance that is the per-run factor...
    factor_old: FloatArray | None = None  # ...and its draws (1 x runs) per side
    factor_new: FloatArray | None = None
    repeats: npt.NDArray[np.bool_] | None = None  # per-iteration counts repeat in every run
    seed: int = 0  # of the per-iteration split of the other keys


@dataclass(frozen=True)
class SplitSequences:
    """``keys.Sequences`` of a synthetic side: a key whose constancy is structural repeats
    one even split of its count in every run; any other key's runs split their counts
    over the iterations at random (multinomially), drawn when the differ asks -- the exact
    rule asks about a few small constant keys, so no keys x runs x iterations array."""

    counts: FloatArray  # keys x runs
    repeats: npt.NDArray[np.bool_]
    iterations: int
    rng: np.random.Generator
    known: bool = True
    drawn: dict[int, tuple[int, ...] | None] = field(default_factory=dict)  # asked twice

    def repeated(self, key: tuple[str, str, str]) -> tuple[int, ...] | None:
        i = int(key[1][1:])
        if i not in self.drawn:
            self.drawn[i] = self._draw(i)
        return self.drawn[i]

    def _draw(self, i: int) -> tuple[int, ...] | None:
        row = self.counts[i].astype(np.int64)
        m = self.iterations
        if self.repeats[i]:
            even = np.diff(np.floor(np.arange(m + 1) * row[0] / m)).astype(np.int64)
            return tuple(int(v) for v in even)
        if (row != row[0]).any():
            return None
        splits = self.rng.multinomial(int(row[0]), np.full(m, 1.0 / m), size=row.size)
        return tuple(int(v) for v in splits[0]) if (splits == splits[0]).all() else None


def generate(
    model: NoiseModel, keys: int, runs: int, rng: np.random.Generator, plant: bool
) -> Pair:
    constant = rng.random(keys) < model.const_frac
    pick = rng.integers(0, model.vary_rates.size, size=keys)
    base = (
        np.where(
            constant,
            rng.choice(model.const_rates, size=keys),
            model.vary_rates[pick],
        )
        * model.iterations
    )
    sd = np.where(constant, 0.0, model.vary_sd[pick])
    signal = ~constant & model.vary_signal[pick]
    repeats = constant & (rng.random(keys) < (model.repeat_frac or 0.0))
    planted = np.full(keys, -1, dtype=np.int_)
    new_base = base.copy()
    old_base = base.copy()
    if plant:
        order = rng.permutation(keys)
        per = int(keys * PLANT_FRACTION)
        for i, (_, factor) in enumerate(EFFECTS):
            idx = order[i * per : (i + 1) * per]
            planted[idx] = i
            if factor == 0.0:  # appear
                old_base[idx] = 0.0
            elif factor < 0:  # vanish
                new_base[idx] = 0.0
            else:
                up = rng.random(idx.size) < 0.5
                new_base[idx] = np.where(up, base[idx] * factor, base[idx] / factor)

    factors: list[FloatArray] = []  # each side's per-run shared factor (for the oracle)

    def side(b: FloatArray) -> FloatArray:
        # additive run-to-run noise of the key's own size, part of it shared by the run
        f = rng.standard_normal(runs)[None, :]
        factors.append(f)
        g = rng.standard_normal((keys, runs))
        w = model.shared
        scale = np.where(base > 0, b / np.maximum(base, 1e-9), 0.0)  # planted changes scale it
        noise = (sd * scale)[:, None] * (np.sqrt(w) * f + np.sqrt(1 - w) * g)
        mean = np.maximum(b[:, None] + noise, 0.0)
        if model.overdispersion:
            shape = 1.0 / model.overdispersion
            mean = rng.gamma(shape, mean / shape) if mean.size else mean
            return np.asarray(rng.poisson(mean), dtype=np.float64)
        return np.asarray(np.round(mean), dtype=np.float64)

    old, new = side(old_base), side(new_base)
    observed_constant = (old == old[:, :1]).all(axis=1) & (new == new[:, :1]).all(axis=1)
    # The product's own effect gate on the true rates (a hair of tolerance: x1.2 planted
    # is x1.2 in floating point only nearly)
    th = Thresholds()
    th = replace(
        th, min_ratio=th.min_ratio * (1 - 1e-9), min_ratio_signal=th.signal_ratio * (1 - 1e-9)
    )
    r_old, r_new = old_base / model.iterations, new_base / model.iterations
    total = float(runs * model.iterations)
    eligible = rank.effect_gate(r_old, r_new, th, signal, None, (total, total))
    clear = sd <= CLEAR_SPREAD * np.maximum(base, 1e-9)
    scale_new = np.where(base > 0, new_base / np.maximum(base, 1e-9), 0.0)
    scale_old = np.where(base > 0, old_base / np.maximum(base, 1e-9), 0.0)
    return Pair(
        old,
        new,
        planted,
        observed_constant,
        clear,
        signal,
        eligible,
        model.iterations,
        sd_old=sd * scale_old,
        sd_new=sd * scale_new,
        mean_old=old_base,
        mean_new=new_base,
        overdispersion=model.overdispersion,
        shared=model.shared,
        factor_old=factors[0],
        factor_new=factors[1],
        repeats=repeats if model.repeat_frac is not None else None,
        seed=int(rng.integers(2**62)),
    )


def oracle(pair: Pair, alpha: float) -> npt.NDArray[np.bool_]:
    """A reference for any test of these data: it knows every key's true noise -- the
    per-run factor shared by all keys (subtracted exactly) and the rest's variance (plus
    rounding, or the gamma-Poisson counting noise) -- and runs a z-test per key,
    Benjamini-Hochberg over the keys at ``alpha``. Not a strict bound: it takes the noise
    of keys clipped at zero as unclipped, so on small keys it overstates it."""
    from scipy.stats import false_discovery_control, norm

    assert pair.sd_old is not None and pair.sd_new is not None
    assert pair.mean_old is not None and pair.mean_new is not None
    assert pair.factor_old is not None and pair.factor_new is not None
    w = pair.shared
    n_old, n_new = pair.old.shape[1], pair.new.shape[1]

    def cleaned(y: FloatArray, sd: FloatArray, f: FloatArray) -> FloatArray:
        return np.asarray(y - np.sqrt(w) * sd[:, None] * f)

    def per_run(sd: FloatArray, m: FloatArray) -> FloatArray:
        rest = (1 - w) * sd**2
        if pair.overdispersion:  # gamma-Poisson counts around the noisy mean
            return np.asarray(rest + m + pair.overdispersion * (m**2 + sd**2))
        return np.asarray(rest + 1 / 12)  # additive noise, rounded to whole counts

    old = cleaned(pair.old, pair.sd_old, pair.factor_old)
    new = cleaned(pair.new, pair.sd_new, pair.factor_new)
    var = per_run(pair.sd_old, pair.mean_old) / n_old + per_run(pair.sd_new, pair.mean_new) / n_new
    z = np.abs(new.mean(axis=1) - old.mean(axis=1)) / np.sqrt(np.maximum(var, 1e-12))
    q = false_discovery_control(2 * norm.sf(z))
    return np.asarray(q <= alpha, dtype=np.bool_)


def judge(
    pair: Pair, th: Thresholds, multi_run: tuple[tests.StatTest, ...], series: bool = True
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Keys reported as changed, as regress's differ decides (tests, BH, effect gate), and
    keys shown as suggestive; ``series``: with the pair's per-iteration counts, when it
    has them."""
    keys = [("syscall", f"s{i}", "4" if race else "0") for i, race in enumerate(pair.signal)]
    its = float(pair.iterations)
    seqs: tuple[SplitSequences | None, SplitSequences | None] = (None, None)
    if series and pair.repeats is not None:
        rng = np.random.default_rng(pair.seed)
        seqs = (
            SplitSequences(pair.old, pair.repeats, pair.iterations, rng),
            SplitSequences(pair.new, pair.repeats, pair.iterations, rng),
        )
    kc = KeyCounts(
        keys,
        pair.old,
        pair.new,
        np.full(pair.old.shape[1], its),
        np.full(pair.new.shape[1], its),
        *seqs,
    )
    run = tests.run_tests(kc, th, multi_run)
    exact = np.array([t == "exact" for t in run.test], dtype=bool)
    # the method before adjusted all findings as one family
    q = (
        tests.adjust(run.p, kc.context, exact)
        if multi_run is tests.MULTI_RUN
        else (tests.bh_qvalues(run.p))
    )
    cl = rank.Classes(kc, run.p, q, exact, th)
    # found = reported as a change: significant, or certain but below the effect gate
    # (the "before" method had no such class, so for it this is significance alone)
    found = cl.significant | (cl.certain_small if multi_run is tests.MULTI_RUN else False)
    return np.asarray(found, dtype=np.bool_), np.asarray(cl.suggestive, dtype=np.bool_)


METHODS: dict[str, tuple[tuple[tests.StatTest, ...], Thresholds, bool]] = {
    "regress": (tests.MULTI_RUN, Thresholds(), True),
    # the same on run totals only (captures without per-iteration counts: imports)
    "totals": (tests.MULTI_RUN, Thresholds(), False),
    "before": (tests.MULTI_RUN_MWU, Thresholds(max_chance_constancy=1.0), False),
}


# Varying keys whose run-to-run spread is at most this fraction of their count: a x1.5
# change is >= 4 of their own standard deviations, so a test can see it at any n.
CLEAR_SPREAD = 0.1


def tally(pair: Pair, found: npt.NDArray[np.bool_]) -> FloatArray:
    """Per effect (rows) and kind of key (columns: varying, constant as observed, varying
    and clear): how many of the planted keys whose true change passes the gate ``found``
    holds."""
    out = np.zeros((len(EFFECTS), 3))
    kinds = (~pair.constant, pair.constant, ~pair.constant & pair.clear)
    for e in range(len(EFFECTS)):
        for c, kind in enumerate(kinds):
            out[e, c] = found[(pair.planted == e) & kind & pair.eligible].sum()
    return out


def recall_table(model: NoiseModel, keys: int, runs: int, pairs: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    hits = {m: np.zeros((len(EFFECTS), 3)) for m in [*METHODS, "oracle"]}
    planted_n = np.zeros((len(EFFECTS), 3))
    fp = dict.fromkeys(METHODS, 0)
    fp_pairs = dict.fromkeys(METHODS, 0)  # A/A pairs with any false positive (BH's FDR)
    aa_keys = 0
    below = np.zeros(2)  # signal-race keys planted below their gate: (how many, suggestive)
    for _ in range(pairs):
        pair = generate(model, keys, runs, rng, plant=True)
        aa = generate(model, keys, runs, rng, plant=False)
        aa_keys += keys
        for m, (mr, th, series) in METHODS.items():
            if m == "totals" and pair.repeats is None:
                continue  # no per-iteration counts: "regress" is this already
            found, suggestive = judge(pair, th, mr, series)
            hits[m] += tally(pair, found)
            if m == "regress":
                under = pair.signal & (pair.planted >= 0) & ~pair.eligible
                below += (under.sum(), (under & suggestive).sum())
            n_fp = int(judge(aa, th, mr, series)[0].sum())
            fp[m] += n_fp
            fp_pairs[m] += n_fp > 0
        hits["oracle"] += tally(pair, oracle(pair, Thresholds().alpha))
        planted_n += tally(pair, np.ones(keys, dtype=np.bool_))
    lines = []
    for m in [*METHODS, "oracle"]:
        if m == "totals" and model.repeat_frac is None:
            continue
        cells = []
        for e, (label, _) in enumerate(EFFECTS):
            vary = hits[m][e, 0] / max(planted_n[e, 0], 1)
            const = hits[m][e, 1] / max(planted_n[e, 1], 1)
            clear = hits[m][e, 2] / max(planted_n[e, 2], 1)
            cells.append(f"{label} {100 * vary:3.0f}({100 * clear:3.0f})/{100 * const:3.0f}")
        tail = (
            "  | reference: z-test knowing each key's true noise, BH"
            if m == "oracle"
            else f"  | A/A FP {1e4 * fp[m] / aa_keys:5.2f}/10k keys, {fp_pairs[m]}/{pairs} pairs"
        )
        if m == "regress" and below[0]:
            tail += (
                f"; signal races planted below their x{Thresholds().signal_ratio:g} gate: "
                f"{100 * below[1] / below[0]:.0f}% of {int(below[0])} shown as suggestive"
            )
        lines.append(f"  n={runs:<2} {keys:>6} keys {m:<8} " + "  ".join(cells) + tail)
    return lines


def iteration_structure(path: Path) -> str:
    """Are iterations replicates? Per key that varies between runs: the variance of its
    run totals over what its per-iteration variance within runs predicts for a total
    (1 when iterations are independent draws with no run effect), and the lag-1
    autocorrelation of its per-iteration counts; findings and context (return-value
    buckets) apart."""
    cap = load_capture(path)
    if not cap.runs or any(r.per_iteration is None for r in cap.runs):
        return f"{path.name}: no per-iteration counts"
    series: dict[tuple[str, str, str], list[FloatArray]] = {}
    for j, run in enumerate(cap.runs):
        for key, values in run.series_items():  # a key a run never saw: zeros there
            runs = series.setdefault(key, [np.zeros(r.iterations) for r in cap.runs])
            runs[j] = np.asarray(values, dtype=np.float64)
    lagged = cap.runs[0].iterations >= 10  # the autocorrelation of 3 iterations says nothing
    parts = []
    for label, context in (("findings", False), ("return-value buckets", True)):
        ratios: list[float] = []
        lags: list[float] = []
        for key, runs in series.items():
            if (key[0] == "retval") != context:
                continue
            totals = np.array([r.sum() for r in runs])
            within = float(np.mean([r.var(ddof=1) for r in runs])) * runs[0].size
            if (totals == totals[0]).all() or within <= 0:
                continue
            ratios.append(float(totals.var(ddof=1)) / within)
            moving = [r for r in runs if r[:-1].std() > 0 and r[1:].std() > 0]
            if lagged and moving:
                lags.append(float(np.mean([np.corrcoef(r[:-1], r[1:])[0, 1] for r in moving])))
        if ratios:
            lag = f", lag-1 autocorrelation {np.median(lags):+.2f}" if lags else ""
            parts.append(
                f"{label}: {len(ratios)} varying keys, between/within x{np.median(ratios):.2f} "
                f"(median; {min(ratios):.2f}-{max(ratios):.2f}){lag}"
            )
    head = f"{cap.kernel.release} ({len(cap.runs)} x {cap.runs[0].iterations} it): "
    return head + "; ".join(parts)


def liveness_recall(runs: int, iterations: int, trials: int, seed: int) -> float:
    """How often a 0 -> 5% liveness failure rate is significant (Fisher at alpha)."""
    rng = np.random.default_rng(seed)
    th = Thresholds()
    n = runs * iterations
    found = 0
    for _ in range(trials):
        fails = int(rng.binomial(n, 0.05))
        found += tests.LIVENESS.pvalue(0, n, fails, n - fails) <= th.alpha and fails > 0
    return found / trials


def differ_speed() -> str:
    """Wall time of diff_captures on 50k keys x 10 runs (bench_differ's synthetic pair)."""
    import bench_differ as bd

    old = bd.synthetic("a", 50_000, 10, 1, False)
    new = bd.synthetic("b", 50_000, 10, 2, True)
    from regress.diff.differ import diff_captures

    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        diff_captures(old, new)
        best = min(best, time.perf_counter() - t0)
    return f"differ on 50k keys x 10 runs: {best:.2f} s (best of 3; target <= 0.5 s)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", default="1000,50000", help="keys per pair (comma-separated)")
    ap.add_argument("--runs", default="2,3,5,8", help="runs per side (comma-separated)")
    ap.add_argument("--pairs", type=int, default=20, help="pairs per cell (1k keys)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--profile",
        action="append",
        default=[],
        help="NAME=capture.json[,capture.json]: fit a noise model from real captures",
    )
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args()
    stats = DATA / "stats"
    profiles = [
        fit(
            "ps-loop 5x50 (QEMU, Debian 6.1.0-47 and -56)",
            [stats / "ps-loop-5x50-old.json.gz", stats / "ps-loop-5x50-new.json.gz"],
        ),
        fit(
            "ci-3it (QEMU ps-loop, 4 runs x 3 it, two sessions)",
            [
                DATA / "ci" / "ps-loop-6.1.0-47.json.gz",
                DATA / "ci" / "ps-loop-6.1.0-56.json.gz",
                stats / "ci-4x3-old.json.gz",
                stats / "ci-4x3-new.json.gz",
            ],
        ),
    ]
    for spec in args.profile:
        name, _, files = spec.partition("=")
        profiles.append(fit(name, [Path(f) for f in files.split(",")]))
    profiles.append(stress(profiles[0]))
    print(
        "recall % per planted effect: varying keys (those of them whose run-to-run spread is "
        f"<= {100 * CLEAR_SPREAD:.0f}% of their count) / constant keys; A/A false positives "
        "per 10k keys"
    )
    for model in profiles:
        print(model.describe())
        for keys in (int(k) for k in args.keys.split(",")):
            pairs = max(1, args.pairs * 1000 // keys)
            for runs in (int(n) for n in args.runs.split(",")):
                for line in recall_table(model, keys, runs, pairs, args.seed):
                    print(line)
    print("liveness or exit status 0 -> 5% failing iterations (one Fisher endpoint), recall:")
    for model in profiles[:2]:
        for runs in (int(n) for n in args.runs.split(",")):
            r = liveness_recall(runs, model.iterations, 2000, args.seed)
            print(f"  n={runs} x {model.iterations} it: {100 * r:.0f}%")
    print(
        "iterations as replicates? run-total variance over n x within-run per-iteration "
        "variance (1 = no run effect):"
    )
    for path in (stats / "ps-loop-5x50-old.json.gz", stats / "ps-loop-5x50-new.json.gz"):
        print("  " + iteration_structure(path))
    for path in (stats / "ps-loop-5x50-old.json.gz", stats / "ps-loop-5x50-new.json.gz"):
        cap = load_capture(path)
        aa = aa_control(cap)
        print(
            f"real A/A split ({cap.kernel.release}, {aa.runs_a} vs {aa.runs_b} runs of 50 it): "
            f"{aa.false_positives} significant among {aa.keys_tested} keys"
        )
    if not args.no_speed:
        print(differ_speed())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

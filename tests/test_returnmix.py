"""Return mix (``regress.diff.returnmix``): the share of a function's returns per class.

The seed bug's signature is a share, not a count: every /proc walk ends with one NULL
from find_ge_pid(), early or not. These cases pin the test's decisions on small,
hand-checkable unit tables.
"""

from __future__ import annotations

import numpy as np

from regress.diff.returnmix import Units, compare
from regress.model.result import Thresholds

TH = Thresholds()


def _groups(a: Units, b: Units) -> tuple[Units, np.ndarray]:
    return a + b, np.array([False] * len(a) + [True] * len(b))


def test_null_share_rises_while_downstream_mix_stays() -> None:
    passing = [{"find_ge_pid": {"0": 1, "other": 3}, "next_tgid": {"other": 4}}] * 8
    failing = [{"find_ge_pid": {"0": 1, "other": 1}, "next_tgid": {"other": 2}}] * 4
    units, group = _groups(passing, failing)
    found = compare(units, group, TH)
    assert {(m.function, m.sub) for m in found} == {
        ("find_ge_pid", "other"),
        ("find_ge_pid", "NULL/0"),
    }
    null = next(m for m in found if m.sub == "NULL/0")
    assert (null.before, null.after, null.q) == (0.25, 0.5, 0.0)  # constant in each group


def test_an_errno_that_appears_in_every_unit_is_certain() -> None:
    old = [{"proc_pid_permission": {"0": 16}}] * 4
    new = [{"proc_pid_permission": {"0": 14, "-13": 2}}] * 3 + [
        {"proc_pid_permission": {"0": 13, "-13": 3}}
    ]
    units, group = _groups(old, new)
    found = {m.sub: m for m in compare(units, group, TH)}
    assert found["-EACCES"].q == 0.0 and found["-EACCES"].before == 0.0
    assert found["-EACCES"].after > 0.1


def test_chance_constancy_is_not_certain() -> None:
    """Two units per group, or one return per unit: the exact rule is guarded off."""
    units, group = _groups([{"f": {"0": 1, "other": 1}}] * 2, [{"f": {"0": 2}}] * 2)
    assert compare(units, group, TH) == []
    units, group = _groups([{"f": {"other": 1}}] * 5, [{"f": {"0": 1}}] * 5)
    found = compare(units, group, TH)
    assert all(m.q > 0 for m in found)


def test_same_mix_with_noise_reports_nothing() -> None:
    rng = np.random.default_rng(7)
    units: Units = []
    for _ in range(60):
        n = int(rng.integers(5, 20))
        null = int(rng.binomial(n, 0.3))
        units.append({"f": {"0": null, "other": n - null}, "g": {"other": n}})
    group = np.array([i % 2 == 1 for i in range(60)])
    assert compare(units, group, TH) == []

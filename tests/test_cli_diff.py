"""``regress diff`` end to end on fixture captures: golden stdout, exit codes, bad input.

Goldens live in tests/testdata/diff/NAME.stdout; on mismatch the actual output
is written to NAME.stdout.got for review (copy it over the golden when intended).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regress.cli.main import run

DIFF = Path(__file__).resolve().parent / "testdata" / "diff"

# name, argv after "diff", expected exit code
GOLDEN = [
    ("mwu", ["mwu.old.json", "mwu.new.json"], 1),
    ("poisson", ["poisson.old.json", "poisson.new.json"], 1),
    ("exact", ["exact.old.json", "exact.new.json"], 1),
    ("appear_vanish", ["appear_vanish.old.json", "appear_vanish.new.json"], 1),
    ("absent", ["absent.old.json", "absent.new.json"], 0),
    ("fdr", ["fdr.old.json", "fdr.new.json", "--all", "--top", "6"], 1),
    ("effect_gate", ["effect_gate.old.json", "effect_gate.new.json", "--all"], 1),
    ("liveness", ["liveness.old.json", "liveness.new.json"], 1),
    ("warnings", ["warnings.old.json", "warnings.new.json", "--all"], 1),
    ("forced", ["incomparable.old.json", "incomparable.new.json", "--force"], 1),
    ("bpftrace", ["bt_ps_e.json", "bt_ps_aux.json"], 1),
    ("aa_same", ["mwu.old.json", "mwu.old.json"], 0),
]


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]):
    monkeypatch.chdir(DIFF)
    rc = run(["diff", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.mark.parametrize(("name", "argv", "code"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_stdout(
    name: str,
    argv: list[str],
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc, out, err = _run(monkeypatch, capsys, argv)
    golden = DIFF / f"{name}.stdout"
    got = DIFF / f"{name}.stdout.got"
    if not golden.exists() or golden.read_text() != out:
        got.write_text(out)
        pytest.fail(f"stdout differs from {golden.name}; actual written to {got.name}\n{err}")
    got.unlink(missing_ok=True)
    assert rc == code, err
    assert err == ""


def test_fail_on_modes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # poisson: significant rows, one of them a regression (ENOENT share up)
    args = ["poisson.old.json", "poisson.new.json"]
    assert _run(monkeypatch, capsys, [*args, "--fail-on", "any"])[0] == 1
    assert _run(monkeypatch, capsys, [*args, "--fail-on", "regression"])[0] == 1
    assert _run(monkeypatch, capsys, [*args, "--fail-on", "none"])[0] == 0
    # mwu: significant but no regression (read calls up)
    args = ["mwu.old.json", "mwu.new.json"]
    assert _run(monkeypatch, capsys, [*args, "--fail-on", "regression"])[0] == 0
    assert _run(monkeypatch, capsys, [*args])[0] == 1


def test_json_output_is_deterministic_and_complete(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    args = ["appear_vanish.old.json", "appear_vanish.new.json"]
    rc1, out1, _ = _run(monkeypatch, capsys, [*args, "--json", str(a)])
    rc2, out2, _ = _run(monkeypatch, capsys, [*args, "--json", str(b)])
    assert rc1 == rc2 == 1
    assert out1 == out2
    assert a.read_bytes() == b.read_bytes()
    doc = json.loads(a.read_text())
    assert doc["format"] == "regress-diff" and doc["format_version"] == 4
    assert doc["significant_count"] == 2 and doc["regression_count"] == 2
    first = doc["divergences"][0]
    assert first["key"] == "syscall:kill:ESRCH" and first["cls"] == "appeared"
    assert first["old"]["raw"] == [0, 0, 0, 0] and first["new"]["raw"] == [400] * 4
    assert doc["thresholds"]["alpha"] == 0.05
    # JSON only on stdout with "-"
    _rc, out, _ = _run(monkeypatch, capsys, [*args, "--json", "-"])
    assert json.loads(out) == doc


def test_json_absent_side_has_no_number(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _rc, out, _ = _run(monkeypatch, capsys, ["absent.old.json", "absent.new.json", "--json", "-"])
    doc = json.loads(out)
    rows = {d["key"]: d for d in doc["divergences"]}
    row = rows["function:next_tgid"]
    assert row["cls"] == "absent"
    assert row["new"]["probe_status"] == "absent" and row["new"]["center"] is None
    assert row["new"]["raw"] == [] and row["old"]["raw"] == [0, 0, 0]
    assert rows["function:find_ge_pid"]["old"]["probe_status"] == "failed"
    assert "function:proc_pid_*" not in rows


def test_top_limits_rows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = _run(monkeypatch, capsys, ["bt_ps_e.json", "bt_ps_aux.json", "--top", "2"])
    assert rc == 1
    assert "\n2  rate " in out and "\n3  " not in out
    assert "... 10 more rows not shown" in out  # 9 significant + 3 suggestive shown by default


BAD = [
    (["missing.json", "mwu.new.json"], "missing.json: no such capture file"),
    (["bad_not_json.json", "mwu.new.json"], "not JSON"),
    (["bad_truncated.json.gz", "mwu.new.json"], "truncated or corrupt gzip"),
    (["bad_wrong_schema.json", "mwu.new.json"], "runs[0].iterations: missing"),
    (["bad_newer_schema.json", "mwu.new.json"], "schema_version 99 is newer"),
    (["bad_no_runs.json", "bad_no_runs.json"], "has no runs"),
    (["incomparable.old.json", "incomparable.new.json"], "not comparable: workload differs"),
    (["mwu.old.json", "bt_ps_e.json"], "not comparable"),
    (["bt_single_key.json", "bt_ps_e.json"], "not comparable"),  # a generic map vs syscalls
    (["bt_raw_ret.json", "bt_ps_e.json"], "not comparable"),
    (["bt_hist.json", "bt_ps_e.json"], "bpftrace output has no map"),
    (["mwu.old.json", "mwu.new.json", "--fail-on", "sometimes"], "--fail-on"),
    (["mwu.old.json", "mwu.new.json", "--top", "0"], "--top must be >= 1"),
    (["mwu.old.json", "mwu.new.json", "--alpha", "2"], "alpha must be between 0 and 1"),
    (["mwu.old.json"], "Missing argument"),
    (["mwu.old.json", "mwu.new.json", "--json", "/proc/no/x.json"], "cannot write /proc/no/x.json"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_one_line_exit_2(
    argv: list[str],
    needle: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc, out, err = _run(monkeypatch, capsys, argv)
    assert rc == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("regress: error: "), err
    assert needle in err


@pytest.mark.parametrize("columns", [80, 100])
def test_diff_fits_the_terminal_width(
    columns: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """At COLUMNS=80 no line of the sample pair's diff is longer than 80 characters:
    the key folds, test/p/delta columns drop before anything wraps, numbers stay whole."""
    report = Path(__file__).parent / "testdata" / "report"
    pairs = [(report / "ps-loop-old.json", report / "ps-loop-new.json")]
    pairs += [(DIFF / "bt_ps_aux.json", DIFF / "bt_ps_e.json")]
    monkeypatch.setenv("COLUMNS", str(columns))
    for old, new in pairs:
        capsys.readouterr()
        assert run(["diff", str(old), str(new)]) in (0, 1)
        lines = capsys.readouterr().out.splitlines()
        assert max(len(x) for x in lines) <= columns, [x for x in lines if len(x) > columns]
        head = next(i for i, x in enumerate(lines) if "class" in x and "old/iter" in x)
        assert "..." not in "".join(lines[head : head + 5])  # folded or dropped, never cut
    monkeypatch.delenv("COLUMNS")  # a pipe (not a terminal) gets every column
    assert run(["diff", *map(str, pairs[0])]) == 1
    assert "fisher-outcome" in capsys.readouterr().out

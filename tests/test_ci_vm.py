"""``regress ci`` for real on two Debian kernels under QEMU (TCG here).

Quick variants in the default suite (4 runs x 2 iterations, ~35 s each): the
6.1.0-47 -> 6.1.0-56 bump produces index page, reports, JUnit XML and the exit
code its summary says; an A/A run (old == new) exits 0. The slow variant runs
three workloads with more iterations.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from regress.cli.main import run as cli_run
from regress.vm import backend

pytestmark = pytest.mark.vm
OLD, NEW = backend.DEFAULT_OLD, backend.DEFAULT_NEW


def _check_bundle(out: Path, workloads: list[str], rc: int) -> dict[str, object]:
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exit_code"] == rc
    root = ET.parse(out / "junit.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert sorted(cases) == sorted(workloads)
    index = (out / "index.html").read_text()
    for w in summary["workloads"]:
        assert w["status"] != "error", w["error"]
        case = cases[w["workload"]]
        assert (case.find("failure") is not None) == w["failed"]
        for rel in w["reports"].values():
            assert (out / rel).is_file() and f'href="{rel}"' in index
        assert w["aa"]["false_positives"] is not None
        report = (out / w["reports"]["text"]).read_text()
        assert "A negative control (A/A" in report.replace("\n  ", " ")
    return summary


def test_kernel_bump(vm_ready: None, tmp_path: Path) -> None:
    out = tmp_path / "ci"
    rc = cli_run(
        [
            "ci",
            "--old",
            OLD,
            "--new",
            NEW,
            "--workloads",
            "ps-loop",
            "--runs",
            "4",
            "--iterations",
            "2",
            "--fail-on",
            "any",
            "-o",
            str(out),
        ]
    )
    summary = _check_bundle(out, ["ps-loop"], rc)
    w = summary["workloads"][0]  # type: ignore[index]
    assert rc == (1 if w["significant"] else 0)
    assert (
        json.loads((out / "ps-loop" / "old.json").read_text())["kernel"]["release"]
        == "6.1.0-47-cloud-amd64"
    )


@pytest.mark.slow  # (default suite: test_architecture's spy checks run and ci ask the VM
# stage for the same machine shape)
def test_run_and_ci_captures_compare(vm_ready: None, tmp_path: Path) -> None:
    """`regress run` with default VM options on the same host: its captures compare with
    ci's without --force (same machine shape, same tracer, same workload)."""
    out = tmp_path / "ci"
    argv = ["--old", OLD, "--new", NEW, "--runs", "1", "--iterations", "2"]
    assert (
        cli_run(["ci", *argv, "--workloads", "ps-loop", "--fail-on", "none", "-o", str(out)]) == 0
    )
    run_dir = tmp_path / "run"
    assert cli_run(["run", *argv, "-o", str(run_dir)]) == 0
    for side in ("old", "new"):
        rc = cli_run(["diff", str(run_dir / f"{side}.json"), str(out / "ps-loop" / f"{side}.json")])
        assert rc in (0, 1), f"{side}: run and ci captures are not comparable"


@pytest.mark.slow  # (default suite: the exit codes via a fixture backend in test_ci.py,
# the A/A statistics on this host in test_differ_groundtruth.py)
def test_aa_run_exits_zero(vm_ready: None, tmp_path: Path) -> None:
    out = tmp_path / "aa"
    rc = cli_run(
        [
            "ci",
            "--old",
            NEW,
            "--new",
            NEW,
            "--workloads",
            "ps-loop",
            "--runs",
            "4",
            "--iterations",
            "2",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    summary = _check_bundle(out, ["ps-loop"], 0)
    assert summary["workloads"][0]["regressions"] == 0  # type: ignore[index]


@pytest.mark.slow
def test_kernel_bump_three_workloads(vm_ready: None, tmp_path: Path) -> None:
    out = tmp_path / "ci"
    workloads = ["ps-loop", "proc-scan", "fork-exec"]
    rc = cli_run(
        [
            "ci",
            "--old",
            OLD,
            "--new",
            NEW,
            "--workloads",
            ",".join(workloads),
            "--runs",
            "6",
            "--iterations",
            "10",
            "-o",
            str(out),
        ]
    )
    summary = _check_bundle(out, workloads, rc)
    assert rc in (0, 1) and summary["verdict"] == ("pass" if rc == 0 else "fail")


@pytest.mark.slow
def test_sharded_ci_and_merge_boot_real_kernels(vm_ready: None, tmp_path: Path) -> None:
    """Two shards boot their own workloads' kernels; the merge judges them once."""
    common = ["ci", "--old", OLD, "--new", NEW, "--workloads", "ps-loop,fork-exec"]
    common += ["--runs", "4", "--iterations", "2", "--fail-on", "any", "--no-narrow"]
    for i in (1, 2):
        assert cli_run([*common, "--shard", f"{i}/2", "-o", str(tmp_path / f"s{i}")]) == 0
    mine = [json.loads((tmp_path / f"s{i}" / "shard.json").read_text())["mine"] for i in (1, 2)]
    assert sorted(mine[0] + mine[1]) == ["fork-exec", "ps-loop"] and all(mine)
    kc = tmp_path / "kcidb.json"
    rc = cli_run(["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "-o", str(tmp_path / "m"),
                  "--kcidb", str(kc)])  # fmt: skip
    summary = _check_bundle(tmp_path / "m", ["ps-loop", "fork-exec"], rc)
    assert rc == (1 if any(w["significant"] for w in summary["workloads"]) else 0)  # type: ignore[index]
    from kcidb_io import schema

    schema.LATEST.validate(json.loads(kc.read_text()))

"""``regress ci`` without VMs: the real ``run_ci`` over a VM backend that returns real captures.

``FixtureBackend`` is registered in the VM stage's backend registry and stands in for
QEMU only; the pipeline, diffing, the A/A control, reports, index, summary, JUnit and
exit codes are the real code. The captures in
``testdata/ci`` come from real QEMU boots (see test_controls.py); the VM variant
is tests/test_ci_vm.py.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from regress.cli.main import run as cli_run
from regress.errors import VMError
from regress.gate.ci import CiOptions, run_ci, workload_slug
from regress.model.capture import load_capture, save_capture
from regress.model.result import FailOn, Thresholds
from regress.vm import backend as vm_backend
from regress.vm.backend import CapturePair, RunOptions

CI = Path(__file__).resolve().parent / "testdata" / "ci"
PAIRS = {
    # a real kernel bump (6.1.0-47 vs 6.1.0-56, 4 runs x 3 iterations); verdict not asserted
    "bump": ("ps-loop-6.1.0-47.json.gz", "ps-loop-6.1.0-56.json.gz"),
    # control vs control with find_ge_pid() calls tripled: significant, not a regression
    "divergent": ("selftest-control.json.gz", "selftest-control.json.gz"),
    # same kernel, second boot with the injected fault: liveness + openat EACCES regressions
    "regression": ("selftest-control.json.gz", "selftest-faulted.json.gz"),
    # the same capture on both sides
    "clean": ("selftest-control.json.gz", "selftest-control.json.gz"),
}


class FixtureBackend:
    """Maps a workload name to a pair of fixture captures; 'broken' raises like a failed boot."""

    name = "fixture"

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping
        self.calls: list[RunOptions] = []
        vm_backend.register(self.name, lambda: self)

    def dry_run_lines(self, opts: RunOptions) -> list[str]:
        return [f"# fixture captures for {opts.workload}"]

    def capture_pair(
        self, opts: RunOptions, progress: object, cancel: object = None
    ) -> CapturePair:
        self.calls.append(opts)
        kind = "regression" if opts.fault is not None else self.mapping[opts.workload]
        if kind == "broken":
            raise VMError("old kernel boot 0: timed out after 5 s; console log: /x/old.log")
        assert opts.out_dir is not None
        opts.out_dir.mkdir(parents=True, exist_ok=True)
        caps = {}
        for side, name in zip(("old", "new"), PAIRS[kind], strict=True):
            caps[side] = opts.out_dir / f"{side}.json.gz"
            shutil.copyfile(CI / name, caps[side])
        if kind == "divergent":
            cap = load_capture(caps["new"])
            for run in cap.runs:
                run.functions["find_ge_pid"] *= 3
            caps["new"] = opts.out_dir / "new.json"
            save_capture(cap, caps["new"])
        return CapturePair(out_dir=opts.out_dir, captures=caps)


def _run(
    tmp_path: Path, mapping: dict[str, str], fail_on: str = "regression", runs: int = 4, **kw: Any
) -> tuple[int, Path, FixtureBackend]:
    runner = FixtureBackend(mapping)
    opts = CiOptions(
        old="debian:6.1.0-47-cloud-amd64",
        new="debian:6.1.0-56-cloud-amd64",
        workloads=list(mapping),
        run=RunOptions(runs=runs),
        fail_on=FailOn(fail_on),
        out_dir=tmp_path / "ci",
        backend="fixture",
        narrow=kw.pop("narrow", False),  # narrowing has its own tests (test_architecture)
        **kw,
    )
    outcome = run_ci(opts)
    return outcome.exit_code, tmp_path / "ci", runner


@pytest.mark.parametrize(
    "fail_on, mapping, code",
    [
        ("regression", {"a": "clean", "b": "divergent"}, 0),
        ("any", {"a": "clean", "b": "divergent"}, 1),
        ("any", {"a": "clean"}, 0),
        ("regression", {"a": "regression", "b": "clean"}, 1),
        ("none", {"a": "regression", "b": "divergent"}, 0),
        ("none", {"a": "regression", "b": "broken"}, 2),
        ("regression", {"a": "clean", "b": "broken"}, 2),
    ],
)
def test_exit_codes(tmp_path: Path, fail_on: str, mapping: dict[str, str], code: int) -> None:
    got, out, runner = _run(tmp_path, mapping, fail_on)
    assert got == code
    assert [c.workload for c in runner.calls] == list(mapping)  # a broken one stops nothing
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exit_code"] == code and summary["fail_on"] == fail_on


def test_outputs_for_a_regression(tmp_path: Path) -> None:
    code, out, runner = _run(
        tmp_path,
        {"ps-loop": "regression", "proc-scan": "clean", "fork-exec": "broken", "bump": "bump"},
    )
    assert code == 2
    assert runner.calls[0].runs == 4 and runner.calls[0].out_dir == out / "ps-loop"
    # reports per workload, with the A/A count in the method section
    html = (out / "ps-loop" / "report.html").read_text()
    text = (out / "ps-loop" / "report.txt").read_text()
    assert "produced 0 significant divergence(s)" in html
    assert "No A/A negative control" not in text
    # summary
    s = json.loads((out / "summary.json").read_text())
    assert s["format"] == "regress-ci-summary" and s["verdict"] == "error"
    w = {x["workload"]: x for x in s["workloads"]}
    assert w["ps-loop"]["status"] == "regression" and w["ps-loop"]["failed"]
    assert [t["key"] for t in w["ps-loop"]["top"][:2]] == ["liveness", "syscall:openat:EACCES"]
    assert w["ps-loop"]["aa"]["false_positives"] == 0
    assert w["ps-loop"]["reports"] == {
        "html": "ps-loop/report.html",
        "text": "ps-loop/report.txt",
        "repro": "ps-loop/repro.sh",
    }
    assert (out / "ps-loop" / "repro.sh").stat().st_mode & 0o111  # executable
    assert w["proc-scan"]["status"] == "clean" and not w["proc-scan"]["failed"]
    assert w["fork-exec"]["status"] == "error" and "timed out" in w["fork-exec"]["error"]
    # JUnit: one case per workload; failure message lists the top divergences
    root = ET.parse(out / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"ps-loop", "proc-scan", "fork-exec", "bump"}
    assert w["bump"]["status"] != "error" and (out / "bump" / "report.html").is_file()
    fail = cases["ps-loop"].find("failure")
    assert fail is not None and fail.get("type") == "regression"
    msg = fail.get("message") or ""
    assert msg.startswith("7 significant divergence(s), 2 regression(s) among 141 keys: ")
    assert "liveness failures 0.0% -> 100.0% of iterations REGRESSION" in msg
    assert "syscall:openat:EACCES appeared 0 -> 1.00/it REGRESSION" in msg
    assert cases["proc-scan"].find("failure") is None and cases["proc-scan"].find("error") is None
    err = cases["fork-exec"].find("error")
    assert err is not None and "timed out" in (err.get("message") or "")
    assert "." not in (cases["ps-loop"].get("classname") or "").split(".", 1)[1]
    # index page: links to every report, self-contained
    index = (out / "index.html").read_text()
    for link in ('href="ps-loop/report.html"', 'href="proc-scan/report.txt"', "junit.xml"):
        assert link in index
    assert "ERROR" in index and "<script" not in index
    assert "http://" not in index and "https://" not in index


def test_index_escapes_hostile_names(tmp_path: Path) -> None:
    hostile = '<img src=x onerror="alert(1)">&'
    code, out, _ = _run(tmp_path, {hostile: "clean"})
    assert code == 0
    index = (out / "index.html").read_text()
    assert "<img" not in index and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&amp;" in index
    slug = workload_slug(hostile)
    assert "/" not in slug and "<" not in slug and (out / slug / "report.html").is_file()
    ET.parse(out / "junit.xml")  # still well-formed XML


def test_few_runs_warn_in_summary(tmp_path: Path) -> None:
    _, out, _ = _run(tmp_path, {"a": "clean"}, runs=2)
    warnings = json.loads((out / "summary.json").read_text())["warnings"]
    assert any("at least 4 runs" in w for w in warnings)


def test_slugs() -> None:
    assert workload_slug("ps-loop") == "ps-loop"
    assert workload_slug("specs/my load.toml") == "my_load"
    assert workload_slug("../..") == "workload"


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_run(["ci", "--fail-on", "sometimes"]) == 2
    assert cli_run(["ci", "--workloads", "ps-loop,ps-loop", "--runs", "4"]) == 2
    assert "twice" in capsys.readouterr().err
    assert cli_run(["ci", "--workloads", " , "]) == 2
    assert cli_run(["ci", "--runs", "0"]) == 2
    assert cli_run(["selftest", "--fault-comm", "x" * 20]) == 2
    assert "fault comm" in capsys.readouterr().err


def test_selftest_inside_ci(tmp_path: Path) -> None:
    """--selftest: the canary runs first on the new kernel, with the fault, and is reported."""
    code, out, runner = _run(tmp_path, {"ps-loop": "clean"}, selftest=True)
    assert code == 0
    first = runner.calls[0]
    assert first.fault is not None and first.old == first.new == "debian:6.1.0-56-cloud-amd64"
    assert runner.calls[1].fault is None
    s = json.loads((out / "summary.json").read_text())
    assert s["selftest"]["passed"] and s["selftest"]["report"] == "selftest/report.html"
    cases = {c.get("name"): c for c in ET.parse(out / "junit.xml").getroot().iter("testcase")}
    st = cases["selftest (injected fault)"]
    assert st.find("failure") is None and st.find("error") is None
    assert "canary caught" in (out / "index.html").read_text()


def test_missed_canary_makes_ci_exit_2(tmp_path: Path) -> None:
    code, out, _ = _run(
        tmp_path, {"ps-loop": "clean"}, selftest=True, thresholds=Thresholds(min_abs_delta=100.0)
    )
    assert code == 2
    s = json.loads((out / "summary.json").read_text())
    assert not s["selftest"]["passed"] and s["verdict"] == "error"
    root = ET.parse(out / "junit.xml").getroot()
    case = next(c for c in root.iter("testcase") if c.get("name") == "selftest (injected fault)")
    fail = case.find("failure")
    assert fail is not None and "canary MISSED" in (fail.get("message") or "")
    assert root.find("testsuite").get("failures") == "1"  # type: ignore[union-attr]
    assert "MISSED" in (out / "index.html").read_text()


def test_selftest_on_an_own_build_passes_paths_and_append(tmp_path: Path) -> None:
    from regress.gate.selftest import SelftestOptions, run_selftest
    from regress.vm.backend import KernelPaths

    paths = KernelPaths(tmp_path / "bzImage", tmp_path / "lib/modules/6.9.0", None)
    runner = FixtureBackend({})
    base = SelftestOptions().run
    res = run_selftest(
        SelftestOptions(
            kernel=str(paths.bzimage),
            paths=paths,
            run=dataclasses.replace(base, append=["lsm=capability,bpf"], out_dir=tmp_path / "st"),
            backend="fixture",
        )
    )
    call = runner.calls[0]
    assert call.old_paths == call.new_paths == paths and call.append == ["lsm=capability,bpf"]
    assert call.fault is not None and "LSM_PROBE(file_open" in call.fault["bpf_text"]
    assert res.verdict.passed and (tmp_path / "st" / "selftest.json").is_file()
    assert cli_run(["selftest", "--modules", str(tmp_path)]) == 2


def test_aa_false_positives_are_warned_about(tmp_path: Path) -> None:
    """An old capture whose even and odd runs differ exactly: the A/A count reaches the reports."""

    class Alternating(FixtureBackend):
        def capture_pair(
            self, opts: RunOptions, progress: object, cancel: object = None
        ) -> CapturePair:
            outcome = super().capture_pair(opts, progress)
            cap = load_capture(outcome.captures["old"])
            cap.runs = [
                dataclasses.replace(cap.runs[i % len(cap.runs)], index=i) for i in range(opts.runs)
            ]
            cap.requested_runs = opts.runs
            for run in cap.runs:
                run.syscalls = {
                    **run.syscalls,
                    "mkdir": {"17": 5 * run.iterations if run.index % 2 else 0},
                }
            outcome.captures["old"] = opts.out_dir / "old.json"  # type: ignore[operator]
            save_capture(cap, outcome.captures["old"])
            return outcome

    Alternating({"ps-loop": "clean"})
    opts = CiOptions(
        workloads=["ps-loop"], run=RunOptions(runs=4), out_dir=tmp_path / "ci", backend="fixture"
    )
    outcome = run_ci(opts)
    w = outcome.workloads[0]
    # even runs 0, odd runs 5/iteration: the QL test sees it even at 2 vs 2 runs
    assert w.aa is not None and w.aa.false_positives is not None and w.aa.false_positives >= 1
    Alternating({"ps-loop": "clean"})
    six = CiOptions(
        workloads=["ps-loop"],
        run=RunOptions(runs=6),
        out_dir=tmp_path / "ci6",
        fail_on=FailOn.none,
        backend="fixture",
    )
    outcome = run_ci(six)
    w = outcome.workloads[0]
    assert w.aa is not None and w.aa.false_positives is not None
    assert w.aa.false_positives >= 1 and "syscall:mkdir:EEXIST" in w.aa.significant_keys
    assert any("A/A control found" in x for x in outcome.warnings)
    text = (tmp_path / "ci6" / "ps-loop" / "report.txt").read_text().replace("\n  ", " ")
    assert f"produced {w.aa.false_positives} significant divergence(s)" in text


SHARD_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from test_ci import FixtureBackend
FixtureBackend({mapping!r})
from regress.cli.main import run
sys.exit(run({argv!r}))
"""


def test_three_shards_merge_to_the_unsharded_run(tmp_path: Path) -> None:
    """3 shards (separate processes, separate output directories) + regress merge give the
    verdicts, significant rows and JUnit test cases of one unsharded run over the same
    captures (real QEMU captures, through a registered fixture backend)."""
    import subprocess
    import sys

    mapping = {
        "ps-loop": "regression",
        "proc-scan": "divergent",
        "fork-exec": "clean",
        "file-io": "bump",
    }
    common = ["--workloads", ",".join(mapping), "--runs", "4", "--backend", "fixture"]
    common += ["--no-narrow", "--fail-on", "any"]  # (shards do not narrow: see README)
    FixtureBackend(mapping)
    one = tmp_path / "one"
    code_one = cli_run(["ci", *common, "-o", str(one)])
    tests = str(Path(__file__).resolve().parent)
    taken: list[str] = []
    for i in (1, 2, 3):
        argv = ["ci", *common, "--shard", f"{i}/3", "-o", str(tmp_path / f"s{i}")]
        child = SHARD_CHILD.format(tests=tests, mapping=mapping, argv=argv)
        proc = subprocess.run(
            [sys.executable, "-c", child], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        doc = json.loads((tmp_path / f"s{i}" / "shard.json").read_text())
        assert (
            doc["shard"] == i
            and doc["of"] == 3
            and not (tmp_path / f"s{i}" / "summary.json").exists()
        )
        taken += doc["mine"]
    assert sorted(taken) == sorted(mapping)  # every workload in exactly one shard
    merged = tmp_path / "merged"
    code_merged = cli_run(
        ["merge", *(str(tmp_path / f"s{i}") for i in (3, 1, 2)), "-o", str(merged)]
    )
    assert code_merged == code_one == 1

    def essence(out: Path) -> list[tuple[Any, ...]]:
        s = json.loads((out / "summary.json").read_text())
        return [
            (w["workload"], w["status"], w["failed"], w["significant"], w["regressions"],
             w["keys_tested"], [t["key"] for t in w["top"]])
            for w in s["workloads"]
        ]  # fmt: skip

    assert essence(merged) == essence(one)

    def cases(out: Path) -> list[tuple[str | None, str | None, bool]]:
        root = ET.parse(out / "junit.xml").getroot()
        return [
            (c.get("name"), c.get("classname"), c.find("failure") is not None)
            for c in root.iter("testcase")
        ]

    assert cases(merged) == cases(one)
    assert (merged / "ps-loop" / "report.html").is_file() and (merged / "index.html").is_file()
    # the slicing is deterministic: the same inputs give the same slices
    from regress.gate import shard

    work = shard.units(list(mapping), 4, None)
    assert shard.assign(work, 3) == shard.assign(list(reversed(work)), 3)


def test_merge_refuses_shards_that_do_not_belong_together(tmp_path: Path) -> None:
    from regress.gate import shard

    def fake(d: Path, i: int, n: int, runs: int = 4) -> Path:
        d.mkdir()
        doc = shard.manifest(
            shard=(i, n), mine=[], workloads=["ps-loop"], old="a", new="b", runs=runs,
            iterations=None, vm_shape={}, thresholds=Thresholds().as_dict(), fail_on="any",
            captures={}, errors={},
        )  # fmt: skip
        shard.write_manifest(d, doc)
        return d

    a, b = fake(tmp_path / "a", 1, 3), fake(tmp_path / "b", 2, 3)
    c = fake(tmp_path / "c", 3, 3, runs=5)
    for argv, needle in (
        ([a, b], "missing 3"),
        ([a, b, c], "runs differs"),
        ([a, a, b], "given twice: 1"),
    ):
        with pytest.raises(Exception, match=needle):
            shard.read_shards(argv)
    with pytest.raises(Exception, match="expected I/N"):
        shard.parse_shard("3")
    with pytest.raises(Exception, match="between 1 and N"):
        shard.parse_shard("4/3")


def test_kcidb_output_validates_with_kcidb_io(tmp_path: Path) -> None:
    """`regress ci --kcidb FILE` on real captures: KCIDB I/O v5 that kcidb-io accepts, one
    test per workload with the gate's status and links to the published reports."""
    from kcidb_io import schema

    mapping = {"ps-loop": "regression", "proc-scan": "clean", "fork-exec": "broken"}
    FixtureBackend(mapping)
    out, kc = tmp_path / "ci", tmp_path / "kcidb.json"
    argv = ["ci", "--workloads", ",".join(mapping), "--runs", "4", "--backend", "fixture"]
    argv += ["--no-narrow", "-o", str(out), "--kcidb", str(kc), "--kcidb-origin", "mylab"]
    argv += ["--kcidb-url", "https://ci.example.org/artifacts/42/reports/ci"]
    assert cli_run(argv) == 2  # (fork-exec is broken: the gate is blind there)
    doc = json.loads(kc.read_text())
    schema.LATEST.validate(doc)
    tests = {t["path"]: t for t in doc["tests"]}
    assert tests["regress.ps-loop"]["status"] == "FAIL"
    assert tests["regress.proc-scan"]["status"] == "PASS"
    assert tests["regress.fork-exec"]["status"] == "ERROR"
    assert tests["regress.ps-loop"]["misc"]["regressions"] >= 1
    assert tests["regress.ps-loop"]["log_url"].endswith("/ps-loop/report.html")
    assert {t["origin"] for t in doc["tests"]} == {"mylab"}
    assert doc["checkouts"][0]["id"] == "mylab:debian:6.1.0-56-cloud-amd64"
    bad = ["ci", "--workloads", "proc-scan", "--backend", "fixture", "--no-narrow"]
    bad += ["-o", str(tmp_path / "x"), "--kcidb", str(kc), "--kcidb-origin", "My Lab"]
    assert cli_run(bad) == 2  # an origin KCIDB would refuse is refused here


def test_merge_combines_one_side_run_by_run(tmp_path: Path) -> None:
    """A side captured in two shards (runs split across boots) merges into one capture
    with every run; a different tracer or machine is refused with the reason."""
    from regress.gate import shard

    cap = load_capture(CI / "ps-loop-6.1.0-56.json.gz")
    a = dataclasses.replace(cap, runs=cap.runs[:2], requested_runs=2)
    b = dataclasses.replace(cap, runs=cap.runs[2:], requested_runs=len(cap.runs) - 2)
    merged = shard.merge_runs([(tmp_path / "a", a), (tmp_path / "b", b)], "ps-loop new")
    assert [r.index for r in merged.runs] == list(range(len(cap.runs)))
    assert [r.syscalls for r in merged.runs] == [r.syscalls for r in cap.runs]
    assert merged.complete
    other = dataclasses.replace(
        b, tracer=dataclasses.replace(b.tracer, fingerprint="x"), runs=list(b.runs)
    )
    with pytest.raises(Exception, match="differ in tracer fingerprint"):
        shard.merge_runs([(tmp_path / "a", a), (tmp_path / "b", other)], "ps-loop new")
    bigger = dataclasses.replace(b, machine=dataclasses.replace(b.machine, cpus=8))
    with pytest.raises(Exception, match="differ in machine shape"):
        shard.merge_runs([(tmp_path / "a", a), (tmp_path / "b", bigger)], "ps-loop new")

"""Real boots: Debian kernels under QEMU (TCG here), the guest agent, real kernel function counts.

Needs the kernels and the guest image; the session fixture fetches/builds what is missing
(apt + debootstrap, ~1 min once, cached in ~/.cache/regress). Iterations are kept tiny:
these tests check the pipeline and its failure modes, not statistics.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from regress.cli.main import run as cli_run
from regress.errors import VMError
from regress.gate import pipeline
from regress.model import paths as model_paths
from regress.model.capture import load_capture
from regress.model.events import Event
from regress.model.result import Thresholds
from regress.vm import backend, image, kernels, orchestrate
from regress.vm.backend import KernelPaths, RunOptions

pytestmark = pytest.mark.vm

OLD, NEW = backend.DEFAULT_OLD, backend.DEFAULT_NEW


def test_default_comparison_counts_kernel_functions(vm_ready: None, tmp_path: Path) -> None:
    """Both default kernels, 1 run x 3 iterations of ps-loop: captures, diff, report."""
    functions = ["find_ge_pid", "proc_pid_*", "next_tgid", "regress_no_such_function"]
    opts = RunOptions(
        runs=1, iterations=3, out_dir=tmp_path / "r", functions=functions, function_returns=True
    )
    events: list[Event] = []
    outcome = pipeline.compare(opts, Thresholds(), events.append)
    for side, release in (("old", "6.1.0-47-cloud-amd64"), ("new", "6.1.0-56-cloud-amd64")):
        cap = load_capture(outcome.captures[side])
        assert cap.complete and cap.kernel.release == release
        assert cap.machine.backend == "qemu" and cap.machine.accel in ("tcg", "kvm")
        st = cap.probe_status("function", "find_ge_pid")
        assert st is not None and st.status == "attached", st
        # ps walks /proc once per iteration: find_ge_pid runs exactly 4 times (2 kernels).
        assert cap.runs[0].functions.get("find_ge_pid") == 4 * 3, cap.runs[0].functions
        # ...and returns exactly as often, some of them NULL (the end of each /proc walk);
        # per iteration, the counts add up to the run's.
        rets = cap.runs[0].funcrets.get("find_ge_pid", {})
        assert sum(rets.values()) == 4 * 3 and rets.get("0", 0) >= 3, rets
        assert cap.probe_status("funcret", "find_ge_pid") is not None
        series = cap.runs[0].per_iteration
        assert series is not None and sum(series["funcret"]["find_ge_pid"]["0"]) == rets["0"]
        assert cap.runs[0].lost.get("returns_full") == 0
        notes = cap.notes
        assert any("in one kprobe event" in n and "ftrace paused" in n for n in notes), notes
        assert any("in one kretprobe event" in n for n in notes), notes
        assert cap.runs[0].functions.get("next_tgid", 0) > 0
        missing = cap.probe_status("function", "regress_no_such_function")
        assert missing is not None and missing.status == "absent", missing
        assert "regress_no_such_function" not in cap.runs[0].functions
        assert any(p.kind == "function" and p.name.startswith("proc_pid_") for p in cap.probes)
        assert cap.runs[0].exit_codes == [0, 0, 0]
        assert sum(cap.runs[0].syscalls.get("openat", {}).values()) > 0
        assert cap.kernel.config_hash  # the kernel's config reached the guest
    assert (tmp_path / "r" / "logs" / "old-boot0.console.log").is_file()
    assert any(e.kind == "agent_ready" and e.side == "old" for e in events)
    assert outcome.reports["html"].is_file() and outcome.reports["text"].is_file()
    assert "find_ge_pid" in (tmp_path / "r" / "report.html").read_text()


def test_kernel_panic_names_the_console_log(
    vm_ready: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli_run(
        [
            "run",
            "--runs",
            "1",
            "--iterations",
            "1",
            "--serial",
            "--append",
            "root=/dev/nonexistent",
            "-o",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == VMError.exit_code
    log = tmp_path / "r" / "logs" / "old-boot0.console.log"
    assert "panicked" in err and str(log) in err, err
    assert "Kernel panic" in log.read_text(errors="replace")
    assert not (tmp_path / "r" / "old.json").exists()


def test_hang_times_out_and_names_the_console_log(vm_ready: None, tmp_path: Path) -> None:
    opts = RunOptions(runs=1, iterations=1, timeout_s=2.0, out_dir=tmp_path / "r", parallel=False)
    with pytest.raises(VMError, match="timed out after") as info:
        orchestrate.capture_pair(opts)
    assert str(tmp_path / "r" / "logs" / "old-boot0.console.log") in info.value.one_line()
    assert not (tmp_path / "r" / "old.json").exists()


def _guests_writing_to(directory: Path) -> list[str]:
    """Command lines of running QEMU processes whose arguments name ``directory``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            argv
            and argv[0].endswith(b"qemu-system-x86_64")
            and str(directory).encode() in (b" ".join(argv))
        ):
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


def test_sigterm_takes_the_guests_down(vm_ready: None, tmp_path: Path) -> None:
    """``kill`` (SIGTERM, a cancelled CI job) on ``regress run`` while both guests run: it
    exits 130 saying so, and no QEMU guest outlives it (they run in their own sessions, so
    the default SIGTERM handler used to orphan them)."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "r"
    proc = subprocess.Popen(
        [sys.executable, "-m", "regress.cli.main", "run", "--runs", "1", "--iterations", "2",
         "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not _guests_writing_to(out) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        assert _guests_writing_to(out), "no guest started within 120 s"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert b"regress: interrupted" in stderr, stderr
    assert _guests_writing_to(out) == []


def test_failing_workload_is_an_outcome_not_an_abort(vm_ready: None, tmp_path: Path) -> None:
    """The command fails (exit 3) in the new kernel's second run only: both kernels still
    capture every run, and the comparison ranks the exit-status row first."""
    spec = tmp_path / "flaky.toml"
    spec.write_text(
        'name = "flaky"\niterations = 2\ntimeout_s = 20\n'
        'command = "if [ -e /tmp/once ] && uname -r | grep -q -- -56-; then exit 3; fi; '
        'touch /tmp/once"\n'
    )
    opts = RunOptions(
        workload=str(spec), runs=2, out_dir=tmp_path / "r", functions=[], tracepoints=[]
    )
    outcome = pipeline.compare(opts, Thresholds())
    old = load_capture(tmp_path / "r" / "old.json")
    new = load_capture(tmp_path / "r" / "new.json")
    assert old.complete and new.complete and len(new.runs) == 2
    assert [r.exit_codes for r in old.runs] == [[0, 0], [0, 0]]
    assert new.runs[0].exit_codes[0] == 0 and new.runs[1].exit_codes == [3, 3]
    assert not (tmp_path / "r" / "new.partial.json").exists()
    top = outcome.result.divergences[0]
    assert top.key == "exit-status" and sum(top.new.raw) == 3, top


@pytest.mark.slow
def test_fresh_boot_per_run(vm_ready: None, tmp_path: Path) -> None:
    opts = RunOptions(runs=2, iterations=2, fresh_boot_per_run=True, out_dir=tmp_path / "r")
    outcome = orchestrate.capture_pair(opts)
    cap = load_capture(outcome.captures["new"])
    assert cap.complete and [r.boot for r in cap.runs] == [0, 1]
    assert len(outcome.boots) == 4


@pytest.mark.slow
def test_kernel_given_as_paths_boots(
    vm_ready: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 'user build' (the cached Debian kernel's files, given as paths) boots and traces."""
    deb = kernels.fetch_debian(NEW)
    real = image.images_dir() / image.recipe_hash()  # reuse the built root image
    monkeypatch.setenv(model_paths.CACHE_ENV, str(tmp_path / "cache"))
    image.images_dir().mkdir(parents=True)
    (image.images_dir() / image.recipe_hash()).symlink_to(real)
    paths = KernelPaths(
        deb.vmlinuz, deb.modules_dir, deb.tree / "usr" / "src" / f"linux-headers-{deb.release}"
    )
    opts = RunOptions(
        old_paths=paths, new_paths=paths, runs=1, iterations=2, out_dir=tmp_path / "r"
    )
    outcome = orchestrate.capture_pair(opts)
    cap = load_capture(outcome.captures["new"])
    assert cap.kernel.release == deb.release
    assert cap.runs[0].functions.get("find_ge_pid", 0) > 0


@pytest.mark.slow
def test_two_own_builds_of_one_image_are_two_sides(
    vm_ready: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same bzImage with two modules trees: two cache entries, a report that names two
    sides (not an A/A), taint and config recorded, and a Reproduce block with every path."""
    deb = kernels.fetch_debian(NEW)
    real = image.images_dir() / image.recipe_hash()
    monkeypatch.setenv(model_paths.CACHE_ENV, str(tmp_path / "cache"))
    image.images_dir().mkdir(parents=True)
    (image.images_dir() / image.recipe_hash()).symlink_to(real)
    trees = {}
    for name in ("baseline", "patched"):
        mods = tmp_path / name / "lib" / "modules" / deb.release
        shutil.copytree(
            deb.modules_dir, mods, symlinks=True, ignore=shutil.ignore_patterns("build", "source")
        )
        trees[name] = mods
    (trees["patched"] / "extra").mkdir()
    (trees["patched"] / "extra" / "README").write_text("an out-of-tree build would go here\n")
    headers = deb.tree / "usr" / "src" / f"linux-headers-{deb.release}"
    before = {p: p.stat().st_mtime for p in deb.vmlinuz.parent.iterdir()}
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "regress.cli.main", "run", "--no-narrow", "--runs", "1"]
    argv += ["--iterations", "3", "-o", str(out)]
    for side, name in (("old", "baseline"), ("new", "patched")):
        argv += [f"--{side}-kernel", str(deb.vmlinuz), f"--{side}-modules", str(trees[name])]
        argv += [f"--{side}-headers", str(headers), f"--{side}-label", name]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    entries = [k for k in kernels.list_cached() if k.source == "paths"]
    assert len(entries) == 2 and len({dict(k.build)["key"] for k in entries}) == 2
    old_cap, new_cap = load_capture(out / "old.json"), load_capture(out / "new.json")
    assert (old_cap.kernel.label, new_cap.kernel.label) == ("baseline", "patched")
    assert old_cap.kernel.config is not None  # from the headers' .config
    assert new_cap.kernel.tainted is not None and new_cap.kernel.out_of_tree_modules == []
    text = (out / "report.txt").read_text()
    flat = " ".join(text.replace(" \\\n", " ").split())
    assert f"{deb.release} [baseline]..{deb.release} [patched]" in flat
    assert "an A/A comparison" not in flat
    assert (
        f"--old-modules {trees['baseline']}" in flat and f"--new-modules {trees['patched']}" in flat
    )
    assert f"--new-headers {headers}" in flat and "--new-label patched" in flat
    # nothing was written beside the user's files
    assert {p: p.stat().st_mtime for p in deb.vmlinuz.parent.iterdir()} == before
    assert sorted(p.name for p in trees["patched"].parent.parent.parent.iterdir()) == ["lib"]


GUEST_ATTACH_PATHS = r"""
import json, sys
from pathlib import Path
from regress.guest import kprobe_events
from regress.guest.agent import spec_from_job
from regress.guest.environment import ensure_tracefs
from regress.guest.runner import run_capture

spec = spec_from_job(json.loads(sys.argv[1]))
fns = ["find_ge_pid", "next_tgid", "proc_pid_lookup", "proc_pid_instantiate", "oops_begin"]
out = {}

def capture(tag, own_kernel):
    c = run_capture(spec, runs=1, out=Path(f"/tmp/{tag}.json"), functions=fns,
                    own_kernel=own_kernel)
    out[tag] = {"functions": c.runs[0].functions, "funcrets": c.runs[0].funcrets,
                "notes": c.notes,
                "probes": {p.name: [p.status, p.reason] for p in c.probes if p.kind == "function"}}

capture("event", True)
kprobe_events.KprobeEvents.available = lambda self: False  # a kernel without kprobe_events
capture("perf", False)
out["left_over"] = (ensure_tracefs() / "kprobe_events").read_text()
out["ftrace_enabled"] = Path("/proc/sys/kernel/ftrace_enabled").read_text().strip()
print(json.dumps(out))
"""


def test_function_attach_paths_count_the_same(vm_ready: None, tmp_path: Path) -> None:
    """In a real guest: the multi-probe kprobe event (ftrace paused while arming) and the
    per-symbol perf kprobes give identical counts; a kprobe-blacklisted but traceable
    function is refused with the kernel's reason by both; nothing is left behind."""
    from regress.guest.agent import spec_to_job
    from regress.model.workload import resolve_workload

    spec = resolve_workload("ps-loop").with_iterations(2).with_function_returns()
    job = json.dumps(spec_to_job(spec))
    kernel = kernels.fetch_debian(NEW)
    res = orchestrate.boot_command(kernel, ["python3", "-c", GUEST_ATTACH_PATHS, job], tmp_path)
    cmd = (res.result or {}).get("command", {})
    assert cmd.get("rc") == 0, cmd.get("stderr", "")[-2000:]
    doc = json.loads(cmd["stdout"].strip().splitlines()[-1])
    event, perf = doc["event"], doc["perf"]
    assert any("in one kprobe event" in n and "ftrace paused" in n for n in event["notes"])
    assert any("perf kprobes, one per symbol" in n for n in perf["notes"])
    assert event["functions"]["find_ge_pid"] == 4 * 2, event["functions"]
    assert any("in one kretprobe event" in n for n in event["notes"]), event["notes"]
    assert any("perf kretprobes, one per symbol" in n for n in perf["notes"]), perf["notes"]
    for fn in ("find_ge_pid", "next_tgid", "proc_pid_lookup", "proc_pid_instantiate"):
        assert event["probes"][fn] == ["attached", None]
        assert event["functions"][fn] == perf["functions"][fn] > 0, (fn, event, perf)
        # every call returned once, classed the same way by both attach paths
        assert event["funcrets"][fn] == perf["funcrets"][fn], (fn, event, perf)
        assert sum(event["funcrets"][fn].values()) == event["functions"][fn], (fn, event)
    # the pid walk ends with NULL: find_ge_pid returned NULL at least once per iteration
    assert event["funcrets"]["find_ge_pid"].get("0", 0) >= 2, event["funcrets"]
    for side in (event, perf):
        status, reason = side["probes"]["oops_begin"]
        assert status == "failed" and "oops_begin" in reason, side["probes"]
        assert "oops_begin" not in side["functions"]
    assert "EINVAL" in event["probes"]["oops_begin"][1]
    assert "kprobes blacklist" in event["probes"]["oops_begin"][1]
    assert doc["left_over"] == "" and doc["ftrace_enabled"] == "1"


@pytest.mark.slow
def test_twenty_boots_power_off_without_a_panic(vm_ready: None, tmp_path: Path) -> None:
    """The guest's PID 1 outlives the sysrq power-off (no "Attempted to kill init")."""
    kernel = kernels.cached(kernels.resolve_release(backend.DEFAULT_NEW))
    assert kernel is not None
    for i in range(20):
        work = tmp_path / f"b{i}"
        work.mkdir()
        res = orchestrate.boot_command(kernel, ["true"], work, timeout=120)
        assert res.result is not None and res.result["command"]["rc"] == 0
        console = (work / "command-boot0.console.log").read_text(errors="replace")
        assert "Kernel panic" not in console, f"boot {i}: {console[-2000:]}"
        assert "Input/output error" not in console, f"boot {i}"


NEW_IN_612 = {
    "cachestat", "fchmodat2", "map_shadow_stack", "futex_wake", "futex_wait", "futex_requeue",
    "statmount", "listmount", "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules",
    "mseal",
}  # fmt: skip


@pytest.mark.slow
def test_61_to_612_names_the_new_syscalls_and_nothing_else(tmp_path: Path) -> None:
    """The bump most bookworm fleets face: 6.1 -> the 6.12 backport. The twelve syscalls
    6.1 lacks answer ENOSYS there and something else on 6.12; nothing else diverges."""
    from regress.diff.differ import diff_captures

    latest = [k for k in kernels.available_debian() if k.line == "6.12" and k.has_headers][-1]
    out = tmp_path / "bump"
    argv = [sys.executable, "-m", "regress.cli.main", "run", "--no-narrow", "--runs", "3"]
    argv += ["--old", "debian:6.1.0-57-cloud-amd64", "--new", f"debian:{latest.release}"]
    argv += ["-w", "new-syscalls", "-o", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    old, new = load_capture(out / "old.json"), load_capture(out / "new.json")
    assert new.kernel.upstream == latest.upstream and old.kernel.upstream is not None
    result = diff_captures(old, new)
    sig = {(d.key.split(":")[1], d.key.split(":")[2], d.cls) for d in result.significant}
    vanished = {name for name, errno, cls in sig if errno == "ENOSYS" and cls == "vanished"}
    assert vanished == NEW_IN_612, sig
    others = {(n, e, c) for n, e, c in sig if not (e == "ENOSYS" and c == "vanished")}
    assert {n for n, _e, c in others if c == "appeared"} == NEW_IN_612, others
    assert all(c == "appeared" and n in NEW_IN_612 for n, _e, c in others), others
    assert not result.regressions  # newly implemented syscalls are not regressions
    text = (out / "report.txt").read_text()
    assert f"v{old.kernel.upstream}..v{latest.upstream}" in text.replace("\n ", " ")


@pytest.mark.slow
def test_kernel_without_packaged_headers_runs_the_default_job(tmp_path: Path) -> None:
    """debian:6.1.0-48 has no headers package: the closest (6.1.0-47's) compile the tracer,
    the capture and the report say so, and the comparison runs as any other."""
    no_headers = next(
        k for k in kernels.available_debian() if k.line == "6.1" and not k.has_headers
    )
    out = tmp_path / "nh"
    argv = [sys.executable, "-m", "regress.cli.main", "run", "--no-narrow", "--runs", "2"]
    argv += ["--iterations", "10", "--new", f"debian:{no_headers.release}", "-o", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    new = load_capture(out / "new.json")
    assert new.kernel.release == no_headers.release and new.kernel.foreign_headers
    assert any("not " + no_headers.release + "'s own headers" in n for n in new.notes)
    entry = kernels.cached(no_headers.release)
    assert entry is not None and entry.headers and entry.headers != no_headers.release
    assert f"linux-headers-{entry.headers}" == new.kernel.headers
    assert "another kernel's: none packaged" in " ".join((out / "report.txt").read_text().split())

"""The real tracer on the real kernel (root). Never skipped: a missing
prerequisite fails with the reason, so a green run means the kernel was traced."""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from regress.cli.main import run as cli_run
from regress.errors import WorkloadRunError
from regress.guest.runner import run_capture
from regress.model.capture import load_capture
from regress.model.events import Event
from regress.model.workload import WorkloadSpec, spec_from_dict

pytestmark = pytest.mark.root

ESRCH = "3"
N_KILLS = 37
KILL_LOOP = (
    f"i=0; while [ $i -lt {N_KILLS} ]; do kill -0 2147483647 2>/dev/null; i=$((i + 1)); done"
)


@pytest.fixture(autouse=True)
def kernel_ready() -> None:
    """Fail (not skip) with the missing prerequisite."""
    assert os.geteuid() == 0, "kernel tests need root (run the suite as root)"
    assert Path("/sys/kernel/tracing/available_events").is_file(), (
        "tracefs not mounted: run scripts/setup.sh"
    )
    try:
        import bcc  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"bcc not importable ({exc}): run scripts/setup.sh")


def spec(**data: Any) -> WorkloadSpec:
    data.setdefault("name", "t")
    return spec_from_dict(data, source="test.toml", base_dir=data.pop("_base", None))


def test_exact_kill_esrch_per_iteration(tmp_path: Path) -> None:
    """dash's builtin kill on a pid that cannot exist: exactly N kill/ESRCH per iteration,
    while an untracked process doing the same thing concurrently is not counted."""
    noise = subprocess.Popen(["/bin/sh", "-c", "while :; do kill -0 2147483647 2>/dev/null; done"])
    try:
        c = run_capture(
            spec(command=KILL_LOOP, iterations=4, tracepoints=[]),
            runs=2,
            out=tmp_path / "c.json",
        )
    finally:
        noise.kill()
        noise.wait()
    assert len(c.runs) == 2 and c.complete
    for r in c.runs:
        assert r.syscalls["kill"] == {ESRCH: N_KILLS * 4}, r.syscalls["kill"]
        assert r.exit_codes == [0, 0, 0, 0]
        assert r.liveness == [None] * 4
        assert all(v == 0 for v in r.lost.values())
    # Per iteration, separately: one iteration per run.
    one = run_capture(spec(command=KILL_LOOP, iterations=1), runs=1, out=tmp_path / "d.json")
    assert one.runs[0].syscalls["kill"] == {ESRCH: N_KILLS}
    assert load_capture(tmp_path / "c.json").to_dict() == c.to_dict()


def test_per_iteration_counts_follow_each_iteration(tmp_path: Path) -> None:
    """Iteration i does i+1 failed opens (ENOENT) and i+1 kill/ESRCH: the per-iteration
    counts show exactly that, add up to the run's totals and survive a save/load."""
    cmd = (
        'for i in $(seq 0 "$REGRESS_ITERATION"); do true < /nonexistent-regress; '
        "kill -0 2147483647; done 2>/dev/null; true"
    )
    c = run_capture(
        spec(command=cmd, iterations=5, tracepoints=[]), runs=2, out=tmp_path / "c.json"
    )
    for r in c.runs:
        series = r.per_iteration
        assert series is not None
        assert series["syscall"]["kill"][ESRCH] == [1, 2, 3, 4, 5]
        enoent = series["syscall"]["openat"]["2"]
        # The shell's own start-up may fail opens too, but the same number every time.
        assert [b - a for a, b in itertools.pairwise(enoent)] == [1, 1, 1, 1], enoent
        assert r.series_problem() is None
        for name, subs in series["syscall"].items():
            for sub, values in subs.items():
                assert sum(values) == r.syscalls[name][sub]
    assert load_capture(tmp_path / "c.json").runs[1].per_iteration == c.runs[1].per_iteration


def test_children_and_tracepoints_followed(tmp_path: Path) -> None:
    """Subshells (forks) are tracked; fork/exit tracepoints count exactly."""
    cmd = (
        "(kill -0 2147483647) 2>/dev/null; (kill -0 2147483647) 2>/dev/null; "
        "(kill -0 2147483647) 2>/dev/null; true"
    )
    c = run_capture(
        spec(command=cmd, iterations=5),
        runs=1,
        out=tmp_path / "c.json",
        tracepoints=["sched:sched_process_fork", "sched:sched_process_exit", "nosuch:event"],
        functions=["find_ge_pid"],
    )
    r = c.runs[0]
    assert r.syscalls["kill"] == {ESRCH: 3 * 5}
    assert r.tracepoints == {"sched:sched_process_fork": 15, "sched:sched_process_exit": 20}
    st = {(p.kind, p.name): p for p in c.probes}
    assert st[("tracepoint", "sched:sched_process_fork")].status == "attached"
    assert st[("tracepoint", "nosuch:event")].status == "absent"
    fn = st[("function", "find_ge_pid")]
    kprobes = Path("/sys/kernel/tracing/kprobe_events").exists()
    if not kprobes:  # this host: reported as failed with the reason, never as 0 calls
        assert fn.status == "failed" and "kprobes unavailable" in (fn.reason or "")
        assert r.functions == {}


def test_counting_tracepoints_exact(tmp_path: Path) -> None:
    """Selected tracepoints (attached as raw tracepoints where possible) count exactly:
    dash's builtin kill sends 7 handled SIGUSR1 per iteration to itself, and the root,
    continued by the runner, sends its parent one SIGCHLD (CLD_CONTINUED) from its own
    context: 8 generated, 7 delivered. Raw and perf attachment gave the same counts."""
    cmd = "trap : USR1; i=0; while [ $i -lt 7 ]; do kill -USR1 $$; i=$((i + 1)); done"
    c = run_capture(
        spec(command=cmd, iterations=3),
        runs=2,
        out=tmp_path / "c.json",
        tracepoints=["signal:signal_generate", "signal:signal_deliver"],
    )
    for r in c.runs:
        assert r.tracepoints == {"signal:signal_generate": 24, "signal:signal_deliver": 21}
        assert r.syscalls["kill"] == {"0": 21}
        assert r.retvals["kill"] == {"0": 21}
    st = {(p.kind, p.name): p.status for p in c.probes}
    assert st[("tracepoint", "signal:signal_generate")] == "attached"


def test_retval_histogram(tmp_path: Path) -> None:
    """dd writes 7 blocks of 3000 bytes: 7 writes in bucket 12 (2048..4095) per iteration."""
    c = run_capture(
        spec(command="dd if=/dev/zero of=/dev/null bs=3000 count=7 status=none", iterations=3),
        runs=1,
        out=tmp_path / "c.json",
    )
    r = c.runs[0]
    assert r.retvals["write"] == {"12": 21}
    assert r.retvals["read"]["12"] >= 21
    assert r.syscalls["write"] == {"0": 21}


def test_liveness_workdir_files_env(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("payload\n")
    s = spec(
        _base=tmp_path,
        command="cat data.txt; [ $((REGRESS_ITERATION % 2)) = 0 ] && echo even; "
        '[ "$PWD" = "$REGRESS_WORKDIR" ] && [ "$MY_VAR" = x ]',
        iterations=4,
        files=["data.txt"],
        env={"MY_VAR": "x"},
        liveness='grep -q even "$REGRESS_OUT" && grep -q payload "$REGRESS_OUT"',
    )
    events: list[Event] = []
    c = run_capture(s, runs=2, out=tmp_path / "c.json", on_event=events.append)
    assert [r.liveness for r in c.runs] == [[True, False, True, False]] * 2
    kinds = [e.kind for e in events]
    assert kinds[:2] == ["loading", "loaded"]
    assert kinds.count("iteration") == 8 and kinds.count("saved") == 2
    assert kinds[-1] == "saved"


def test_failing_iterations_are_outcomes_and_diff_ranks_them_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command starts failing (exit 3) in every 3rd iteration on one side: both sides
    capture completely, and ``regress diff`` ranks the exit-status row first (exit 1)."""
    switch = tmp_path / "switch"
    s = spec(
        command='if [ -e "$SWITCH" ] && [ $((REGRESS_ITERATION % 3)) -eq 0 ]; then '
        "echo broken >&2; exit 3; fi; true",
        iterations=6,
        tracepoints=[],
        env={"SWITCH": str(switch)},
    )
    good = run_capture(s, runs=4, out=tmp_path / "old.json")
    switch.touch()
    bad = run_capture(s, runs=4, out=tmp_path / "new.json")
    assert good.complete and bad.complete
    assert [r.exit_codes for r in bad.runs] == [[3, 0, 0, 3, 0, 0]] * 4
    assert [r.exit_codes for r in good.runs] == [[0] * 6] * 4
    assert all(r.timed_out == [False] * 6 for r in bad.runs)
    rc = cli_run(
        ["diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--fail-on", "regression"]
    )
    out = capsys.readouterr().out
    assert rc == 1, out
    first = next(line for line in out.splitlines() if line.lstrip().startswith("1 "))
    assert "exit-status!" in first and "0/24" in first and "8/24" in first, first
    assert "old: exit 0 x24; new: exit 0 x16, exit 3 x8" in out
    # The failing iterations' own mechanism, from the per-iteration counts: they write
    # "broken" to stderr -- the only keys that differ from the passing iterations of the
    # same kernel.
    from regress.diff.differ import diff_captures

    result = diff_captures(good, bad)
    assert [c.side for c in result.contrasts] == ["new"]
    c = result.contrasts[0]
    assert (c.failing, c.passing) == (8, 16)
    rows = {(r.kind, r.name, r.sub): (r.failing, r.passing) for r in c.rows}
    # exactly the redirection ``>&2`` (fcntl F_DUPFD to save fd 2, dup2, two closes) and
    # the 7-byte write of "broken", per failing iteration; nothing else
    assert rows == {
        ("syscall", "write", "ok"): (1.0, 0.0),
        ("syscall", "dup2", "ok"): (2.0, 0.0),
        ("syscall", "fcntl", "ok"): (2.0, 0.0),
        ("syscall", "close", "ok"): (4.0, 2.0),
        ("retval", "write", "3"): (1.0, 0.0),
        ("retval", "dup2", "1"): (2.0, 0.0),
        ("retval", "fcntl", "0"): (1.0, 0.0),
        ("retval", "fcntl", "4"): (1.0, 0.0),
        ("retval", "close", "0"): (4.0, 2.0),
    }, rows
    assert c.rows[0].kind == "syscall"  # syscall rows before their return-value buckets
    assert "new kernel, 8 failing vs 16 passing iterations: 9 keys differ (of" in out


def test_setup_failure_ends_the_capture_and_keeps_finished_runs(tmp_path: Path) -> None:
    """Setup failing in run 1 is an infrastructure failure: run 0 stays on disk."""
    counter = tmp_path / "count"
    torn = tmp_path / "teardowns"
    s = spec(
        command="true",
        setup='echo x >> "$CNT"; [ "$(wc -l < "$CNT")" -lt 2 ] || { echo nope >&2; exit 7; }',
        teardown='echo x >> "$TORN"',
        iterations=2,
        env={"CNT": str(counter), "TORN": str(torn)},
    )
    out = tmp_path / "c.json.gz"
    with pytest.raises(WorkloadRunError, match=r"run 1: setup failed with exit code 7: nope"):
        run_capture(s, runs=3, out=out)
    c = load_capture(out)
    assert len(c.runs) == 1 and c.runs[0].index == 0 and not c.complete
    assert c.to_dict()["complete"] is False and c.requested_runs == 3
    assert torn.read_text().count("x") == 1  # the finished run was torn down


def test_timeouts_are_recorded_and_three_in_a_row_end_the_run(tmp_path: Path) -> None:
    start = time.monotonic()
    # every 2nd iteration hangs: recorded as timed out, the run goes on
    s = spec(
        command="if [ $((REGRESS_ITERATION % 2)) -eq 1 ]; then sleep 30.25 & sleep 30.5; fi",
        timeout_s=2.0,  # the quick iterations must finish within it on a loaded machine
        iterations=4,
        tracepoints=[],
    )
    c = run_capture(s, runs=1, out=tmp_path / "b.json")
    assert c.complete and c.runs[0].timed_out == [False, True, False, True]
    assert c.runs[0].exit_codes[0] == 0 and c.runs[0].exit_codes[1] != 0
    assert c.exit_outcomes()["timed out"] == 2
    assert time.monotonic() - start < 30  # no 30.5 s sleep was waited for
    # The whole process group was killed, including the backgrounded sleep.
    deadline = time.monotonic() + 3
    while True:
        ps = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True)
        alive = [x for x in ps.stdout.splitlines() if "sleep 30.25" in x and "Z" not in x[:2]]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert alive == []
    # three timeouts in a row: the machine is stuck, the run is abandoned, runs kept
    hang = spec(command="sleep 30.5", timeout_s=0.3, iterations=5, tracepoints=[])
    with pytest.raises(WorkloadRunError, match=r"3 iterations in a row timed out"):
        run_capture(hang, runs=2, out=tmp_path / "h.json")
    assert len(load_capture(tmp_path / "h.json").runs) == 0


def test_threads_are_tracked(tmp_path: Path) -> None:
    """Threads (clone with CLONE_THREAD) are followed: 4 threads x 5 failing kills each."""
    code = (
        "import os, threading\n"
        "def f():\n"
        "    for _ in range(5):\n"
        "        try:\n"
        "            os.kill(2147483647, 0)\n"
        "        except ProcessLookupError:\n"
        "            pass\n"
        "ts = [threading.Thread(target=f) for _ in range(4)]\n"
        "[t.start() for t in ts]\n"
        "[t.join() for t in ts]\n"
    )
    c = run_capture(
        spec(command=["/usr/bin/python3", "-S", "-c", code], iterations=2),
        runs=1,
        out=tmp_path / "c.json",
        tracepoints=["sched:sched_process_fork"],
    )
    r = c.runs[0]
    assert r.syscalls["kill"] == {ESRCH: 4 * 5 * 2}
    assert r.tracepoints["sched:sched_process_fork"] == 4 * 2


def test_reset_forgets_leftover_threads() -> None:
    """A tracked process that outlives its run (escaped the process group) stops being
    counted at the next reset: the tracker's generation moves on."""
    from regress.guest.bpfgen import TracerOptions, read_pid_max
    from regress.guest.environment import resolve_kernel_headers
    from regress.guest.tracer import Tracer
    from regress.model.names import number_of

    nr = number_of("kill")
    assert nr is not None
    kill_esrch = (nr, 3)
    loop = subprocess.Popen(["/bin/sh", "-c", "while :; do kill -0 2147483647 2>/dev/null; done"])
    t = Tracer(TracerOptions(pid_max=read_pid_max()), headers=resolve_kernel_headers())
    try:
        t.load()
        t.reset()
        t.track(loop.pid)
        assert t.tracked_pids() == [loop.pid]
        time.sleep(0.2)
        assert t.read().syscalls.get(kill_esrch, 0) > 0
        t.reset()
        assert t.tracked_pids() == []
        time.sleep(0.2)
        raw = t.read()
        assert raw.syscalls == {} and raw.retvals == {}
    finally:
        loop.kill()
        loop.wait()
        t.detach()


def test_function_maps_read_back_through_the_batch_path() -> None:
    """The function maps of a real loaded program, filled from user space (this host
    cannot attach kprobes; the VM suite does that): ``read()`` batch-reads both hashes
    and names addresses through kallsyms, return classes included; ``reset()`` empties
    them and the memory-mapped counters."""
    import ctypes as ct

    from regress.guest.bpfgen import TracerOptions, read_pid_max
    from regress.guest.environment import resolve_kernel_headers
    from regress.guest.probes import FunctionTarget, read_kallsyms
    from regress.guest.tracer import Tracer

    addr = next(a for a, s in read_kallsyms() if s == "vfs_read")
    assert addr, "kallsyms addresses are hidden (kptr_restrict): run as root"
    t = Tracer(
        TracerOptions(functions=("vfs_read",), pid_max=read_pid_max(), function_returns=True),
        headers=resolve_kernel_headers(),
        functions=[FunctionTarget("vfs_read", ("vfs_read",))],
        kprobe_problem="not on this host",
    )
    try:
        statuses = t.load()
        assert {(s.kind, s.status) for s in statuses if s.name == "vfs_read"} == {
            ("function", "failed"),
            ("funcret", "failed"),
        }
        b = t._bpf
        b[b"fcounts"][ct.c_uint64(addr)] = ct.c_uint64(7)
        fr = b[b"frcounts"]
        for cls, n in ((0, 2), (-2, 3), (1, 4)):
            key = fr.Key()
            key.ip, key.cls = addr, cls
            fr[key] = ct.c_uint64(n)
        raw = t.read()
        assert raw.functions == {"vfs_read": 7}
        assert raw.funcrets == {("vfs_read", 0): 2, ("vfs_read", -2): 3, ("vfs_read", 1): 4}
        t.reset()
        raw = t.read()
        assert raw.functions == {} and raw.funcrets == {}
        assert set(raw.lost.values()) == {0}
    finally:
        t.detach()

"""Real boots: Debian kernels under QEMU (TCG here), the guest agent, real kernel function counts.

Needs the kernels and the guest image; the session fixture fetches/builds what is missing
(apt + debootstrap, ~1 min once, cached in ~/.cache/regress). Iterations are kept tiny:
these tests check the pipeline and its failure modes, not statistics.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regress.capture import load_capture
from regress.cli import run as cli_run
from regress.errors import VMError, WorkloadRunError
from regress.vm import image, kernels, orchestrate
from regress.vm.orchestrate import RunOptions

pytestmark = pytest.mark.vm

OLD, NEW = orchestrate.DEFAULT_OLD, orchestrate.DEFAULT_NEW


def test_default_comparison_counts_kernel_functions(vm_ready: None, tmp_path: Path) -> None:
    """Both default kernels, 1 run x 3 iterations of ps-loop: captures, diff, report."""
    functions = ["find_ge_pid", "proc_pid_*", "next_tgid", "regress_no_such_function"]
    opts = RunOptions(runs=1, iterations=3, out_dir=tmp_path / "r", functions=functions)
    events: list[dict[str, object]] = []
    outcome = orchestrate.run(opts, events.append)
    for side, release in (("old", "6.1.0-47-cloud-amd64"), ("new", "6.1.0-56-cloud-amd64")):
        cap = load_capture(outcome.captures[side])
        assert cap.complete and cap.kernel.release == release
        assert cap.machine.backend == "qemu" and cap.machine.accel in ("tcg", "kvm")
        st = cap.probe_status("function", "find_ge_pid")
        assert st is not None and st.status == "attached", st
        assert cap.runs[0].functions.get("find_ge_pid", 0) > 0
        assert cap.runs[0].functions.get("next_tgid", 0) > 0
        missing = cap.probe_status("function", "regress_no_such_function")
        assert missing is not None and missing.status == "absent", missing
        assert "regress_no_such_function" not in cap.runs[0].functions
        assert any(p.kind == "function" and p.name.startswith("proc_pid_") for p in cap.probes)
        assert cap.runs[0].exit_codes == [0, 0, 0]
        assert sum(cap.runs[0].syscalls.get("openat", {}).values()) > 0
        assert cap.kernel.config_hash  # the kernel's config reached the guest
    assert (tmp_path / "r" / "logs" / "old-boot0.console.log").is_file()
    assert any(e.get("kind") == "agent-ready" for e in events)
    assert outcome.reports, outcome.notes
    assert "find_ge_pid" in (tmp_path / "r" / "report.html").read_text()


def test_kernel_panic_names_the_console_log(vm_ready: None, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_run(["run", "--runs", "1", "--iterations", "1", "--serial",
                  "--append", "root=/dev/nonexistent", "-o", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == VMError.exit_code
    log = tmp_path / "r" / "logs" / "old-boot0.console.log"
    assert "panicked" in err and str(log) in err, err
    assert "Kernel panic" in log.read_text(errors="replace")
    assert not (tmp_path / "r" / "old.json").exists()


def test_hang_times_out_and_names_the_console_log(vm_ready: None, tmp_path: Path) -> None:
    opts = RunOptions(runs=1, iterations=1, timeout_s=2.0, out_dir=tmp_path / "r",
                      parallel=False)
    with pytest.raises(VMError, match="timed out after") as info:
        orchestrate.run(opts)
    assert str(tmp_path / "r" / "logs" / "old-boot0.console.log") in info.value.one_line()
    assert not (tmp_path / "r" / "old.json").exists()


def test_failing_workload_keeps_finished_captures_only(vm_ready: None, tmp_path: Path) -> None:
    """Run 2 fails on the new kernel only: old.json complete, new only as a partial capture."""
    spec = tmp_path / "flaky.toml"
    spec.write_text(
        'name = "flaky"\niterations = 1\ntimeout_s = 20\n'
        "command = \"if [ -e /tmp/once ] && uname -r | grep -q -- -56-; then exit 3; fi; "
        'touch /tmp/once"\n'
    )
    opts = RunOptions(workload=str(spec), runs=2, out_dir=tmp_path / "r", functions=[],
                      tracepoints=[])
    with pytest.raises(WorkloadRunError) as info:
        orchestrate.run(opts)
    msg = info.value.one_line()
    assert str(tmp_path / "r" / "logs" / "new-boot0.console.log") in msg, msg
    old = load_capture(tmp_path / "r" / "old.json")
    assert old.complete and len(old.runs) == 2
    assert not (tmp_path / "r" / "new.json").exists()
    partial = tmp_path / "r" / "new.partial.json"
    assert partial.is_file() and "new.partial.json" in msg
    doc = json.loads(partial.read_text())
    assert doc["complete"] is False and len(doc["runs"]) == 1
    assert not load_capture(partial).complete


@pytest.mark.slow
def test_fresh_boot_per_run(vm_ready: None, tmp_path: Path) -> None:
    opts = RunOptions(runs=2, iterations=2, fresh_boot_per_run=True, out_dir=tmp_path / "r")
    outcome = orchestrate.run(opts)
    cap = load_capture(outcome.captures["new"])
    assert cap.complete and [r.boot for r in cap.runs] == [0, 1]
    assert len(outcome.boots) == 4


@pytest.mark.slow
def test_kernel_given_as_paths_boots(vm_ready: None, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A 'user build' (the cached Debian kernel's files, given as paths) boots and traces."""
    deb = kernels.fetch_debian(NEW)
    real = image.images_dir() / image.recipe_hash()  # reuse the built root image
    monkeypatch.setenv(kernels.CACHE_ENV, str(tmp_path / "cache"))
    image.images_dir().mkdir(parents=True)
    (image.images_dir() / image.recipe_hash()).symlink_to(real)
    paths = orchestrate.KernelPaths(
        deb.vmlinuz, deb.modules_dir, deb.tree / "usr" / "src" / f"linux-headers-{deb.release}")
    opts = RunOptions(old_paths=paths, new_paths=paths, runs=1, iterations=2,
                      out_dir=tmp_path / "r")
    outcome = orchestrate.run(opts)
    cap = load_capture(outcome.captures["new"])
    assert cap.kernel.release == deb.release
    assert cap.runs[0].functions.get("find_ge_pid", 0) > 0

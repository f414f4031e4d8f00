"""``regress capture/show/validate/workloads`` through the installed CLI.

Bad input must be one line on stderr, a non-zero exit code and no traceback.
Things we cannot really remove from this machine (tracefs, bcc, headers) are
hidden with the environment overrides the code honours, or a shadowing module.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from regress.guest.bpfgen import TracerOptions, generate, read_pid_max

REGRESS = Path(sys.executable).parent / "regress"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full.pop("REGRESS_DEBUG", None)
    full.update(env or {})
    return subprocess.run(
        [str(REGRESS), *args], capture_output=True, text=True, env=full, timeout=300
    )


def one_line_error(p: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("regress: error: "), lines[0]
    assert "Traceback" not in p.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_workloads_lists_builtins() -> None:
    p = cli("workloads")
    assert p.returncode == 0
    assert [x.split()[0] for x in p.stdout.splitlines()] == [
        "file-io",
        "fork-exec",
        "new-syscalls",
        "proc-scan",
        "ps-loop",
        "tcp-loopback",
    ]


def test_unknown_workload(tmp_path: Path) -> None:
    one_line_error(
        cli("capture", "-w", "nope", "-o", str(tmp_path / "c.json")),
        2,
        "unknown workload 'nope'",
        "ps-loop",
    )


def test_malformed_toml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x\ncommand = "true"\n')
    one_line_error(
        cli("capture", "-w", str(bad), "-o", str(tmp_path / "c.json")),
        2,
        "bad.toml: malformed TOML",
    )
    bad.write_text('name = "x"\ncommand = "true"\nbogus = 1\n')
    one_line_error(
        cli("capture", "-w", str(bad), "-o", str(tmp_path / "c.json")),
        2,
        "bad.toml: unknown key 'bogus'",
    )


@pytest.mark.root
def test_missing_tracefs(tmp_path: Path) -> None:
    one_line_error(
        cli(
            "capture",
            "-w",
            "ps-loop",
            "-o",
            str(tmp_path / "c.json"),
            env={"REGRESS_TRACEFS": str(tmp_path / "no-tracefs")},
        ),
        3,
        "tracefs is not mounted",
        "mount -t tracefs",
    )


@pytest.mark.root
def test_bcc_not_importable(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "bcc"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named bcc (shadowed)')\n")
    one_line_error(
        cli(
            "capture",
            "-w",
            "ps-loop",
            "-o",
            str(tmp_path / "c.json"),
            env={"PYTHONPATH": str(tmp_path / "shadow")},
        ),
        3,
        "bcc is not importable",
        "scripts/setup.sh",
    )


@pytest.mark.root
def test_no_kernel_headers(tmp_path: Path) -> None:
    one_line_error(
        cli(
            "capture",
            "-w",
            "ps-loop",
            "-o",
            str(tmp_path / "c.json"),
            env={"REGRESS_KERNEL_HEADERS": str(tmp_path / "none")},
        ),
        3,
        "kernel headers",
        "is not a directory",
    )
    one_line_error(
        cli(
            "capture",
            "-w",
            "ps-loop",
            "-o",
            str(tmp_path / "c.json"),
            "--kernel-headers",
            str(tmp_path),
        ),
        3,
        "lack include/linux/kconfig.h",
    )
    build = Path("/lib/modules") / platform.release() / "build"
    assert not build.exists(), f"{build} exists: this test expects a kernel without headers"
    one_line_error(
        cli(
            "capture",
            "-w",
            "ps-loop",
            "-o",
            str(tmp_path / "c.json"),
            env={"REGRESS_HEADERS_SEARCH": str(tmp_path / "empty")},
        ),
        3,
        "no kernel headers for",
        "scripts/setup.sh",
        "--kernel-headers",
    )


def test_ebpf_prints_program_without_tracefs(tmp_path: Path) -> None:
    p = cli("capture", "-w", "fork-exec", "--ebpf", env={"REGRESS_TRACEFS": str(tmp_path / "none")})
    assert p.returncode == 0, p.stderr
    expected = generate(
        TracerOptions(
            tracepoints=(
                "sched:sched_process_fork",
                "sched:sched_process_exec",
                "sched:sched_process_exit",
            ),
            functions=(
                "kernel_clone",
                "copy_process",
                "begin_new_exec",
                "do_exit",
                "wake_up_new_task",
            ),
            pid_max=read_pid_max(),
        )
    )
    # do_execveat_common* is a pattern: without tracefs it cannot be expanded.
    assert p.stdout == expected
    assert "patterns are shown unexpanded" in p.stderr
    # a tracepoint pattern too: left out and said so, not an error (--ebpf without root)
    wild = cli(
        "capture",
        "-w",
        "fork-exec",
        "--ebpf",
        "--tracepoints",
        "sched:*,signal:signal_generate",
        env={"REGRESS_TRACEFS": str(tmp_path / "none")},
    )
    assert wild.returncode == 0, wild.stderr
    assert "tracepoints=1 " in wild.stdout and "patterns are shown unexpanded" in wild.stderr


def test_capture_needs_output() -> None:
    one_line_error(cli("capture", "-w", "ps-loop"), 2, "needs -o FILE")


def test_validate_and_show_reject_garbage(tmp_path: Path) -> None:
    f = tmp_path / "junk.json"
    f.write_text("{not json")
    one_line_error(cli("validate", str(f)), 2, "not JSON")
    one_line_error(cli("show", str(f)), 2, "not JSON")
    one_line_error(cli("show", str(tmp_path / "missing.json")), 2, "no such capture file")


@pytest.mark.root
def test_capture_show_validate_ps_loop(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    p = cli("capture", "--workload", "ps-loop", "--runs", "2", "--iterations", "10", "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert "wrote" in p.stdout and "2 runs x 10 iterations" in p.stdout
    assert "run 2/2" in p.stderr
    show = cli("show", str(out))
    assert show.returncode == 0, show.stderr
    text = show.stdout
    assert "openat ENOENT" in text
    assert "runs      2/2 x 10 iterations" in text
    assert "kernel headers:" in text
    assert "liveness  20/20 iterations passed" in text
    assert "sched:sched_process_fork" in text and "attached" in text
    if not Path("/sys/kernel/tracing/kprobe_events").exists():
        assert "find_ge_pid" in text and "kprobes unavailable" in text
    val = cli("validate", str(out))
    assert val.returncode == 0 and "2/2 runs, complete" in val.stdout


@pytest.mark.root
def test_unknown_probes_are_loud_and_refused_with_strict(tmp_path: Path) -> None:
    """A tracepoint this kernel does not have is never a silent zero."""
    out = tmp_path / "c.json"
    base = ["capture", "-w", "ps-loop", "--runs", "1", "--iterations", "2", "-o", str(out)]
    strict = cli(*base, "--tracepoints", "nosuch:event,sched:sched_process_fork", "--strict")
    one_line_error(strict, 2, "not on this kernel", "tracepoint nosuch:event")
    assert not out.exists()
    loud = cli(*base, "--tracepoints", "nosuch:event")
    assert loud.returncode == 0, loud.stderr
    assert "warning: not on this kernel, recorded as absent: tracepoint nosuch:event" in (
        " ".join(loud.stderr.split())
    )
    show = cli("show", str(out))
    assert "nosuch:event" in show.stdout and "absent" in show.stdout


@pytest.mark.root
def test_broken_headers_compile_error_is_one_line(tmp_path: Path) -> None:
    """A headers tree bcc cannot compile against: TracerError naming clang's first error."""
    (tmp_path / "include" / "linux").mkdir(parents=True)
    (tmp_path / "include" / "generated").mkdir()
    (tmp_path / "include" / "linux" / "kconfig.h").write_text("#error broken headers\n")
    (tmp_path / "include" / "generated" / "autoconf.h").write_text("")
    p = cli(
        "capture",
        "-w",
        "ps-loop",
        "-o",
        str(tmp_path / "c.json"),
        "--kernel-headers",
        str(tmp_path),
    )
    assert p.returncode == 3 and "Traceback" not in p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("regress: error: BPF program failed to compile"), p.stderr
    assert "broken headers" in last
    assert not (tmp_path / "c.json").exists()


@pytest.mark.root
def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    one_line_error(cli("capture", "-w", "ps-loop", "-o", str(tmp_path)), 2, "is a directory")
    p = cli(
        "capture",
        "-w",
        "ps-loop",
        "--iterations",
        "1",
        "--runs",
        "1",
        "-o",
        "/proc/no-such-dir/c.json",
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr
    # Refused before tracing starts: one line, nothing compiled.
    assert p.stderr.strip().splitlines() == [
        "regress: error: -o /proc/no-such-dir/c.json: cannot create a file there: "
        "No such file or directory"
    ], p.stderr


def test_bad_function_pattern_is_named() -> None:
    """A typo'd or hostile pattern is refused by name before anything compiles (no root)."""
    p = cli("capture", "-w", "fork-exec", "--ebpf", "--functions", "find_ge_pid,bad;rm -rf")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1] == (
        "regress: error: invalid function pattern 'bad;rm -rf' "
        "(letters, digits, _ . and * ? [ ] wildcards only)"
    )


@pytest.mark.root
def test_ctrl_c_keeps_the_finished_runs_labelled_interrupted(tmp_path: Path) -> None:
    """SIGINT after the first run: exit 130 with one message, and a capture that says it
    was interrupted (not failed) and still diffs, with a footnote."""
    import json as _json
    import signal
    import time

    out = tmp_path / "c.json"
    proc = subprocess.Popen(
        [str(REGRESS), "capture", "-w", "fork-exec", "--runs", "50", "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a CI job started in the background inherits SIGINT ignored, and Python then
        # installs no KeyboardInterrupt handler: give the child the default disposition
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if _json.loads(out.read_text())["runs"]:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "regress: interrupted" in err
    shown = cli("validate", str(out))
    assert shown.returncode == 0 and "INTERRUPTED (by the user" in shown.stdout, shown.stdout
    diffed = cli("diff", str(out), str(out), "--fail-on", "none")
    assert diffed.returncode == 0, diffed.stderr
    assert "interrupted by the user" in diffed.stdout

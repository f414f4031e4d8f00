"""The multi-probe kprobe event helpers that need no kernel (the guest test covers the kernel)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from regress.errors import TracerError
from regress.guest import kprobe_events as ke


def test_probe_line_takes_kernel_symbols_only() -> None:
    assert ke.probe_line("regress_7_1", "find_ge_pid") == "p:regress_7_1/fn find_ge_pid\n"
    assert ke.probe_line("g", "show_stat.isra.0") == "p:g/fn show_stat.isra.0\n"
    for bad in ("foo bar", "foo\n-:other/ev", "", "1abc", "a/b", "x;y"):
        with pytest.raises(TracerError, match="not a kernel symbol"):
            ke.probe_line("g", bad)


def test_groups_are_unique_per_tracer() -> None:
    a, b = ke.new_group(), ke.new_group()
    assert a != b and a.startswith(f"regress_{os.getpid()}_")


def test_error_log_reason_is_the_last_error() -> None:
    log = (
        "[   12.000001] trace_kprobe: error: Invalid argument\n"
        "  Command: p:g/fn 123\n"
        "[   13.500000] trace_kprobe: error: Failed to register probe event\n"
        "  Command: p:g/fn kprobe_int3_handler\n"
        "                  ^\n"
    )
    assert ke.error_log_reason(log) == "Failed to register probe event"
    assert ke.error_log_reason("") is None


def test_stale_groups_are_those_of_dead_processes() -> None:
    text = (
        "p:regress_100_1/fn find_ge_pid\n"
        "p:regress_100_1/fn next_tgid\n"
        "p:regress_200_3/fn find_ge_pid\n"
        "p:kprobes/p_vfs_read_0 vfs_read\n"
        "p:regress_x_1/fn vfs_read\n"
    )
    assert ke.stale_groups(text, alive={200}) == ["regress_100_1"]
    assert ke.stale_groups(text, alive={100, 200}) == []


def test_ftrace_pause_restores_and_respects_an_off_switch(tmp_path: Path) -> None:
    switch = tmp_path / "ftrace_enabled"
    switch.write_text("1\n")
    with ke.ftrace_paused(True, switch) as paused:
        assert paused and switch.read_text() == "0"
    assert switch.read_text() == "1"
    with pytest.raises(RuntimeError), ke.ftrace_paused(True, switch):
        raise RuntimeError("attach failed")
    assert switch.read_text() == "1"  # restored on errors too
    with ke.ftrace_paused(False, switch) as paused:
        assert not paused and switch.read_text() == "1"
    switch.write_text("0\n")  # somebody else turned ftrace off: leave it so
    with ke.ftrace_paused(True, switch) as paused:
        assert not paused
    assert switch.read_text() == "0\n"
    with ke.ftrace_paused(True, tmp_path / "missing") as paused:
        assert not paused


def test_register_and_unregister_lines(tmp_path: Path) -> None:
    """Against a plain file: the exact lines written, one per symbol, and the removal."""
    (tmp_path / "kprobe_events").write_text("")
    events = ke.KprobeEvents(tmp_path)
    assert events.available()
    ev = events.register(["find_ge_pid", "next_tgid"], group="regress_1_1")
    assert ev is not None and ev.accepted == ["find_ge_pid", "next_tgid"] and not ev.rejected
    events.unregister("regress_1_1")
    assert (tmp_path / "kprobe_events").read_text() == (
        "p:regress_1_1/fn find_ge_pid\np:regress_1_1/fn next_tgid\n-:regress_1_1/fn\n"
    )


def test_blacklisted_symbols_are_named(tmp_path: Path) -> None:
    bl = tmp_path / "blacklist"
    bl.write_text(
        "0xffffffff81001000-0xffffffff81001080\toops_begin\n"
        "0xffffffff81002000-0xffffffff81002040\tdo_int3\n"
    )
    events = ke.KprobeEvents(tmp_path, blacklist=bl)
    assert events.blacklisted("oops_begin") and not events.blacklisted("find_ge_pid")
    assert not ke.KprobeEvents(tmp_path, blacklist=tmp_path / "none").blacklisted("oops_begin")

"""Stdlib parts of the tracer slice: syscall table, probe resolution, headers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from regress.errors import EnvironmentProblem, UsageError
from regress.guest import environment as env
from regress.guest import syscalls
from regress.guest.probes import (
    AddressMap,
    normalise_function,
    resolve_functions,
    resolve_tracepoints,
)
from regress.model import names


def test_syscall_table_complete_to_6_18() -> None:
    t = names.table()
    assert t[0] == "read" and t[2] == "open" and t[59] == "execve" and t[62] == "kill"
    assert t[335] == "uretprobe" and t[336] == "uprobe"
    assert t[450] == "set_mempolicy_home_node" and t[451] == "cachestat"
    assert t[462] == "mseal" and t[469] == "file_setattr"
    # x86_64 numbers are dense: 0..336, then 424..469 (387..423 are reserved).
    assert set(t) == set(range(0, 337)) | set(range(424, 470))
    assert len(set(t.values())) == len(t)
    assert names.name_of(4000) == "syscall_4000"
    # rt_sigreturn clears orig_ax: its exit (and skipped syscalls') arrive as id -1.
    assert names.name_of(0xFFFFFFFF) == names.name_of(-1) == "sigreturn(-1)"
    assert names.number_of("openat") == 257


def test_syscall_table_parse_errors() -> None:
    with pytest.raises(Exception, match="duplicate number 1"):
        names.parse_table("1 a\n1 b\n")
    with pytest.raises(Exception, match="expected"):
        names.parse_table("x y z\n")


def test_syscall_table_covers_running_kernel() -> None:
    """Every syscall tracefs knows on this kernel has a name in our table."""
    tracefs = Path("/sys/kernel/tracing")
    assert syscalls.tracefs_names(tracefs), "tracefs events/syscalls unreadable: run as root"
    assert syscalls.cross_check(tracefs) == []


def test_cross_check_flags_unknown(tmp_path: Path) -> None:
    (tmp_path / "events" / "syscalls" / "sys_enter_brand_new").mkdir(parents=True)
    (tmp_path / "events" / "syscalls" / "sys_enter_newstat").mkdir(parents=True)
    assert syscalls.cross_check(tmp_path) == ["brand_new"]


def test_errno_names() -> None:
    assert names.errno_name("0") == "ok"
    assert names.errno_name(2) == "ENOENT"
    assert names.errno_name(3) == "ESRCH"
    assert names.errno_name(35) == "EDEADLK"
    assert names.errno_name(516) == "ERESTART_RESTARTBLOCK"
    assert names.errno_name(4000) == "E4000"


@pytest.mark.parametrize(
    ("sym", "name"),
    [
        ("foo", "foo"),
        ("foo.isra.0", "foo"),
        ("foo.constprop.3", "foo"),
        ("foo.part.1", "foo"),
        ("foo.cold", "foo"),
        ("foo.constprop.0.isra.0", "foo"),
        ("foo.part.0.cold", "foo"),
    ],
)
def test_normalise(sym: str, name: str) -> None:
    assert normalise_function(sym) == name


def test_resolve_tracepoints() -> None:
    avail = [
        "sched:sched_switch",
        "sched:sched_process_fork",
        "signal:signal_generate",
        "syscalls:sys_enter_read",
    ]
    tps, absent = resolve_tracepoints(["sched:*", "nope:*", "sched:sched_switch"], avail)
    assert tps == ["sched:sched_process_fork", "sched:sched_switch"]
    assert [(p.name, p.status) for p in absent] == [("nope:*", "absent")]
    assert resolve_tracepoints(["*:*"], avail)[0] == [*tps, "signal:signal_generate"]
    with pytest.raises(UsageError):
        resolve_tracepoints(["sched"], avail)


def test_resolve_functions_groups_clones_and_caps() -> None:
    traceable = ["proc_pid_stat", "proc_pid_stat.isra.0", "proc_pid_cmdline", "vfs_read"]
    targets, absent = resolve_functions(["proc_pid_*", "gone_fn"], traceable)
    assert [(t.name, t.symbols) for t in targets] == [
        ("proc_pid_cmdline", ("proc_pid_cmdline",)),
        ("proc_pid_stat", ("proc_pid_stat", "proc_pid_stat.isra.0")),
    ]
    assert [(p.name, p.status) for p in absent] == [("gone_fn", "absent")]
    with pytest.raises(UsageError, match="cap is 1"):
        resolve_functions(["proc_pid_*"], traceable, cap=1)


def test_address_map() -> None:
    m = AddressMap([(0x1000, "a"), (0x2000, "b.isra.0")])
    assert m.name_at(0x1000) == "a" and m.name_at(0x1004) == "a"
    assert m.name_at(0x2004) == "b" and m.name_at(0x10) is None


def _debian_pair(root: Path) -> Path:
    arch = root / "linux-headers-6.1.0-9-cloud-amd64"
    common = root / "linux-headers-6.1.0-9-common"
    (arch / "include" / "generated").mkdir(parents=True)
    (arch / "include" / "generated" / "autoconf.h").write_text("#define X 1\n")
    (common / "include" / "linux").mkdir(parents=True)
    (common / "include" / "linux" / "kconfig.h").write_text("/* k */\n")
    (common / "include" / "generated").mkdir()
    (common / "include" / "generated" / "autoconf.h").write_text("/* overridden */\n")
    return arch


def test_headers_merge_debian_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arch = _debian_pair(tmp_path / "src")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(env.HEADERS_SEARCH_ENV, str(tmp_path / "src"))
    monkeypatch.delenv(env.HEADERS_ENV, raising=False)
    choice = env.resolve_kernel_headers(release="0.0-no-such-release")
    assert choice.source is not None
    assert (choice.source / "include" / "linux" / "kconfig.h").is_file()
    # The arch tree wins over -common.
    assert (choice.source / "include/generated/autoconf.h").read_text() == "#define X 1\n"
    assert str(arch) in choice.note and "auto-detected" in choice.note
    # Built once, then reused.
    stamp = choice.source / ".regress-merged"
    mtime = os.stat(stamp).st_mtime_ns
    assert env.resolve_kernel_headers(release="0.0-no-such-release").source == choice.source
    assert os.stat(stamp).st_mtime_ns == mtime


def test_headers_explicit_and_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(env.HEADERS_ENV, raising=False)
    arch = _debian_pair(tmp_path / "src")
    assert env.resolve_kernel_headers(arch).note.endswith("(--kernel-headers)")
    with pytest.raises(EnvironmentProblem, match=r"lack include/linux/kconfig\.h"):
        env.resolve_kernel_headers(tmp_path / "src")
    monkeypatch.setenv(env.HEADERS_SEARCH_ENV, str(tmp_path / "empty"))
    with pytest.raises(EnvironmentProblem, match="no kernel headers") as exc:
        env.resolve_kernel_headers(release="0.0-no-such-release")
    assert "--kernel-headers" in exc.value.one_line() and "setup.sh" in exc.value.one_line()


def test_kernel_and_machine_info() -> None:
    k = env.kernel_info()
    assert k.release == os.uname().release and k.version.startswith("Linux version")
    assert k.config and k.config_hash and len(k.config_hash) == 64
    m = env.machine_info()
    assert m.backend == "host" and m.cpus >= 1 and m.mem_mb > 0 and m.accel is None


def test_parse_config() -> None:
    cfg = env.parse_config('CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="x"\n# comment\n')
    assert cfg == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": '"x"'}
    assert env.config_hash(cfg) == env.config_hash(dict(reversed(list(cfg.items()))))


def test_raw_tracepoint_names() -> None:
    """Raw tracepoints are named by the event alone: only unique, tracepoint-backed names."""
    from regress.guest.tracer import raw_tracepoint_names

    events = [
        "sched:sched_switch",
        "signal:signal_generate",
        "a:dup",
        "b:dup",
        "syscalls:sys_exit_kill",
        "ftrace:print",
    ]
    assert raw_tracepoint_names(events) == {"sched_switch", "signal_generate"}

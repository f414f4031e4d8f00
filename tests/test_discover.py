"""Function discovery's parsing and capping (``regress.guest.discover``), and the BTF
reader that tells void functions apart (``regress.guest.btf``), without a VM.

The guest side (function_graph in a booted kernel) runs in tests/test_narrowing_vm.py.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from regress.guest.btf import BTFError, kernel_void_functions, void_functions
from regress.guest.discover import cap_functions, parse_graph

# function_graph output as the 6.1 guest prints it (trimmed), two CPUs interleaved.
GRAPH = """\
# tracer: function_graph
#
# CPU  DURATION                  FUNCTION CALLS
# |     |   |                     |   |   |   |
 0)               |  __x64_sys_getdents64() {
 0)               |    iterate_dir() {
 0)               |      proc_pid_readdir() {
 0)   0.450 us    |        find_ge_pid();
 1)               |  __x64_sys_openat() {
 1)               |    do_sys_openat2() {
 0)   0.300 us    |        find_ge_pid();
 0)               |        __cond_resched() {
 0)               |          __schedule() {
 0)   1.000 us    |            pick_next_task_fair();
 0)   2.000 us    |          }
 0)   3.000 us    |        }
 0)   0.300 us    |        find_ge_pid.isra.0();
 1)   0.200 us    |      security_file_open();
 0)   5.000 us    |      }
 1)   1.000 us    |    }
 0)   9.000 us    |    }
 0)   9.500 us    |  }
"""


def test_parse_graph_attributes_calls_to_their_syscall_per_cpu() -> None:
    found = parse_graph(GRAPH, {"getdents64", "openat"})
    assert found == {
        "getdents64": {"iterate_dir": 1, "proc_pid_readdir": 1, "find_ge_pid": 3},
        "openat": {"do_sys_openat2": 1, "security_file_open": 1},
    }  # the scheduler subtree (__cond_resched) is left out, clones are normalised


def test_parse_graph_ignores_syscalls_not_asked_for() -> None:
    assert parse_graph(GRAPH, {"openat"}) == {
        "openat": {"do_sys_openat2": 1, "security_file_open": 1}
    }


def test_cap_drops_void_and_hot_and_keeps_the_first_called_round_robin() -> None:
    found = {
        "openat": {"a": 5, "b": 1, "hot": 5000, "v": 1, "shared": 2},
        "read": {"shared": 2, "c": 3, "d": 1},
    }
    kept, seen = cap_functions(found, frozenset({"v"}), limit=4)
    assert seen == 5  # a b shared c d: void and hot ones are not candidates
    assert kept == {"openat": ["a", "b"], "read": ["shared", "c"]}
    assert len({f for names in kept.values() for f in names}) == 4


def _btf(types: list[tuple[int, int, int, bytes]], strings: bytes) -> bytes:
    body = b"".join(struct.pack("<III", n, info, t) + extra for n, info, t, extra in types)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(body), len(body), len(strings))
    return header + body + strings


def test_btf_reader_finds_void_functions() -> None:
    kind = lambda k, vlen=0: (k << 24) | vlen  # noqa: E731
    strings = b"\0int\0f_void\0f_int\0"
    blob = _btf(
        [
            (1, kind(1), 4, struct.pack("<I", 32)),  # [1] int
            (0, kind(13, 1), 0, struct.pack("<II", 0, 1)),  # [2] proto: void (int)
            (0, kind(13, 0), 1, b""),  # [3] proto: int (void)
            (5, kind(12), 2, b""),  # [4] f_void
            (12, kind(12), 3, b""),  # [5] f_int
        ],
        strings,
    )
    assert void_functions(blob) == frozenset({"f_void"})
    with pytest.raises(BTFError):
        void_functions(b"\0" * 30)


@pytest.mark.skipif(not Path("/sys/kernel/btf/vmlinux").exists(), reason="no kernel BTF")
def test_btf_of_this_kernel() -> None:
    """The running kernel's own BTF (this host): known void and non-void functions."""
    void = kernel_void_functions()
    assert void is not None and len(void) > 1000
    assert "kfree" in void and "schedule" in void
    assert "find_ge_pid" not in void and "security_file_open" not in void

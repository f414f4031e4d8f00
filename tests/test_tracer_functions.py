"""Function-probe plumbing without kprobes (this host has none): statuses per
function and address -> name mapping, driven through a stand-in for bcc's BPF
object. The real attach runs in the VM suite."""

from __future__ import annotations

import ctypes as ct
from typing import Any

from regress.guest.bpfgen import TracerOptions
from regress.guest.environment import HeadersChoice
from regress.guest.probes import FunctionTarget
from regress.guest.tracer import Tracer


class _Val:
    def __init__(self, v: int) -> None:
        self.value = v


class _RetKey:
    def __init__(self, ip: int, cls: int) -> None:
        self.ip, self.cls = ip, cls


class _Hash(dict[Any, _Val]):
    """A BPF hash as the tracer sees it; its fd is no map, so the batch read fails with
    EBADF and the tracer falls back to bcc's per-entry iteration."""

    map_fd = -1
    max_entries = 16
    Key = ct.c_uint64
    Leaf = ct.c_uint64


class FakeBPF:
    """Records attach_kprobe/attach_kretprobe calls; refuses symbols listed in ``refuse``."""

    def __init__(
        self, refuse: set[str], fcounts: dict[int, int], frcounts: dict[tuple[int, int], int]
    ) -> None:
        self.refuse = refuse
        self.attached: list[tuple[bytes, bytes]] = []
        self.returns: list[tuple[bytes, bytes]] = []
        self.fcounts = fcounts
        self.frcounts = frcounts

    def attach_kprobe(self, event: bytes, fn_name: bytes) -> None:
        if event.decode() in self.refuse:
            raise Exception(f"Failed to attach BPF program {fn_name!r} to kprobe {event!r}")
        self.attached.append((event, fn_name))

    def attach_kretprobe(self, event: bytes, fn_name: bytes) -> None:
        self.returns.append((event, fn_name))

    def __getitem__(self, name: bytes) -> Any:
        if name == b"fcounts":
            return _Hash({_Val(k): _Val(v) for k, v in self.fcounts.items()})
        if name == b"frcounts":
            return _Hash({_RetKey(*k): _Val(v) for k, v in self.frcounts.items()})
        if name == b"fsys":  # returns per syscall: none in this fake
            return _Hash({})
        return _Zeros()  # the ``lost`` array


class _Zeros:
    def __getitem__(self, key: Any) -> _Val:
        return _Val(0)


def test_function_statuses_and_clone_aggregation(monkeypatch: Any) -> None:
    targets = [
        FunctionTarget("proc_pid_stat", ("proc_pid_stat", "proc_pid_stat.isra.0")),
        FunctionTarget("vfs_read", ("vfs_read",)),
        FunctionTarget("notrace_fn", ("notrace_fn",)),
    ]
    options = TracerOptions(
        syscalls=False,
        retvals=False,
        functions=tuple(t.name for t in targets),
        function_returns=True,
    )
    tracer = Tracer(options, headers=HeadersChoice(None, "test"), functions=targets)
    kallsyms = [
        (0x1000, "proc_pid_stat"),
        (0x2000, "proc_pid_stat.isra.0"),
        (0x3000, "vfs_read"),
        (0x4000, "notrace_fn"),
    ]
    monkeypatch.setattr("regress.guest.tracer.read_kallsyms", lambda: kallsyms)
    fake = FakeBPF(
        {"notrace_fn"},
        {0x1000: 3, 0x2004: 2, 0x3000: 7},
        {(0x1000, 0): 1, (0x1000, 1): 2, (0x2000, 1): 2, (0x3000, -2): 7},
    )
    tracer._bpf = fake
    st = {(p.kind, p.name): p for p in tracer._attach_functions()}
    for kind in ("function", "funcret"):
        assert st[(kind, "proc_pid_stat")].status == "attached"
        assert st[(kind, "vfs_read")].status == "attached"
        failed = st[(kind, "notrace_fn")]
        assert failed.status == "failed" and "notrace_fn" in (failed.reason or "")
    attached = [b"proc_pid_stat", b"proc_pid_stat.isra.0", b"vfs_read"]
    assert [e for e, _ in fake.attached] == attached
    assert {f for _, f in fake.attached} == {b"fn_hit"}  # one shared program
    # Returns are probed exactly where entries are, with the one return program.
    assert fake.returns == [(e, b"fn_ret") for e in attached]

    # The clone's hits (0x2004: inside proc_pid_stat.isra.0) count as proc_pid_stat.
    raw = tracer.read()
    assert raw.functions == {"proc_pid_stat": 5, "vfs_read": 7}
    assert raw.funcrets == {("proc_pid_stat", 0): 1, ("proc_pid_stat", 1): 4, ("vfs_read", -2): 7}


def test_kprobes_unavailable_marks_every_function_failed() -> None:
    targets = [FunctionTarget("vfs_read", ("vfs_read",))]
    tracer = Tracer(
        TracerOptions(functions=("vfs_read",), function_returns=True),
        headers=HeadersChoice(None, "test"),
        functions=targets,
        kprobe_problem="kprobes unavailable on this kernel",
    )
    tracer._bpf = FakeBPF(set(), {}, {})
    st = tracer._attach_functions()
    assert [(p.kind, p.name, p.status, p.reason) for p in st] == [
        ("function", "vfs_read", "failed", "kprobes unavailable on this kernel"),
        ("funcret", "vfs_read", "failed", "kprobes unavailable on this kernel"),
    ]

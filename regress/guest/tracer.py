"""The bcc tracer: compile, attach, track pids, read and reset counters, detach.

The only module that imports bcc, so everything else stays testable (and
importable in a guest) without it. Compiled once per capture; counters are
read and reset between runs so every run costs the same and no run pays for a
recompile. All failures become one-line ``TracerError``/``EnvironmentProblem``.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import errno
import mmap
import os
import struct
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import Any

from regress.errors import EnvironmentProblem, TracerError
from regress.guest import kprobe_events
from regress.guest.bpfgen import LOST_COUNTERS, TracerOptions, generate, split_okcount
from regress.guest.environment import SETUP_HINT, HeadersChoice, tracefs_path
from regress.guest.probes import AddressMap, FunctionTarget, available_tracepoints, read_kallsyms
from regress.model.capture import ProbeStatus

# Event systems whose events are not kernel tracepoints (a raw tracepoint of the same
# name, if one existed, would be a different event).
NOT_TRACEPOINT_SYSTEMS = frozenset(
    {"syscalls", "ftrace", "kprobes", "uprobes", "synthetic", "eprobes", "user_events"}
)


def raw_tracepoint_names(events: list[str]) -> frozenset[str]:
    """Event names a raw tracepoint attach may use: tracepoint-backed, unique across systems.

    A raw tracepoint is named by the event alone, so ``a:x`` is attached raw only
    when no other system has an ``x`` too.
    """
    seen: dict[str, int] = {}
    for ev in events:
        name = ev.split(":", 1)[1]
        seen[name] = seen.get(name, 0) + 1
    return frozenset(
        ev.split(":", 1)[1]
        for ev in events
        if ev.split(":", 1)[0] not in NOT_TRACEPOINT_SYSTEMS and seen[ev.split(":", 1)[1]] == 1
    )


def import_bcc() -> ModuleType:
    """bcc, or a one-line EnvironmentProblem naming the fix."""
    try:
        import bcc  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise EnvironmentProblem(
            f"bcc is not importable from {sys.executable} ({exc})",
            hint=f"{SETUP_HINT}: it installs python3-bpfcc and links it into .venv",
        ) from None
    module: ModuleType = bcc
    return module


def bcc_version() -> str | None:
    try:
        bcc = import_bcc()
    except EnvironmentProblem:
        return None
    return str(getattr(bcc, "__version__", "unknown"))


VOID_REASON = "returns void (kernel BTF): no return value to class"


@dataclass
class RawCounts:
    """One read of the maps, with syscall numbers and addresses still unresolved."""

    syscalls: dict[tuple[int, int], int] = field(default_factory=dict)  # (nr, errno) -> n
    retvals: dict[tuple[int, int], int] = field(default_factory=dict)  # (nr, bucket) -> n
    tracepoints: dict[str, int] = field(default_factory=dict)
    functions: dict[str, int] = field(default_factory=dict)  # normalised name -> n
    funcrets: dict[tuple[str, int], int] = field(default_factory=dict)  # (name, class) -> n
    # errno origins: (syscall nr, -errno, function or "" when born untraced, stack id) -> n
    origins: dict[tuple[int, int, str, int], int] = field(default_factory=dict)
    stacks: dict[int, tuple[str, ...]] = field(default_factory=dict)  # stack id -> frames
    fn_syscalls: dict[tuple[str, int], int] = field(default_factory=dict)  # (name, nr) -> n
    lost: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def _capture_fd2(sink: list[str]) -> Iterator[None]:
    """Redirect file descriptor 2 (where libbcc/clang write) into ``sink``."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode(errors="replace"))


_NONZERO_BYTE = bytes([0] + [1] * 255)


def _nonzero_words(data: bytes, vsize: int) -> list[tuple[int, int]]:
    """(index, value) of the non-zero ``vsize``-byte words of ``data``, scanned at C speed:
    every non-zero byte becomes 1 (``translate``), then ``find`` jumps from one non-zero
    word to the next (~0.2 ms for 33k words natively, 4x less than per-row compares)."""
    marks = data.translate(_NONZERO_BYTE)
    out: list[tuple[int, int]] = []
    i = marks.find(1)
    while i != -1:
        start = i - i % vsize
        out.append((start // vsize, int.from_bytes(data[start : start + vsize], sys.byteorder)))
        i = marks.find(1, start + vsize)
    return out


def _scalar(key: Any) -> int:
    """A u64 map key: an int from a batch read's ctypes array, a ``c_ulong`` from bcc."""
    return key if isinstance(key, int) else int(key.value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


class Tracer:
    """One loaded BPF program. Use as a context manager so it is always detached."""

    def __init__(
        self,
        options: TracerOptions,
        *,
        headers: HeadersChoice,
        functions: list[FunctionTarget] | None = None,
        kprobe_problem: str | None = None,
        own_kernel: bool = False,
        void_returns: frozenset[str] = frozenset(),
    ) -> None:
        """``own_kernel``: this kernel is regress's alone (a disposable guest), so
        attaching may pause ftrace globally (``kprobe_events.ftrace_paused``).
        ``void_returns``: functions the kernel's BTF says return void (``regress.guest.btf``):
        no return probe -- their return register holds nothing to class."""
        self.options = options
        self.text = generate(options)
        self.headers = headers
        self.function_targets = functions or []
        self.kprobe_problem = kprobe_problem
        self.own_kernel = own_kernel
        self.void_returns = void_returns
        self.statuses: list[ProbeStatus] = []
        self.attach_note: str | None = None
        # Registered multi-probe events (entries, returns): (file, group, perf fd).
        self._fn_events: list[tuple[kprobe_events.KprobeEvents, str, int]] = []
        self._bpf: Any = None
        self._addr_map: AddressMap | None = None
        self._stack_cache: dict[int, tuple[str, ...]] = {}  # origins' stacks, this run
        self._raw_names: frozenset[str] = frozenset()
        self._generation = 0
        self._buffers: dict[int, tuple[Any, Any]] = {}
        self._maps: dict[bytes, mmap.mmap] = {}  # counter arrays, memory-mapped

    # ------------------------------------------------------------------ lifecycle

    def load(self) -> list[ProbeStatus]:
        """Compile and attach; returns one status per concrete probe."""
        bcc = import_bcc()
        if os.geteuid() != 0:
            raise EnvironmentProblem("loading BPF programs needs root", hint="run as root")
        if self.headers.source is not None:
            os.environ["BCC_KERNEL_SOURCE"] = str(self.headers.source)
        # bcc/clang print compiler diagnostics on fd 2; keep them for the error message.
        captured: list[str] = []
        try:
            with _capture_fd2(captured):
                self._bpf = bcc.BPF(text=self.text.encode())
        except Exception as exc:
            detail = [x for x in "".join(captured).strip().splitlines() if x.strip()]
            errors = [x.strip() for x in detail if "error" in x.lower()]
            hint = (errors or detail or [_first_line(exc)])[0][:300]
            raise TracerError(
                f"BPF program failed to compile or load: {_first_line(exc)}",
                hint=f"{hint}; check the kernel headers (--kernel-headers) or {SETUP_HINT}",
            ) from None
        self._bump_generation()
        for name, wanted in (
            (b"okcounts", self.options.syscalls),
            (b"tpcounts", bool(self.options.tracepoints)),
            (b"lost", True),
        ):
            mapped = self._map_array(self._bpf[name]) if wanted else None
            if mapped is not None:
                self._maps[name] = mapped
        st: list[ProbeStatus] = []
        self._raw_names = frozenset()
        if self.options.tracepoints:
            with contextlib.suppress(OSError):
                self._raw_names = raw_tracepoint_names(available_tracepoints(tracefs_path()))
        if self.options.syscalls:
            st.append(ProbeStatus("syscall", "raw_syscalls:sys_exit", "attached"))
        if self.options.retvals:
            st.append(ProbeStatus("retval", "raw_syscalls:sys_exit", "attached"))
        for tp in self.options.tracepoints:
            fn = self.options.tracepoint_function(tp)
            if fn is None:  # counted inside the always-attached fork/exit handlers
                st.append(ProbeStatus("tracepoint", tp, "attached"))
                continue
            try:
                self._attach_tracepoint(tp, fn)
                st.append(ProbeStatus("tracepoint", tp, "attached"))
            except Exception as exc:
                st.append(ProbeStatus("tracepoint", tp, "failed", _first_line(exc)))
        st += self._attach_functions()
        self.statuses = st
        if any(p.kind == "function" and p.status == "attached" for p in st):
            # Addresses are named through kallsyms (~1 s to parse in a TCG guest): once,
            # now, rather than inside the first iteration's read.
            self._addr_map = AddressMap(read_kallsyms())
        return st

    def _attach_tracepoint(self, tp: str, fn: str) -> None:
        """Attach counting function ``fn`` to ``tp``: as a raw tracepoint when possible.

        The counting functions read no arguments, so either program type works.
        A raw tracepoint skips the perf buffer setup on every hit, is never
        silently skipped when another tracing program runs on the CPU, and
        detaches in well under a millisecond (a perf tracepoint: ~70 ms each).
        Other events (not a tracepoint, or their name is not unique across
        systems, or the raw attach fails) use a perf tracepoint.
        """
        b = self._bpf
        name = tp.split(":", 1)[1]
        event = name.encode()
        if name not in self._raw_names:
            b.attach_tracepoint(tp=tp.encode(), fn_name=fn.encode())
            return
        try:
            b.attach_raw_tracepoint(tp=event, fn_name=fn.encode())
            return
        except Exception:
            # bcc caches the function by name, loaded as a raw-tracepoint program: drop it
            # so attach_tracepoint loads it again with the tracepoint program type.
            loaded = b.funcs.pop(fn.encode(), None)
            if loaded is not None:
                with contextlib.suppress(OSError):
                    os.close(loaded.fd)
        b.attach_tracepoint(tp=tp.encode(), fn_name=fn.encode())

    def _attach_functions(self) -> list[ProbeStatus]:
        if not self.function_targets:
            return []
        if self.kprobe_problem:
            kinds = ("function", "funcret") if self.options.function_returns else ("function",)
            return [
                ProbeStatus(kind, t.name, "failed", self.kprobe_problem)
                for kind in kinds
                for t in self.function_targets
            ]
        symbols = [s for t in self.function_targets for s in t.symbols]
        reasons = self._attach_function_event(symbols)
        one_by_one = reasons is None
        if reasons is None:
            reasons = self._attach_kprobes_one_by_one(symbols)
        st = self._statuses("function", reasons)
        if self.options.function_returns:
            void = {
                s for t in self.function_targets if t.name in self.void_returns for s in t.symbols
            }
            # returns only where entries are, and never on void functions
            ok = [s for s in symbols if s not in reasons and s not in void]
            returns = None if one_by_one else self._attach_function_event(ok, returns=True)
            if returns is None:
                returns = self._attach_kprobes_one_by_one(ok, returns=True)
            returns.update({s: reasons[s] for s in symbols if s in reasons})
            st += [
                ProbeStatus("funcret", p.name, "absent", VOID_REASON)
                if p.name in self.void_returns
                else p
                for p in self._statuses("funcret", returns)
            ]
        return st

    def _statuses(self, kind: str, reasons: dict[str, str]) -> list[ProbeStatus]:
        """One status per function target: attached when any of its symbols was."""
        st: list[ProbeStatus] = []
        for target in self.function_targets:
            errors = [f"{s}: {reasons[s]}" for s in target.symbols if s in reasons]
            if len(errors) < len(target.symbols):
                st.append(ProbeStatus(kind, target.name, "attached"))
            else:
                st.append(ProbeStatus(kind, target.name, "failed", "; ".join(errors)))
        return st

    def _attach_function_event(
        self, symbols: list[str], *, returns: bool = False
    ) -> dict[str, str] | None:
        """All symbols as one multi-probe kprobe event with ``fn_hit`` attached once
        (``returns``: a kretprobe event with ``fn_ret``).

        Returns the refused symbols with the kernel's reasons, or None when this
        kernel cannot do it (no ``kprobe_events``, no multi-probe events, or the
        perf event fails): the caller then attaches one perf kprobe per symbol.
        """
        events = kprobe_events.KprobeEvents(tracefs_path())
        if not events.available():
            return None
        events.remove_stale()
        if not symbols:
            return {}
        event = events.register(symbols, returns=returns)
        if event is None:
            return None
        if not event.accepted:  # no line was taken, so there is no event to remove
            return event.rejected
        bcc = import_bcc()
        captured: list[str] = []  # libbcc's own complaints; a failure here means fall back
        try:
            fn = self._bpf.load_func(b"fn_ret" if returns else b"fn_hit", bcc.BPF.KPROBE)
            with kprobe_events.ftrace_paused(self.own_kernel) as paused, _capture_fd2(captured):
                pfd = bcc.lib.bpf_attach_tracepoint(
                    fn.fd, event.group.encode(), kprobe_events.EVENT.encode()
                )
        except Exception:
            pfd = -1
        if pfd < 0:
            events.unregister(event.group)
            return None
        self._fn_events.append((events, event.group, pfd))
        note = (
            f"function {'return ' if returns else ''}probes: {len(event.accepted)} symbols in "
            f"one {'kretprobe' if returns else 'kprobe'} event ({event.name})"
            + ("; ftrace paused while arming" if paused else "")
        )
        self.attach_note = f"{self.attach_note}; {note}" if self.attach_note else note
        return event.rejected

    def _attach_kprobes_one_by_one(
        self, symbols: list[str], *, returns: bool = False
    ) -> dict[str, str]:
        """One perf kprobe (``returns``: kretprobe) per symbol (kernels without
        multi-probe kprobe events)."""
        reasons: dict[str, str] = {}
        attached = 0
        for sym in symbols:
            try:
                if returns:
                    self._bpf.attach_kretprobe(event=sym.encode(), fn_name=b"fn_ret")
                else:
                    self._bpf.attach_kprobe(event=sym.encode(), fn_name=b"fn_hit")
                attached += 1
            except Exception as exc:
                reasons[sym] = _first_line(exc)
        kind = "kretprobes" if returns else "kprobes"
        note = (
            f"function {'return ' if returns else ''}probes: {attached} perf {kind}, one per symbol"
        )
        self.attach_note = f"{self.attach_note}; {note}" if self.attach_note else note
        return reasons

    def _detach_function_event(self) -> None:
        if not self._fn_events:
            return
        registered, self._fn_events = self._fn_events, []
        lib = import_bcc().lib
        with kprobe_events.ftrace_paused(self.own_kernel):
            for _, _, pfd in registered:
                lib.bpf_close_perf_event_fd(pfd)
        for events, group, _ in registered:
            events.unregister(group)

    def detach(self) -> None:
        """Remove every probe; raises TracerError only if a kprobe event outlives us."""
        try:
            self._detach_function_event()
        finally:
            for mapped in self._maps.values():
                mapped.close()
            self._maps.clear()
            if self._bpf is not None:
                with contextlib.suppress(Exception):
                    self._bpf.cleanup()
                self._bpf = None
                self._buffers.clear()

    def __enter__(self) -> Tracer:
        self.load()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach()

    # ------------------------------------------------------------------ maps

    def _need(self) -> Any:
        if self._bpf is None:
            raise TracerError("tracer is not loaded")
        return self._bpf

    def track(self, pid: int) -> None:
        """Count everything ``pid`` and its future descendants do."""
        b = self._need()
        if not 0 < pid < self.options.pid_max:
            raise TracerError(
                f"cannot track pid {pid}: the tracer was generated for pid_max "
                f"{self.options.pid_max}",
                hint="kernel.pid_max was raised after the tracer was built: capture again",
            )
        try:
            b[b"tracked"][ct.c_int(pid)] = ct.c_uint(self._generation)
        except Exception as exc:
            raise TracerError(f"cannot track pid {pid}: {_first_line(exc)}") from None

    @staticmethod
    def _map_array(table: Any) -> mmap.mmap | None:
        """The array's values as shared memory (a ``BPF_F_MMAPABLE`` map), or None."""
        size = int(table.max_entries) * ct.sizeof(table.Leaf)
        length = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
        try:
            return mmap.mmap(
                table.map_fd, length, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
        except (OSError, ValueError):  # not mmapable here: the batch syscalls still work
            return None

    def _okcounts_nonzero(self) -> list[tuple[int, int]]:
        """(index, count) of ``okcounts``' non-zero entries.

        Read from the mapped memory when there is a mapping: this runs after every
        iteration, and a batch lookup of the ~33k entries costs ~12 ms of syscall on
        a native CPU (~60 ms in a TCG guest).
        """
        table = self._need()[b"okcounts"]
        mapped = self._maps.get(b"okcounts")
        if mapped is None:
            return self._nonzero(table, keep_buffers=True)
        vsize = ct.sizeof(table.Leaf)
        return _nonzero_words(mapped[: int(table.max_entries) * vsize], vsize)

    def _nonzero(self, table: Any, *, keep_buffers: bool = False) -> list[tuple[int, int]]:
        """(index, value) of an array's non-zero entries.

        The whole array is read with BPF_MAP_LOOKUP_BATCH into one buffer and
        scanned at C speed: ``tracked`` has pid_max entries (4M on many systems),
        and bcc's per-element iteration takes seconds for that. ``keep_buffers``:
        reuse the buffers on the next read (``okcounts``, read after every iteration).
        """
        keys, data, _ = self._batch(table, keep_buffers=keep_buffers)
        vsize = ct.sizeof(table.Leaf)
        return [(int(keys[i]), value) for i, value in _nonzero_words(data, vsize)]

    def _batch(self, table: Any, *, keep_buffers: bool) -> tuple[Any, bytes, int]:
        """Every entry of a map in one BPF_MAP_LOOKUP_BATCH pass: (keys, values, count)."""
        lib = import_bcc().lib
        n = int(table.max_entries)
        ksize, vsize = ct.sizeof(table.Key), ct.sizeof(table.Leaf)
        buffers = self._buffers.get(table.map_fd)
        if buffers is None:
            buffers = ((table.Key * n)(), (table.Leaf * n)())
            if keep_buffers:
                self._buffers[table.map_fd] = buffers
        keys, values = buffers
        cursor, count = ct.c_uint32(0), ct.c_uint32(0)
        total = 0
        while total < n:
            count.value = n - total
            res = lib.bpf_lookup_batch(
                table.map_fd,
                ct.byref(cursor) if total else None,
                ct.byref(cursor),
                ct.byref(keys, ksize * total),
                ct.byref(values, vsize * total),
                ct.byref(count),
            )
            err = ct.get_errno()
            total += count.value
            if res != 0 and err != errno.ENOENT:
                raise TracerError(f"reading a BPF array failed: {os.strerror(err)}")
            if res != 0 or count.value == 0:
                break
        return keys, ct.string_at(values, vsize * total), total

    @staticmethod
    def _zero(table: Any, indices: list[int]) -> None:
        """Zero the given array entries in one batch."""
        if indices:
            n = len(indices)
            keys = (table.Key * n)(*indices)
            table.items_update_batch(keys, (table.Leaf * n)())

    def tracked_pids(self) -> list[int]:
        """Thread ids tracked now (scans pid_max entries: for tests and debugging)."""
        tracked = self._nonzero(self._need()[b"tracked"])
        return [i for i, gen in tracked if gen == self._generation]

    def _bump_generation(self) -> None:
        """Forget every tracked thread at once: entries of older generations never match."""
        self._generation = self._generation % 0xFFFFFFFF + 1  # 1..2^32-1, never 0
        self._need()[b"generation"][ct.c_int(0)] = ct.c_uint(self._generation)

    def reset(self) -> None:
        """Zero every counter and forget tracked pids (start of a run)."""
        b = self._need()
        self._bump_generation()
        large: list[bytes] = []  # arrays: zero the non-zero entries in two batch calls
        small = [b"lost"]  # memory-mapped (zeroed in place), or a few entries: clear()
        hashes = []
        if self.options.syscalls:
            (small if b"okcounts" in self._maps else large).append(b"okcounts")
            hashes.append(b"counts")
        if self.options.tracepoints:
            small.append(b"tpcounts")
        if self.options.functions:
            hashes.append(b"fcounts")
            if self.options.function_returns:
                hashes += [b"frcounts", b"fsys"]
                if self.options.syscalls:
                    hashes += [b"thread_state", b"origins", b"stacks"]
        self._stack_cache.clear()
        for name in large:
            table = b[name]
            self._zero(table, [i for i, _ in self._nonzero(table)])
        for name in small + hashes:
            mapped = self._maps.get(name)
            if mapped is not None:
                mapped[:] = bytes(len(mapped))
            else:
                b[name].clear()

    def read(self) -> RawCounts:
        b = self._need()
        raw = RawCounts()
        if self.options.syscalls:
            for k, n in self._hash_items(b[b"counts"]):
                nr, err = int(k.id), int(k.err)
                raw.syscalls[(nr, err)] = raw.syscalls.get((nr, err), 0) + n
                if self.options.retvals and err == 0:
                    raw.retvals[(nr, int(k.bucket))] = n
            for i, n in self._okcounts_nonzero():
                nr, bucket = split_okcount(self.options, i)
                raw.syscalls[(nr, 0)] = raw.syscalls.get((nr, 0), 0) + n
                if self.options.retvals:
                    raw.retvals[(nr, bucket)] = n
        if self.options.tracepoints:
            values = self._array_values(b"tpcounts", len(self.options.tracepoints))
            raw.tracepoints = dict(zip(self.options.tracepoints, values, strict=True))
        hits = self._hash_items(b[b"fcounts"]) if self.options.functions else []
        if hits and self._addr_map is None:  # read once, when first needed, not while attaching
            self._addr_map = AddressMap(read_kallsyms())
        if self._addr_map is not None:
            for k, n in hits:
                ip = _scalar(k)
                name = self._addr_map.name_at(ip) or f"0x{ip:x}"
                raw.functions[name] = raw.functions.get(name, 0) + n
        if self._addr_map is not None and self.options.function_returns:
            for k, n in self._hash_items(b[b"frcounts"]):
                name = self._addr_map.name_at(int(k.ip)) or f"0x{int(k.ip):x}"
                key = (name, int(k.cls))
                raw.funcrets[key] = raw.funcrets.get(key, 0) + n
            for k, n in self._hash_items(b[b"fsys"]):
                name = self._addr_map.name_at(int(k.ip)) or f"0x{int(k.ip):x}"
                fkey = (name, int(k.nr))
                raw.fn_syscalls[fkey] = raw.fn_syscalls.get(fkey, 0) + n
        if self.options.function_returns and self.options.syscalls and self.options.functions:
            self._read_origins(raw)
        lost = self._array_values(b"lost", len(LOST_COUNTERS))
        raw.lost = dict(zip(LOST_COUNTERS, lost, strict=True))
        return raw

    def _read_origins(self, raw: RawCounts) -> None:
        """Errno origins, their functions named and their stacks symbolised (once per id)."""
        b = self._need()
        items = self._hash_items(b[b"origins"])
        if items and self._addr_map is None:
            self._addr_map = AddressMap(read_kallsyms())
        for k, n in items:
            ip, stack = int(k.ip), int(k.stack)
            name = "" if ip == 0 else self._name_of(ip)
            okey = (int(k.nr), int(k.err), name, stack)
            raw.origins[okey] = raw.origins.get(okey, 0) + n
            if stack >= 0 and stack not in self._stack_cache:
                try:
                    addrs = list(b[b"stacks"].walk(stack))
                except Exception:  # the id was evicted: an origin without a path
                    addrs = []
                self._stack_cache[stack] = tuple(self._name_of(int(a)) for a in addrs)
            if stack >= 0:
                raw.stacks[stack] = self._stack_cache[stack]

    def _name_of(self, addr: int) -> str:
        assert self._addr_map is not None
        return self._addr_map.name_at(addr) or f"0x{addr:x}"

    def _array_values(self, name: bytes, n: int) -> list[int]:
        """The first ``n`` counters of a u64 array: from its mapping, else one lookup each."""
        mapped = self._maps.get(name)
        if mapped is not None:
            return list(struct.unpack_from(f"={n}Q", mapped, 0))
        table = self._need()[name]
        return [int(table[ct.c_int(i)].value) for i in range(n)]

    def _hash_items(self, table: Any) -> list[tuple[Any, int]]:
        """(key, u64 value) of every hash entry: one batch lookup into kept buffers
        (bcc's ``items()`` costs two syscalls per entry), or bcc's iteration where the
        kernel cannot batch-read hashes."""
        try:
            keys, data, total = self._batch(table, keep_buffers=True)
        except TracerError:
            return [(k, int(v.value)) for k, v in table.items()]
        vsize = ct.sizeof(table.Leaf)
        return [
            (keys[i], int.from_bytes(data[i * vsize : (i + 1) * vsize], sys.byteorder))
            for i in range(total)
        ]


class LsmProgram:
    """A loaded BPF-LSM program (an injected fault, ``regress.guest.faults``); ``close()`` unloads.

    Kept apart from ``Tracer`` so a fault never changes the tracer's text or fingerprint.
    """

    def __init__(self, bpf: Any) -> None:
        self._bpf = bpf

    def array_values(self, name: str) -> list[int]:
        """The values of a ``BPF_ARRAY`` of u64 (the fault's counters)."""
        if self._bpf is None:
            raise TracerError("LSM program is not loaded")
        table = self._bpf[name.encode()]
        return [int(table[ct.c_int(i)].value) for i in range(len(table))]

    def close(self) -> None:
        if self._bpf is not None:
            with contextlib.suppress(Exception):
                self._bpf.cleanup()
            self._bpf = None


def load_lsm_program(text: str) -> LsmProgram:
    """Compile ``text`` and attach its ``LSM_PROBE``s (bcc autoloads ``lsm__*``)."""
    bcc = import_bcc()
    if os.geteuid() != 0:
        raise EnvironmentProblem("loading BPF programs needs root", hint="run as root")
    captured: list[str] = []
    try:
        with _capture_fd2(captured):
            bpf = bcc.BPF(text=text.encode())
    except Exception as exc:
        detail = [x for x in "".join(captured).strip().splitlines() if x.strip()]
        hint = detail[-1] if detail else _first_line(exc)
        raise TracerError(
            f"BPF-LSM program failed to compile, load or attach: {_first_line(exc)}",
            hint=f"{hint}; BPF LSM must be active (/sys/kernel/security/lsm lists bpf)",
        ) from None
    return LsmProgram(bpf)

"""All function probes as one multi-probe kprobe event (tracefs ``kprobe_events``).

Why: N functions attached as N perf kprobes cost N perf events, and closing each
one waits for its own RCU grace periods (~8 ms each in a TCG guest). Since Linux
5.7 one kprobe event may hold many probes (lines appended under one event name);
one perf event then arms and disarms them all, and one BPF attachment serves
every probe. ``bpf_get_func_ip()`` still says which probe fired
(``kprobe_running()->addr``), so counts stay per function.

Plain tracefs file I/O: no bcc here (``regress.guest.tracer`` owns bcc). Symbols are
validated before they reach the kernel; nothing a user typed is written verbatim.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from regress.errors import TracerError
from regress.guest.probes import SYMBOL_RE

GROUP_PREFIX = "regress_"
EVENT = "fn"
FTRACE_ENABLED = Path("/proc/sys/kernel/ftrace_enabled")
KPROBES_BLACKLIST = Path("/sys/kernel/debug/kprobes/blacklist")

_GROUP_RE = re.compile(r"^[pr]:" + GROUP_PREFIX + r"(\d+)_(\d+)/" + EVENT + r"\s")
_serial = itertools.count(1)


@dataclass
class FunctionEvent:
    """The registered event: which symbols it probes and why the others were refused."""

    group: str
    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return event_name(self.group)


def event_name(group: str) -> str:
    """``group/fn``: how tracefs names the event (``events/<group>/fn``)."""
    return f"{group}/{EVENT}"


def new_group(pid: int | None = None) -> str:
    """A group name unique to this process and tracer: ``regress_<pid>_<n>``."""
    return f"{GROUP_PREFIX}{os.getpid() if pid is None else pid}_{next(_serial)}"


def probe_line(group: str, symbol: str, *, returns: bool = False) -> str:
    """The ``kprobe_events`` line adding ``symbol`` (its entry, or with ``returns`` its
    return: a kretprobe) to ``group``'s event."""
    if not SYMBOL_RE.match(symbol):
        raise TracerError(f"refusing to probe {symbol!r}: not a kernel symbol name")
    return f"{'r' if returns else 'p'}:{event_name(group)} {symbol}\n"


def error_log_reason(text: str) -> str | None:
    """The last ``error: ...`` of tracefs ``error_log`` (why the kernel refused a probe)."""
    found = re.findall(r"error:\s*(.+)", text)
    return found[-1].strip() if found else None


def stale_groups(kprobe_events: str, alive: set[int] | None = None) -> list[str]:
    """Groups left by regress processes that no longer exist (a crash before detach)."""
    groups = []
    for line in kprobe_events.splitlines():
        m = _GROUP_RE.match(line)
        if not m:
            continue
        pid = int(m.group(1))
        gone = pid not in alive if alive is not None else not Path(f"/proc/{pid}").exists()
        group = f"{GROUP_PREFIX}{m.group(1)}_{m.group(2)}"
        if gone and group not in groups:
            groups.append(group)
    return groups


def _errno_text(exc: OSError) -> str:
    code = exc.errno or 0
    return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


class KprobeEvents:
    """One tracefs instance's ``kprobe_events`` file."""

    def __init__(self, tracefs: Path, blacklist: Path = KPROBES_BLACKLIST) -> None:
        self.tracefs = tracefs
        self.path = tracefs / "kprobe_events"
        self._blacklist_path = blacklist
        self._blacklist: set[str] | None = None

    def blacklisted(self, symbol: str) -> bool:
        """Whether the kernel lists ``symbol`` as never probeable (NOKPROBE_SYMBOL)."""
        if self._blacklist is None:
            try:
                text = self._blacklist_path.read_text()
            except OSError:
                text = ""
            self._blacklist = {line.split()[-1] for line in text.splitlines() if line.strip()}
        return symbol in self._blacklist

    def available(self) -> bool:
        return os.access(self.path, os.W_OK)

    def _write(self, text: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def _reason(self, symbol: str, exc: OSError) -> str:
        try:
            why = error_log_reason((self.tracefs / "error_log").read_text())
        except OSError:
            why = None
        text = _errno_text(exc) + (f": {why}" if why else "")
        if self.blacklisted(symbol):
            text += f" (on the kprobes blacklist, {self._blacklist_path})"
        return text

    def register(
        self, symbols: Sequence[str], group: str | None = None, *, returns: bool = False
    ) -> FunctionEvent | None:
        """Add one probe per symbol to a new event; None when the kernel cannot do that.

        A kernel without multi-probe events (< 5.7) refuses the second line with
        EEXIST; the event is then removed and the caller attaches probes one by one.
        Symbols the kernel refuses (notrace, blacklisted, gone) are listed with the
        kernel's reason and do not stop the rest. ``returns``: kretprobes (one event
        holds either kind, never both).
        """
        event = FunctionEvent(group or new_group())
        with contextlib.suppress(OSError):
            (self.tracefs / "error_log").write_text("")  # so a reason is this write's
        for symbol in symbols:
            line = probe_line(event.group, symbol, returns=returns)
            try:
                self._write(line)
            except OSError as exc:
                if exc.errno == errno.EEXIST and event.accepted:
                    self.unregister(event.group)
                    return None
                event.rejected[symbol] = self._reason(symbol, exc)
                continue
            event.accepted.append(symbol)
        return event

    def unregister(self, group: str) -> None:
        """Remove the event and every probe in it (it must not be enabled)."""
        try:
            self._write(f"-:{event_name(group)}\n")
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise TracerError(
                    f"cannot remove kprobe event {event_name(group)}: {_errno_text(exc)}",
                    hint=f"remove it by hand: echo '-:{event_name(group)}' >> {self.path}",
                ) from None

    def remove_stale(self) -> list[str]:
        """Remove events of dead regress processes; returns their groups."""
        try:
            text = self.path.read_text()
        except OSError:
            return []
        removed = []
        for group in stale_groups(text):
            with contextlib.suppress(TracerError):
                self.unregister(group)
                removed.append(group)
        return removed


@contextlib.contextmanager
def ftrace_paused(enabled: bool, path: Path = FTRACE_ENABLED) -> Iterator[bool]:
    """Turn every ftrace call site off while probes are armed or disarmed.

    Each ftrace-based kprobe armed while ftrace runs rewrites kernel text and scans
    all ~35k ftrace records (~4 ms each under TCG); paused, arming only updates the
    filter hash and turning ftrace back on patches all sites in one pass. Global:
    for a kernel regress owns (a disposable guest), never a shared host. Yields
    whether ftrace really was paused (a livepatch keeps it on: EBUSY).
    """
    if not enabled:
        yield False
        return
    try:
        was = path.read_text().strip()
        if was != "1":
            raise OSError(errno.EALREADY, "ftrace is not on")
        path.write_text("0")
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        try:
            path.write_text("1")
        except OSError as exc:
            raise TracerError(
                f"cannot turn ftrace back on: {_errno_text(exc)}",
                hint=f"echo 1 > {path}",
            ) from None

"""Syscall names against the running kernel's tracefs: is the shipped table current?

The table itself and every errno name live in ``regress.model.names`` (shared with
the differ); this module only asks tracefs which syscalls the running kernel has.

Stdlib-only: this module also runs inside the guest VM.
"""

from __future__ import annotations

import os
from pathlib import Path

from regress.model.names import TRACEFS_ALIASES, table

__all__ = ["TRACEFS_ALIASES", "cross_check", "tracefs_names"]


def tracefs_names(tracefs: Path = Path("/sys/kernel/tracing")) -> set[str] | None:
    """Syscall names with a ``sys_enter_*`` event on the running kernel (None: unreadable)."""
    try:
        entries = os.listdir(tracefs / "events" / "syscalls")
    except OSError:
        return None
    return {e[len("sys_enter_") :] for e in entries if e.startswith("sys_enter_")}


def cross_check(tracefs: Path = Path("/sys/kernel/tracing")) -> list[str]:
    """Names the running kernel knows (tracefs) that our table lacks: a stale table.

    Table entries missing from tracefs are fine (syscalls configured out or
    without SYSCALL_DEFINE metadata); the reverse means the table needs updating.
    """
    present = tracefs_names(tracefs)
    if present is None:
        return []
    known = set(table().values()) | set(TRACEFS_ALIASES.values())
    return sorted(present - known)

"""Progress: one event type for the runner, the guest agent and the host pipeline.

The runner reports to a callback; the guest agent serialises the same events as
``REGRESS-EVENT {json}`` console lines; the VM stage parses them back and adds the
side (old/new) and boot; the pipeline adds stages and workloads. A display (rich bars,
CI log lines) matches on ``kind`` -- one vocabulary, checked when an event is built.

Stdlib only (runs in the guest).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

EVENT_PREFIX = "REGRESS-EVENT "

EventKind = Literal[
    "stage",  # a step of the host pipeline (message)
    "loading",  # the tracer is being compiled (message: headers used)
    "loaded",  # probes attached (message)
    "run_start",  # run ``run`` of ``runs`` starts, ``iterations`` iterations
    "iteration",  # iteration ``iteration`` of run ``run`` finished
    "run_done",  # run ``run`` finished
    "saved",  # the capture on disk now holds ``runs_done`` runs
    "agent_ready",  # the guest agent started (release)
    "agent_exit",  # the guest agent is done (status)
    "fault_loaded",  # a positive-control fault is active in this guest (message)
    "boot",  # boot ``boot`` of ``boots`` of a side starts (release, path: console log)
    "workload",  # workload ``index`` of ``count`` starts (workload)
    "workload_done",  # a workload was judged (workload, status, message)
]
EVENT_KINDS: frozenset[str] = frozenset(EventKind.__args__)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Event:
    kind: EventKind
    message: str = ""
    side: str = ""  # "old" / "new" once the VM stage knows it
    run: int | None = None
    runs: int = 0
    runs_done: int = 0
    iteration: int | None = None
    iterations: int = 0
    boot: int | None = None
    boots: int = 0
    release: str = ""
    path: str = ""  # a console log or report the event refers to
    workload: str = ""
    index: int = 0
    count: int = 0
    status: str = ""

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown progress event kind {self.kind!r}")

    def to_line(self) -> str:
        """The console form the guest agent prints (defaults omitted)."""
        default = Event("stage")
        doc = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name == "kind" or getattr(self, f.name) != getattr(default, f.name)
        }
        return EVENT_PREFIX + json.dumps(doc, sort_keys=True)

    @classmethod
    def from_line(cls, line: str) -> Event | None:
        """An event from a console line (anything else, or a garbled one: None)."""
        idx = line.find(EVENT_PREFIX)
        if idx < 0:
            return None
        try:
            doc = json.loads(line[idx + len(EVENT_PREFIX) :])
        except ValueError:
            return None
        if not isinstance(doc, dict) or doc.get("kind") not in EVENT_KINDS:
            return None
        known = {f.name: f.type for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in doc.items() if k in known})
        except (TypeError, ValueError):
            return None

    def on_side(self, side: str, **more: Any) -> Event:
        return replace(self, side=side, **more)


Progress = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """A progress callback that drops everything."""

"""Progress displays for the one ``Event`` type: plain log lines, or rich bars."""

from __future__ import annotations

from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from regress.cli.app import err
from regress.model.events import Event


def log_lines(ev: Event) -> None:
    """Plain progress lines on stderr (CI logs have no terminal for progress bars)."""
    if ev.kind == "workload":
        err.print(f"regress ci: [{ev.index + 1}/{ev.count}] {ev.workload}", markup=False)
    elif ev.kind == "workload_done":
        err.print(f"regress ci: {ev.workload}: {ev.status}: {ev.message}", markup=False)
    elif ev.kind == "stage":
        err.print(f"regress: {ev.message}", markup=False)
    elif ev.kind == "boot":
        err.print(
            f"regress: {ev.side} kernel {ev.release} boot {(ev.boot or 0) + 1}/{ev.boots} "
            f"(console log {ev.path})",
            markup=False,
        )
    elif ev.kind == "saved" and ev.side:
        err.print(f"regress: {ev.side}: {ev.runs_done}/{ev.runs} runs", markup=False)


class RunBars:
    """Rich progress bars, one per kernel, fed by the VM stage's events (stderr)."""

    def __init__(self, runs: int) -> None:
        self.runs = runs
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} runs"),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, ev: Event) -> None:
        if ev.kind == "stage":
            self.bars.console.print(f"regress: {ev.message}", markup=False)
        elif ev.kind == "boot":
            if ev.side not in self.tasks:
                self.tasks[ev.side] = self.bars.add_task(f"{ev.side} {ev.release}", total=self.runs)
            self.bars.update(
                self.tasks[ev.side],
                description=f"{ev.side} {ev.release} boot {(ev.boot or 0) + 1}/{ev.boots}",
            )
        elif ev.kind == "saved" and ev.side in self.tasks:
            self.bars.update(self.tasks[ev.side], completed=ev.runs_done)

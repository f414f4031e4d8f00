"""The typer application object, shared by the command modules in ``regress/commands``.

Kept apart from ``cli.py`` so command modules can register themselves without
import cycles. Commands are thin: parse options, call core code, print.
"""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="regress",
    help="What did the kernel start doing differently? Trace one workload on two kernels and diff.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Core code never prints; commands print results to stdout and chatter to stderr.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@app.callback()
def _root() -> None:
    """What did the kernel start doing differently? Trace one workload on two kernels and diff."""

"""The typer application object, shared by the command modules in ``regress/commands``.

Kept apart from ``cli.py`` so command modules can register themselves without
import cycles. Commands are thin: parse options, call core code, print.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from regress import __version__

app = typer.Typer(
    name="regress",
    help="What did the kernel start doing differently? Trace one workload on two kernels and diff.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish)
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    # Plain help (click's formatter): it wraps at the terminal width and never cuts a
    # default or an example, where typer's rich panels ellipsize them at 80 columns.
    rich_markup_mode=None,
)


# Core code never prints; commands print results to stdout and chatter to stderr.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"regress {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="print the version and exit", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """What did the kernel start doing differently? Trace one workload on two kernels and diff.

    Example: regress run --old debian:6.1.0-47-cloud-amd64 --new debian:6.1.0-56-cloud-amd64
    """

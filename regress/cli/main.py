"""Entry point: maps every ``RegressError`` to one line on stderr and its exit code.

Exit codes: 0 ok; 1 a gate found significant divergences; 2 usage or input
error; 3 environment/tracer problem; 4 workload or VM failure; 70 internal
error (a bug: re-run with REGRESS_DEBUG=1 for the traceback); 130 interrupted.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from types import FrameType

import typer

# Command modules register themselves on ``app`` when imported.
from regress.cli.app import app, err
from regress.cli.commands import bisect as _bisect  # noqa: F401
from regress.cli.commands import capture as _capture  # noqa: F401
from regress.cli.commands import ci as _ci  # noqa: F401
from regress.cli.commands import diff as _diff  # noqa: F401
from regress.cli.commands import narrow as _narrow  # noqa: F401
from regress.cli.commands import report as _report  # noqa: F401
from regress.cli.commands import vm as _vm  # noqa: F401
from regress.errors import RegressError
from regress.model.safejson import clip

MAX_MESSAGE = 400  # characters of one error line

INTERNAL_ERROR = 70
INTERRUPTED = 130


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a CI job cancelled, ``kill``) unwinds like Ctrl-C, so VM guests -- started in
    their own sessions -- are killed and finished captures kept, instead of being orphaned
    by the default handler, which exits without running any cleanup."""
    raise KeyboardInterrupt


def run(argv: list[str] | None = None) -> int:
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (an embedding caller): leave it alone
        previous = None
    try:
        return _run(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str] | None) -> int:
    try:
        rc = app(args=argv, standalone_mode=False, prog_name="regress")
    except RegressError as exc:
        # bounded and encodable whatever the input echoed into it
        err.print(f"regress: error: {clip(exc.one_line(), MAX_MESSAGE)}", markup=False)
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("regress: interrupted", markup=False)
        return INTERRUPTED
    except typer.TyperException as exc:  # click usage errors: bad option, missing argument
        message = exc.format_message()
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `regress` or `regress kernel`
            err.print(message, markup=False)
            return 2
        err.print(f"regress: error: {message.strip().splitlines()[-1]}", markup=False)
        return int(getattr(exc, "exit_code", 2))
    except Exception as exc:
        if os.environ.get("REGRESS_DEBUG"):
            traceback.print_exc()
        err.print(
            f"regress: internal error: {type(exc).__name__}: {exc} "
            "(a bug; re-run with REGRESS_DEBUG=1 for the traceback)",
            markup=False,
        )
        return INTERNAL_ERROR
    if rc == INTERRUPTED:
        # typer turns KeyboardInterrupt (Ctrl-C, and SIGTERM via ``_terminate``) into a
        # silent exit code 130; say what happened.
        err.print("regress: interrupted", markup=False)
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    main()

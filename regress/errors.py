"""One exception hierarchy for every expected failure.

Core code raises these and never prints or exits; ``cli.py`` maps each class to
a one-line message and an exit code. Anything else reaching the CLI is a bug.
Messages should name the fix ("run scripts/setup.sh", "pass --force"), because
they are all the user sees.
"""

from __future__ import annotations


class RegressError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.strip().replace("\n", " ")
        if self.hint:
            text += f" ({self.hint.strip()})"
        return text


class UsageError(RegressError):
    """Bad command-line arguments or option combinations."""


class InputError(RegressError):
    """A file the user gave us is missing, unreadable or malformed."""


class WorkloadError(InputError):
    """A workload spec is unknown or invalid."""


class CaptureFormatError(InputError):
    """A capture file is not a valid capture (bad JSON, wrong shape, truncated)."""


class SchemaTooNewError(CaptureFormatError):
    """A capture was written by a newer regress than this one."""


class IncomparableError(RegressError):
    """Two captures differ in something other than the kernel."""


class EnvironmentProblem(RegressError):
    """The machine lacks something regress needs (bcc, tracefs, headers, qemu...)."""

    exit_code = 3


class TracerError(RegressError):
    """The BPF tracer could not be built, loaded or attached."""

    exit_code = 3


class WorkloadRunError(RegressError):
    """The workload itself failed (non-zero exit, setup failure, timeout)."""

    exit_code = 4


class VMError(RegressError):
    """A VM boot failed: panic, hang, guest agent error. Names the console log."""

    exit_code = 4


class RegressionFound(RegressError):
    """Not an error in the tool: a gate found significant divergences (exit 1)."""

    exit_code = 1

"""Running the host tools the VM stage needs (apt, dpkg, depmod, mkfs, debootstrap): one
way, so every failure is one line naming what regress wanted from the tool."""

from __future__ import annotations

import subprocess
from pathlib import Path

from regress.errors import EnvironmentProblem


def run_tool(
    argv: list[str], *, what: str, cwd: Path | None = None, timeout: float | None = None
) -> str:
    """The tool's stdout; a missing tool or a non-zero exit is an ``EnvironmentProblem``."""
    try:
        proc = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise EnvironmentProblem(
            f"{argv[0]} not found (needed to {what})", hint="run scripts/setup.sh"
        ) from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise EnvironmentProblem(
            f"{what} failed (exit {proc.returncode}, {' '.join(argv[:3])}…): {' | '.join(tail)}"
        )
    return proc.stdout

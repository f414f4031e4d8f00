"""Where regress keeps the files it owns: one rule for every stage.

The cache (kernels, guest images, merged header trees) lives in ``$REGRESS_CACHE``,
else ``$XDG_CACHE_HOME/regress``, else ``~/.cache/regress`` -- outside the repository,
so nothing big is ever committed.

Stdlib only (the guest's header lookup uses it too).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

CACHE_ENV = "REGRESS_CACHE"
REPORTS_DIR = Path("reports")  # regress's own output root (relative to the working dir)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_component(name: str, *, fallback: str = "workload", limit: int = 60) -> str:
    """One path component made from ``name`` (a workload name, a release): only
    ``[A-Za-z0-9._-]``, no leading dot, never empty -- so a captured or user-given
    string can never climb out of (``../``) or replace (``/x``) an output directory."""
    base = Path(name).stem if name.endswith(".toml") else name
    return (_UNSAFE.sub("_", base).strip("._") or fallback)[:limit]


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "regress"

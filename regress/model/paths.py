"""Where regress keeps the files it owns: one rule for every stage.

The cache (kernels, guest images, merged header trees) lives in ``$REGRESS_CACHE``,
else ``$XDG_CACHE_HOME/regress``, else ``~/.cache/regress`` -- outside the repository,
so nothing big is ever committed.

Stdlib only (the guest's header lookup uses it too).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "REGRESS_CACHE"


def cache_root() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "regress"

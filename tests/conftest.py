"""Shared test fixtures. Kernel-facing tests run for real: on this host (root,
tracefs, bcc) or in a QEMU guest. When a prerequisite is missing they fail with
the reason instead of skipping, so a green run always means the kernel was traced."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTDATA = Path(__file__).resolve().parent / "testdata"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def testdata() -> Path:
    return TESTDATA

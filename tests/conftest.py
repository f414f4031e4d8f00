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


@pytest.fixture(scope="session")
def vm_ready() -> None:
    """Fetch both default Debian kernels and build the guest image if not cached.

    Shared by every VM test module; fails (never skips) without root.
    """
    import os

    from regress.vm import backend, image, kernels

    if os.geteuid() != 0:
        pytest.fail("VM tests need root (debootstrap, apt-get download)")
    for ref in (backend.DEFAULT_OLD, backend.DEFAULT_NEW):
        kernels.fetch_debian(ref)
    image.build_root_image()

"""Suspect commits: the changes between two Debian packages, from the changelog, ranked
by what diverged (a small changelog fixture in the real format, and the real one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from regress.gate import suspects
from regress.model.result import Culprit, DiffResult
from regress.vm import changelog, kernels

FIXTURE = Path(__file__).parent / "testdata" / "debian" / "changelog"


def _changes() -> list[changelog.Change]:
    return changelog.changes_between(FIXTURE.read_text(), "6.1.180-1", "6.1.187-1")


def test_changes_between_two_uploads() -> None:
    changes = _changes()
    subjects = [c.subject for c in changes]
    # the good kernel's own upload is excluded; the signed wrapper is not a change
    assert not any("already in the good kernel" in s for s in subjects)
    assert not any(s.startswith("Sign kernel") for s in subjects)
    # a Debian change repeated by the signed wrapper of a later upload is not in range
    assert len(subjects) == len(set(subjects)) == 8
    wrapped = next(c for c in changes if c.subject.startswith("sched:"))
    assert wrapped.subject.endswith("by the Debian changelog writer")
    first = next(c for c in changes if "find_ge_pid" in c.subject)
    assert (first.stable, first.upload) == ("6.1.186", "6.1.187-1")
    own = next(c for c in changes if c.subject.startswith("proc: fix an early end"))
    assert own.stable == ""  # Debian's own change
    # a bookworm backport's version lines up with the trixie uploads it lists
    assert (
        len(
            changelog.changes_between(FIXTURE.read_text(), "6.1.180-1~deb12u1", "6.1.187-1~deb12u1")
        )
        == 8
    )


def _result(functions: tuple[str, ...], syscalls: tuple[str, ...]) -> DiffResult:
    from regress.model.result import CaptureSummary, Thresholds

    summary = CaptureSummary("x", "r", "v", "w", 1, 1, True)
    return DiffResult(
        old=summary,
        new=summary,
        thresholds=Thresholds(),
        divergences=(),
        keys_tested=0,
        culprits=tuple(
            Culprit(function=f, basis="b", evidence=(), syscalls=syscalls) for f in functions
        ),
    )


def test_ranked_by_function_then_syscall_then_subsystem() -> None:
    result = _result(("find_ge_pid",), ("getdents64", "openat"))
    top, matched, terms = suspects.rank(_changes(), result)
    subjects = [s.subject for s in top]
    assert subjects[0].startswith("pid: make find_ge_pid()")  # names the function, pid:
    assert "names find_ge_pid()" in top[0].why and "subsystem pid" in top[0].why
    assert subjects[1].startswith('Revert "openat:')  # names a diverging syscall
    assert any(s.startswith("fs/proc: simplify readdir") for s in subjects)  # subsystem
    assert not any(s.startswith("[arm64]") for s in subjects)  # another architecture
    assert not any(s.startswith("drm/amd") for s in subjects)  # unrelated
    assert matched == len(top) and "find_ge_pid" in terms and "getdents64" in terms


@pytest.mark.skipif(
    kernels.cached("6.1.0-56-cloud-amd64") is None, reason="needs the cached Debian kernel"
)
def test_real_changelog_between_two_packaged_kernels() -> None:
    """6.1.0-47 -> 6.1.0-56: thousands of upstream changes, ranked for a /proc walk."""
    old, new = kernels.cached("6.1.0-47-cloud-amd64"), kernels.cached("6.1.0-56-cloud-amd64")
    assert old is not None and new is not None
    found = suspects.suspects_between(_result(("find_ge_pid",), ("getdents64",)), old, new)
    assert found is not None and found.total > 1000, found
    assert found.matched >= len(found.top) > 0
    assert found.old_upstream == old.upstream and found.new_upstream == new.upstream
    scores = [s.score for s in found.top]
    assert scores == sorted(scores, reverse=True)
    back = suspects.suspects_between(_result((), ("getdents64",)), new, old)
    assert back is not None and "taken away" in back.note and back.total == found.total

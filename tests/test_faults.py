"""The BPF-LSM fault program text: golden files, validation, no root or bcc needed.

The text is what the guest compiles for ``regress selftest``; a change to it must
be a visible diff of the golden files (regenerate them with
``REGRESS_UPDATE_GOLDEN=1``), never an accident.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from regress.errors import UsageError
from regress.guest.faults import FAULT_ERRNOS, FaultSpec, generate

GOLDEN = Path(__file__).resolve().parent / "testdata" / "faults"
CASES = {
    "default.c": FaultSpec(),
    "sh_every3_eio.c": FaultSpec(comm="sh", name="status", every=3, errno="EIO"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_text(name: str) -> None:
    text = generate(CASES[name])
    path = GOLDEN / name
    if os.environ.get("REGRESS_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_default_fault_targets_ps_proc_stat_every_other_open() -> None:
    text = generate(FaultSpec())
    assert "LSM_PROBE(file_open, struct file *file)" in text
    assert "comm[0] == 'p' && comm[1] == 's' && comm[2] == 0" in text
    assert (
        "name[0] == 's' && name[1] == 't' && name[2] == 'a' && name[3] == 't' && name[4] == 0"
        in text
    )
    assert "#define REGRESS_FAULT_EVERY 2" in text
    assert "#define REGRESS_FAULT_ERRNO 13 /* EACCES */" in text
    assert "return -REGRESS_FAULT_ERRNO;" in text
    assert "s_magic != REGRESS_PROC_SUPER_MAGIC" in text  # only procfs files


def test_values_change_the_text() -> None:
    base = generate(FaultSpec())
    assert generate(FaultSpec(every=5)) != base
    assert generate(FaultSpec(errno="EPERM")).count("#define REGRESS_FAULT_ERRNO 1 /* EPERM */")
    assert "comm[3] == 0" in generate(FaultSpec(comm="cat"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"comm": ""},
        {"comm": "a" * 16},  # TASK_COMM_LEN 16 includes the NUL
        {"comm": "p's"},
        {"comm": "ps\\"},
        {"name": "../stat"},
        {"name": ".."},
        {"name": "st at"},
        {"name": "x" * 32},
        {"every": 0},
        {"every": 1001},
        {"every": True},
        {"every": "2"},
        {"errno": "ENOSPC"},
        {"errno": "13"},
    ],
)
def test_invalid_values_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        FaultSpec(**kwargs)  # type: ignore[arg-type]


def test_description_and_expected_key() -> None:
    f = FaultSpec()
    assert f.describe() == (
        "BPF-LSM file_open denies every 2nd open of another process's /proc/<pid>/stat "
        "by comm 'ps' with -EACCES"
    )
    assert FaultSpec(every=1).describe().startswith("BPF-LSM file_open denies every open")
    assert FaultSpec(every=11).describe().count("every 11th")
    assert f.expected_key() == "syscall:openat:EACCES"
    job = f.to_job()
    assert job["bpf_text"] == generate(f) and job["description"] == f.describe()
    assert set(FAULT_ERRNOS) >= {"EACCES", "EPERM"}

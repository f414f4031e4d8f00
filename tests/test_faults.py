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
from regress.guest.modfault import ReturnFault, stats_of
from regress.guest.modfault import generate as generate_module
from regress.guest.modfault import stats_note as module_stats_note

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


# --------------------------------------------------------------------------- module faults

MODULE_CASES = {
    "module_null_find_ge_pid.c": ReturnFault("find_ge_pid", "null"),
    "module_eacces_proc_pid_permission.c": ReturnFault("proc_pid_permission", "EACCES", every=3),
}


@pytest.mark.parametrize("name", sorted(MODULE_CASES))
def test_module_golden_text(name: str) -> None:
    text = generate_module(MODULE_CASES[name])
    path = GOLDEN / name
    if os.environ.get("REGRESS_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_module_rewrites_only_matching_returns() -> None:
    null = generate_module(ReturnFault("find_ge_pid", "null", every=8))
    assert '.kp.symbol_name = "find_ge_pid"' in null
    assert "if (rv == 0 || IS_ERR_VALUE(rv))\n\t\treturn 0;" in null  # only real pointers
    assert "regs_set_return_value(regs, 0);" in null and "#define REGRESS_FAULT_EVERY 8" in null
    eacces = generate_module(ReturnFault("proc_pid_permission", "EACCES"))
    assert "if (rv != 0)\n\t\treturn 0;" in eacces  # only successes become errors
    assert "#define REGRESS_FAULT_ERRNO 13 /* EACCES */" in eacces
    assert ReturnFault("f", "null").return_class == "NULL/0"
    assert ReturnFault("f", "EIO").return_class == "-EIO"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"function": "find_ge_pid\n", "mode": "null"},  # trailing newline: never pasted
        {"function": "a;b", "mode": "null"},
        {"function": "1abc", "mode": "null"},
        {"function": "f", "mode": "ENOSUCH"},
        {"function": "f", "mode": "null", "comm": 'p"s'},
        {"function": "f", "mode": "null", "every": 0},
        {"function": "f", "mode": "null", "every": True},
    ],
)
def test_module_fault_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        ReturnFault(**kwargs)  # type: ignore[arg-type]


def test_module_stats_note_round_trips() -> None:
    assert stats_of(["x", module_stats_note(40, 5)]) == (40, 5)
    assert stats_of(["fault program saw 3 matching open(s) and denied 1"]) is None

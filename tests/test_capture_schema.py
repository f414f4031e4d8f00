"""Capture files: schema round-trip, strict loading, migrations, atomic writes."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from regress.errors import CaptureFormatError, InputError, SchemaTooNewError
from regress.model import capture as cap
from regress.model.capture import (
    Capture,
    KernelInfo,
    MachineInfo,
    ProbeStatus,
    Run,
    TracerInfo,
    WorkloadInfo,
    load_capture,
    save_capture,
)


def sample(runs: int = 2, requested: int = 2) -> Capture:
    c = Capture(
        kernel=KernelInfo("6.18.0", "Linux version 6.18.0", "quiet", "ab" * 32, {"CONFIG_X": "y"}),
        machine=MachineInfo("host", "x86_64", 2, 1024, None, "h"),
        tracer=TracerInfo("f" * 64, {"syscalls": True}, "// text\n"),
        workload=WorkloadInfo("ps-loop", "a" * 64, {"name": "ps-loop"}),
        bcc_version="0.26.0",
        requested_runs=requested,
        probes=[
            ProbeStatus("syscall", "raw_syscalls:sys_exit", "attached"),
            ProbeStatus("function", "find_ge_pid", "failed", "kprobes unavailable"),
        ],
        notes=["kernel headers: x"],
        regress_version="0.1.0",
        created_utc="2026-11-24T00:00:00Z",
    )
    for i in range(runs):
        c.runs.append(
            Run(
                index=i,
                iterations=3,
                wall_s=0.5,
                started_utc="2026-11-24T00:00:00Z",
                syscalls={"openat": {"0": 10, "2": 4}, "kill": {"3": 3}},
                retvals={"read": {"0": 1, "12": 5}},
                tracepoints={"sched:sched_process_fork": 3},
                functions={},
                liveness=[True, True, False],
                exit_codes=[0, 0, 0],
                lost={"tracked_full": 0},
            )
        )
    return c


@pytest.mark.parametrize("name", ["c.json", "c.json.gz"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    c = sample()
    save_capture(c, tmp_path / name)
    back = load_capture(tmp_path / name)
    assert back.to_dict() == c.to_dict()
    assert back.complete and back.iterations_per_run == 3
    assert back.probe_status("function", "find_ge_pid") == c.probes[1]


def test_partial_capture_says_so(tmp_path: Path) -> None:
    save_capture(sample(runs=1, requested=3), tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["complete"] is False and doc["requested_runs"] == 3
    assert not load_capture(tmp_path / "p.json").complete


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    p = tmp_path / "c.json"
    p.write_text(json.dumps(doc))
    return p


def test_newer_schema_refused(tmp_path: Path) -> None:
    doc = sample().to_dict()
    doc["schema_version"] = cap.SCHEMA_VERSION + 1
    with pytest.raises(SchemaTooNewError, match="newer than this regress"):
        load_capture(_write(tmp_path, doc))


@pytest.mark.parametrize("bad", [None, "1", True, 1.0])
def test_missing_or_bad_version_refused(tmp_path: Path, bad: Any) -> None:
    doc = sample().to_dict()
    if bad is None:
        del doc["schema_version"]
    else:
        doc["schema_version"] = bad
    with pytest.raises(CaptureFormatError, match="missing or non-integer schema_version"):
        load_capture(_write(tmp_path, doc))


def test_migration_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A v1 file goes through every registered step up to the current version."""
    calls: list[int] = []

    def v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        doc["notes"] = [*doc["notes"], "migrated 1->2"]
        return doc

    def v2_to_v3(doc: dict[str, Any]) -> dict[str, Any]:
        calls.append(2)
        doc["notes"] = [*doc["notes"], "migrated 2->3"]
        return doc

    p = tmp_path / "old.json"
    save_capture(dataclasses.replace(sample(), schema_version=1), p)
    monkeypatch.setattr(cap, "SCHEMA_VERSION", 3)
    monkeypatch.setitem(cap.MIGRATIONS, 1, v1_to_v2)
    monkeypatch.setitem(cap.MIGRATIONS, 2, v2_to_v3)
    back = load_capture(p)
    assert calls == [1, 2]
    assert back.schema_version == 3
    assert back.notes[-2:] == ["migrated 1->2", "migrated 2->3"]


def test_missing_migration_step_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "old.json"
    save_capture(dataclasses.replace(sample(), schema_version=1), p)
    monkeypatch.delitem(cap.MIGRATIONS, 1)
    with pytest.raises(CaptureFormatError, match="no migration from schema_version 1 to 2"):
        load_capture(p)


def test_v1_probe_kinds_migrate_to_the_differ_vocabulary(testdata: Path) -> None:
    """v1 captures from before the restructure still load: ``syscalls`` -> ``syscall``."""
    raw = json.loads((testdata / "diff" / "absent.old.json").read_text())
    assert raw["schema_version"] == 1 and raw["probes"][0]["kind"] == "syscalls"
    back = load_capture(testdata / "diff" / "absent.old.json")
    assert back.schema_version == cap.SCHEMA_VERSION == 7
    assert all(r.maps == {} for r in back.runs)
    assert back.kernel.headers is None and back.kernel.tainted is None
    assert back.kernel.out_of_tree_modules is None
    assert all(r.timed_out == [False] * len(r.exit_codes) for r in back.runs)
    assert all(r.per_iteration is None for r in back.runs)
    assert all(r.origins == {} and r.origin_stacks == {} and r.fn_syscalls == {} for r in back.runs)
    assert back.probes[0].kind == "syscall"
    assert {p.kind for p in back.probes} <= set(cap.PROBE_KINDS)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.pop("kernel"), "kernel: missing"),
        (lambda d: d["runs"][0].update(iterations=0), "runs[0].iterations"),
        (lambda d: d["runs"][0]["syscalls"]["openat"].update(x=1), "expected an integer key"),
        (lambda d: d["probes"][0].update(status="maybe"), "unknown probe status"),
        (lambda d: d.update(format="other"), "not a regress capture"),
        (
            lambda d: d["runs"][0].update(per_iteration={"syscall": {"openat": {"0": [1]}}}),
            "values for",
        ),
        (
            lambda d: d["runs"][0].update(
                per_iteration={"syscall": {"openat": {"0": [0] * d["runs"][0]["iterations"]}}}
            ),
            "per-iteration counts add up to 0",
        ),
        (lambda d: d["runs"][0].update(per_iteration={"bogus": {}}), "unknown kind"),
        (lambda d: d["runs"][0].update(origins={"openat": {"13": 1}}), "<errno>@<function>"),
        (lambda d: d["runs"][0].update(origins={"openat": {"0@f": 1}}), "<errno>@<function>"),
        (lambda d: d["runs"][0].update(origin_stacks={"openat:13@f": "f"}), "list of function"),
        (lambda d: d["runs"][0].update(fn_syscalls={"f": {"openat": -1}}), "fn_syscalls.f"),
    ],
)
def test_strict_loading(tmp_path: Path, mutate: Any, fragment: str) -> None:
    doc = sample().to_dict()
    mutate(doc)
    with pytest.raises(CaptureFormatError) as exc:
        load_capture(_write(tmp_path, doc))
    assert fragment in exc.value.one_line()


def test_truncated_files(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text('{"format": "regress-capture", "schema_')
    with pytest.raises(CaptureFormatError, match="not JSON"):
        load_capture(p)
    save_capture(sample(), tmp_path / "c.json.gz")
    raw = (tmp_path / "c.json.gz").read_bytes()
    (tmp_path / "t.json.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CaptureFormatError, match="truncated or corrupt gzip"):
        load_capture(tmp_path / "t.json.gz")


def test_atomic_write_keeps_finished_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash while saving run 2 leaves the file with run 1, never a torn file."""
    p = tmp_path / "c.json"
    c = sample(runs=1, requested=3)
    save_capture(c, p)
    c.runs.append(sample().runs[1])

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(InputError, match="No space left on device"):
        save_capture(c, p)
    monkeypatch.undo()
    back = load_capture(p)
    assert len(back.runs) == 1 and not back.complete
    assert [x.name for x in tmp_path.iterdir()] == ["c.json"]  # no temp file left behind


def test_v5_errno_origins_round_trip(tmp_path: Path) -> None:
    """Origins, their call paths and syscalls per function survive save and load, and
    count as keys of the run (so per-iteration series must add up to them too)."""
    c = sample()
    run = dataclasses.replace(
        c.runs[0],
        origins={"openat": {"13@bpf_lsm_file_open": 3, "2@?": 1}},
        origin_stacks={"openat:13@bpf_lsm_file_open": ["security_file_open", "do_dentry_open"]},
        fn_syscalls={"bpf_lsm_file_open": {"openat": 40, "-": 1}},
    )
    c = dataclasses.replace(c, runs=[run, *c.runs[1:]])
    path = tmp_path / "c.json"
    save_capture(c, path)
    back = load_capture(path).runs[0]
    assert back.origins == run.origins and back.origin_stacks == run.origin_stacks
    assert back.fn_syscalls == run.fn_syscalls
    assert back.key_totals()[("origin", "openat", "13@bpf_lsm_file_open")] == 3


def test_v6_headers_taint_and_out_of_tree_modules_round_trip(tmp_path: Path) -> None:
    """Which headers the tracer was compiled against and the kernel's taint are kept, and a
    kernel traced with another kernel's headers says so."""
    c = sample()
    kernel = dataclasses.replace(
        c.kernel,
        release="6.1.0-48-cloud-amd64",
        headers="linux-headers-6.1.0-47-cloud-amd64",
        tainted=12288,
        out_of_tree_modules=["regress_fault"],
    )
    path = tmp_path / "c.json"
    save_capture(dataclasses.replace(c, kernel=kernel), path)
    back = load_capture(path).kernel
    assert back == kernel and back.foreign_headers
    assert not dataclasses.replace(
        back, headers="linux-headers-6.1.0-48-cloud-amd64"
    ).foreign_headers
    raw = json.loads(path.read_text())
    raw["kernel"]["out_of_tree_modules"] = "regress_fault"
    path.write_text(json.dumps(raw))
    with pytest.raises(CaptureFormatError, match=r"kernel\.out_of_tree_modules: expected a list"):
        load_capture(path)


def test_out_of_tree_modules_from_proc_modules() -> None:
    from regress.guest.environment import out_of_tree_modules

    text = (
        "regress_fault 16384 0 - Live 0xffffffffc0a00000 (OE)\n"
        "virtio_blk 20480 2 - Live 0xffffffffc0010000\n"
        "vendor_thing 8192 0 - Live 0x0 (O)\n"
        "ext4 999 1 - Live 0x0\n"
    )
    assert out_of_tree_modules(text) == ["regress_fault", "vendor_thing"]

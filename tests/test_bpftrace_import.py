"""bpftrace -f json count maps as one-run captures."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from regress.diff.differ import diff_captures, load_side
from regress.diff.imports import load_bpftrace, looks_like_bpftrace
from regress.errors import CaptureFormatError

DIFF = Path(__file__).resolve().parent / "testdata" / "diff"


def write_lines(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_real_bpftrace_017_output(testdata: Path) -> None:
    # recorded with bpftrace v0.17.0 on this host (see bpftrace_import docstring)
    cap = load_bpftrace(DIFF / "bt_ps_e.json")
    assert len(cap.runs) == 1 and cap.runs[0].iterations == 1
    sc = cap.runs[0].syscalls
    assert sc["openat"]["0"] == 852 and sc["openat"]["2"] == 408  # "257,0", "257,2"
    assert sc["read"]["0"] == 915  # "0,0"
    assert cap.machine.backend == "import"


def test_sniffing_and_gzip(tmp_path: Path) -> None:
    raw = (DIFF / "bt_ps_e.json").read_bytes()
    gz = tmp_path / "bt.json.gz"
    gz.write_bytes(gzip.compress(raw))
    assert looks_like_bpftrace(gz)
    assert not looks_like_bpftrace(DIFF / "mwu.old.json")
    assert load_side(gz).runs[0].syscalls == load_side(DIFF / "bt_ps_e.json").runs[0].syscalls


def test_probe_keys_aliases_and_last_print_wins(tmp_path: Path) -> None:
    p = write_lines(
        tmp_path / "o.json",
        [
            {"type": "attached_probes", "data": {"probes": 2}},
            {"type": "map", "data": {"@o": {"tracepoint:syscalls:sys_exit_openat,2": 1}}},
            {
                "type": "map",
                "data": {
                    "@o": {
                        "tracepoint:syscalls:sys_exit_openat,2": 7,
                        "tracepoint:syscalls:sys_exit_newfstat,0": 3,
                    }
                },
            },
            {"type": "map", "data": {"@total": 10}},  # scalar maps are ignored
            {"type": "printf", "data": "hello"},
        ],
    )
    sc = load_bpftrace(p).runs[0].syscalls
    assert sc == {"fstat": {"0": 3}, "openat": {"2": 7}}


def test_same_shape_files_diff_directly(tmp_path: Path) -> None:
    old = write_lines(
        tmp_path / "a.json", [{"type": "map", "data": {"@": {"62,3": 0, "0,0": 500}}}]
    )
    new = write_lines(
        tmp_path / "b.json", [{"type": "map", "data": {"@": {"62,3": 80, "0,0": 500}}}]
    )
    res = diff_captures(load_side(old), load_side(new))
    assert res.divergences[0].key == "syscall:kill:ESRCH"
    assert res.divergences[0].significant and res.divergences[0].regression


@pytest.mark.parametrize(
    ("records", "needle"),
    [
        ([{"type": "map", "data": {"@": {"257": 5}}}], "has one field"),
        ([{"type": "map", "data": {"@": {"257,-2": 5}}}], "second field is not an errno"),
        ([{"type": "map", "data": {"@": {"comm,0": 5}}}], "first field is not a syscall id"),
        ([{"type": "map", "data": {"@": {"0,0": "x"}}}], "is not a count"),
        ([{"type": "map", "data": {"@s": 10}}], "is a scalar"),
        ([{"type": "hist", "data": {"@h": []}}], "has no map"),
        (
            [
                {"type": "map", "data": {"@a": {"0,0": 1}}},
                {"type": "map", "data": {"@b": {"0,0": 1}}},
            ],
            "several count maps (@a, @b)",
        ),
    ],
)
def test_unsupported_shapes_one_line(
    tmp_path: Path, records: list[dict[str, Any]], needle: str
) -> None:
    p = write_lines(tmp_path / "x.json", records)
    with pytest.raises(CaptureFormatError) as exc:
        load_bpftrace(p)
    assert needle in exc.value.one_line()
    assert "\n" not in exc.value.one_line()


def test_garbage_after_first_record(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text('{"type": "attached_probes", "data": {"probes": 1}}\nAttaching 1 probe...\n')
    with pytest.raises(CaptureFormatError, match="line 2: not a bpftrace JSON record"):
        load_side(p)


def test_probe_names_are_bounded(tmp_path: Path) -> None:
    """A syscall name from a probe key is at most 64 characters: every row of a diff is
    padded to the widest key, so an unbounded name would make memory grow with it."""
    long = "tracepoint:syscalls:sys_exit_" + "x" * 65
    p = write_lines(tmp_path / "x.json", [{"type": "map", "data": {"@": {f"{long},0": 1}}}])
    with pytest.raises(CaptureFormatError) as exc:
        load_bpftrace(p)
    assert "first field is not a syscall id" in exc.value.one_line()
    assert len(exc.value.one_line()) < 400

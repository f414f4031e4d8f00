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
            {"type": "map", "data": {"@total": 10}},  # a scalar map is one entry
            {"type": "printf", "data": "hello"},
        ],
    )
    run = load_bpftrace(p).runs[0]
    assert run.syscalls == {"fstat": {"0": 3}, "openat": {"2": 7}}
    assert run.maps == {"@total": 10}


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
        ([{"type": "map", "data": {"@": {"0,0": "x"}}}], "is not a count"),
        ([{"type": "map", "data": {"@h": {"a": {"min": 1}}}}], "is not a count"),
        ([{"type": "hist", "data": {"@h": []}}], "has no map"),
        (
            [
                {"type": "map", "data": {"@a": {"0,0": 1}}},
                {"type": "map", "data": {"@b": {"0,0": 1}}},
            ],
            "several [syscall, errno] maps (@a, @b)",
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


def test_any_count_map_is_read_as_map_rows(tmp_path: Path) -> None:
    """@[comm], @[id, ret], scalar @x, @[kstack]: one ``map`` row per entry."""
    stack = "\n    perf_syscall_enter+397\n    syscall_trace_enter+0x1f0\n    do_syscall_64+506\n"
    p = write_lines(
        tmp_path / "x.json",
        [
            {"type": "map", "data": {"@": {"257": 5, "257,-2": 1, "comm,0": 2}}},
            {"type": "map", "data": {"@s": 10}},
            {"type": "map", "data": {"@st": {stack: 4, stack.replace("+397", "+401"): 1}}},
        ],
    )
    run = load_bpftrace(p).runs[0]
    assert run.syscalls == {}
    assert run.maps == {
        "@[257]": 5,
        "@[257,-2]": 1,
        "@[comm,0]": 2,
        "@s": 10,
        # folded innermost first, offsets dropped: the same path on two builds is one key
        "@st[perf_syscall_enter;syscall_trace_enter;do_syscall_64]": 5,
    }


def test_several_runs_per_side_from_a_directory_real_output() -> None:
    """Real bpftrace 0.17 output on this host (tests/testdata/bpftrace/README): 5 runs per
    side of ``ls /`` vs ``ls / /nonexistent-x``, four maps of three key shapes."""
    data = Path(__file__).resolve().parent / "testdata" / "bpftrace"
    old, new = load_side(data / "old"), load_side(data / "new")
    assert len(old.runs) == len(new.runs) == 5
    assert any(k.startswith("@stacks[") and "+" not in k for k in old.runs[0].maps)
    res = diff_captures(old, new)
    top = res.significant[0]
    assert top.key == "syscall:statx:ENOENT" and top.cls == "appeared" and top.regression
    appeared = {d.key for d in res.significant if d.cls == "appeared"}
    assert "map:@files[/usr/share/locale/C/LC_MESSAGES/libc.mo]" in appeared
    assert res.aa_false_positives is None  # (the A/A split is the pipeline's, not the differ's)


def test_the_commands_own_output_is_skipped(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text(
        "bin\nboot\n"
        + json.dumps({"type": "map", "data": {"@": {"0,0": 3}}})
        + "\nAttaching 1 probe...\n"
    )
    assert looks_like_bpftrace(p)
    cap = load_side(p)
    assert cap.runs[0].syscalls == {"read": {"0": 3}}
    assert any("3 line(s) that were not JSON records" in n for n in cap.notes)


def test_garbage_json_line_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text('{"type": "attached_probes", "data": {"probes": 1}}\n{"type": nope}\n')
    with pytest.raises(CaptureFormatError, match="line 2: not a bpftrace JSON record"):
        load_side(p)


def test_runs_with_different_maps_are_refused(tmp_path: Path) -> None:
    (tmp_path / "side").mkdir()
    write_lines(tmp_path / "side" / "1.json", [{"type": "map", "data": {"@a": {"x": 1}}}])
    write_lines(tmp_path / "side" / "2.json", [{"type": "map", "data": {"@b": {"x": 1}}}])
    with pytest.raises(CaptureFormatError, match="differ from the first run's"):
        load_side(tmp_path / "side")


def test_entry_names_are_bounded(tmp_path: Path) -> None:
    """Every row of a diff is padded to the widest key: an entry name is at most 200
    characters, and two long keys that differ stay two rows."""
    long = "tracepoint:syscalls:sys_exit_" + "x" * 300
    p = write_lines(
        tmp_path / "x.json", [{"type": "map", "data": {"@": {f"{long},0": 1, f"{long},1": 2}}}]
    )
    maps = load_bpftrace(p).runs[0].maps
    assert len(maps) == 2 and all(len(k) <= 200 for k in maps)

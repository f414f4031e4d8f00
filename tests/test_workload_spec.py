"""Workload spec parsing: strict validation naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from regress.errors import WorkloadError
from regress.model.workload import builtin_names, load_spec, resolve_workload, spec_from_dict

WL = Path(__file__).resolve().parent / "testdata" / "workloads"


def test_good_spec_reads_every_key() -> None:
    spec = load_spec(WL / "good.toml")
    assert spec.name == "good"
    assert spec.command == ("/bin/echo", "hi")
    assert spec.argv() == ["/bin/echo", "hi"]
    assert spec.iterations == 3 and spec.timeout_s == 5.0
    assert spec.files == {"helper.sh": b"#!/bin/sh\necho helper\n"}
    assert spec.env == {"FOO": "bar"}
    assert spec.tracepoints == ("sched:*",)
    assert spec.functions == ("vfs_read", "proc_pid_*")
    # The hash covers behaviour, including aux file contents.
    assert spec.spec_hash() == load_spec(WL / "good.toml").spec_hash()
    assert spec.with_iterations(4).spec_hash() != spec.spec_hash()


def test_shell_command_goes_through_sh() -> None:
    spec = spec_from_dict({"name": "x", "command": "echo a | cat"}, source="s", base_dir=None)
    assert spec.argv() == ["/bin/sh", "-c", "echo a | cat"]
    assert spec.iterations == 50


def test_unknown_key_names_file_and_key() -> None:
    with pytest.raises(WorkloadError) as exc:
        load_spec(WL / "unknown-key.toml")
    line = exc.value.one_line()
    assert "unknown-key.toml" in line and "'iteratons'" in line and "\n" not in line


def test_malformed_toml_names_file() -> None:
    with pytest.raises(WorkloadError, match=r"malformed\.toml: malformed TOML"):
        load_spec(WL / "malformed.toml")


def test_bad_type_names_key() -> None:
    with pytest.raises(WorkloadError, match=r"bad-type\.toml: iterations: expected an integer"):
        load_spec(WL / "bad-type.toml")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"command": "true"}, "missing required key 'name'"),
        ({"name": "x"}, "missing required key 'command'"),
        ({"name": "x", "command": ""}, "command: is empty"),
        ({"name": "x", "command": [1]}, "command: expected"),
        ({"name": "x", "command": "true", "iterations": 0}, "iterations"),
        ({"name": "x", "command": "true", "iterations": True}, "iterations"),
        ({"name": "x", "command": "true", "timeout_s": -1}, "timeout_s"),
        ({"name": "x", "command": "true", "env": {"REGRESS_X": "1"}}, "reserved"),
        ({"name": "x", "command": "true", "env": {"A": 1}}, "env.A"),
        ({"name": "x", "command": "true", "tracepoints": ["sched"]}, "tracepoints: invalid"),
        ({"name": "x", "command": "true", "functions": ["a;b"]}, "functions: invalid"),
        ({"name": "x", "command": "true", "files": ["../etc/passwd"]}, "files: invalid"),
        ({"name": "x\x01", "command": "true"}, "control characters"),
    ],
)
def test_bad_specs(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(WorkloadError) as exc:
        spec_from_dict(data, source="spec.toml", base_dir=None)
    assert fragment in exc.value.one_line()
    assert exc.value.one_line().startswith("spec.toml")


def test_builtins_all_load() -> None:
    names = builtin_names()
    assert {"ps-loop", "proc-scan", "fork-exec", "file-io", "tcp-loopback"} <= set(names)
    for name in names:
        assert resolve_workload(name).name == name


def test_unknown_workload_lists_builtins() -> None:
    with pytest.raises(WorkloadError) as exc:
        resolve_workload("no-such-workload")
    assert "unknown workload 'no-such-workload'" in exc.value.one_line()
    assert "ps-loop" in exc.value.one_line()


def test_path_workload(tmp_path: Path) -> None:
    (tmp_path / "w.toml").write_text('name = "w"\ncommand = "true"\n')
    assert resolve_workload(str(tmp_path / "w.toml")).name == "w"
    with pytest.raises(WorkloadError, match="no such workload file"):
        resolve_workload(str(tmp_path / "missing.toml"))


def test_function_returns_is_opt_in_and_keeps_old_hashes() -> None:
    """``function_returns`` defaults off and appears in the spec (and its hash) only when
    on, so specs and captures from before it existed still compare; on, it is part of the
    instrument (a different hash) and travels to the guest."""
    from regress.guest.agent import spec_from_job, spec_to_job

    plain = spec_from_dict({"name": "t", "command": "true"}, source="t.toml", base_dir=None)
    on = spec_from_dict(
        {"name": "t", "command": "true", "function_returns": True}, source="t", base_dir=None
    )
    assert not plain.function_returns and "function_returns" not in plain.to_dict()
    assert on.function_returns and on.to_dict()["function_returns"] is True
    assert on.spec_hash() != plain.spec_hash() == plain.with_iterations(50).spec_hash()
    assert plain.with_function_returns().spec_hash() == on.spec_hash()
    assert spec_from_job(spec_to_job(on)).spec_hash() == on.spec_hash()
    with pytest.raises(WorkloadError, match="function_returns: expected true or false"):
        spec_from_dict(
            {"name": "t", "command": "true", "function_returns": "yes"}, source="t", base_dir=None
        )

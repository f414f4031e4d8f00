"""Every ``--json`` output validates against the schema shipped in docs/schemas/ (real
outputs: the differ on its fixtures, show on a real capture, workloads, the kernel
catalogue from apt, a bisect of replayed real captures)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "docs" / "schemas"
DATA = Path(__file__).parent / "testdata"


def _validate(name: str, doc: Any) -> None:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)


def _cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    """The CLI's ``--json -`` output, in-process (the same code path as the binary)."""
    from regress.cli.main import run

    capsys.readouterr()
    code = run([*argv, "--json", "-"])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    return json.loads(captured.out)


def test_schemas_are_valid_and_reject_drift(capsys: pytest.CaptureFixture[str]) -> None:
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))
    old, new = DATA / "report/ps-loop-old.json", DATA / "report/ps-loop-new.json"
    doc = _cli_json(capsys, "diff", str(old), str(new))
    doc["divergences"][0]["surprise"] = 1  # a field the schema does not document
    with pytest.raises(jsonschema.ValidationError):
        _validate("regress-diff", doc)


@pytest.mark.parametrize(
    "pair",
    [
        ("report/ps-loop-old.json", "report/ps-loop-new.json"),
        ("bisect/6.1.0-51-cloud-amd64.json.gz", "bisect/6.1.0-52-cloud-amd64.json.gz"),
        ("diff/liveness.old.json", "diff/liveness.new.json"),
        ("diff/bt_ps_aux.json", "diff/bt_ps_e.json"),
        ("bpftrace/old", "bpftrace/new"),  # map rows, several runs per side
    ],
)
def test_diff_json_validates(pair: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    _validate("regress-diff", _cli_json(capsys, "diff", *(str(DATA / p) for p in pair)))


def test_diff_json_with_suspects_and_culprits_validates() -> None:
    from regress.diff.differ import diff_captures
    from regress.gate.suspects import rank
    from regress.model.capture import load_capture
    from regress.model.result import Suspects
    from regress.report.json import to_json
    from regress.vm import changelog

    old = load_capture(DATA / "report/ps-loop-old.json")
    new = load_capture(DATA / "report/ps-loop-new.json")
    result = diff_captures(old, new)
    assert result.culprits
    changes = changelog.changes_between(
        (DATA / "debian/changelog").read_text(), "6.1.180-1", "6.1.187-1"
    )
    top, matched, terms = rank(changes, result)
    from dataclasses import replace

    result = replace(
        result,
        suspects=Suspects("6.1.180-1", "6.1.187-1", "6.1.180", "6.1.187", len(changes), matched,
                          terms, tuple(top), "fixture changelog"),
    )  # fmt: skip
    _validate("regress-diff", json.loads(to_json(result)))


def test_show_workloads_kernels_json_validate(capsys: pytest.CaptureFixture[str]) -> None:
    show = _cli_json(capsys, "show", str(DATA / "bisect/6.1.0-52-cloud-amd64.json.gz"))
    _validate("regress-show", show)
    workloads = _cli_json(capsys, "workloads")
    _validate("regress-workloads", workloads)
    assert {"ps-loop", "new-syscalls"} <= {w["name"] for w in workloads["workloads"]}
    if shutil.which("apt-cache"):
        kernels = _cli_json(capsys, "kernel", "list")
        _validate("regress-kernels", kernels)
        assert {"6.1", "6.12"} <= {k["line"] for k in kernels["available"]}


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="needs apt metadata")
def test_bisect_json_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_bisect import Replay, replayed_bisect

    from regress.vm import backend as vm_backend

    monkeypatch.setitem(vm_backend._REGISTRY, "replay", Replay)
    outcome = replayed_bisect(tmp_path)
    _validate("regress-bisect", json.loads(json.dumps(outcome.to_dict())))

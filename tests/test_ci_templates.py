"""The CI templates call ``regress ci``/``selftest`` with options that exist, and upload JUnit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from regress.cli.app import app
from regress.cli.main import run as _register  # noqa: F401  (imports every command module)

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = [
    REPO / ".github" / "workflows" / "kernel-bump.yml",
    REPO / "ci-templates" / "gitlab-ci.yml",
]


def _options(command: str) -> set[str]:
    group = typer.main.get_command(app)
    cmd = group.commands[command]  # type: ignore[attr-defined]
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}


def _invocations(text: str) -> list[tuple[str, list[str]]]:
    """(command, flags) of every ``regress ci|selftest`` call, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    joined = re.sub(r"\n\s{8,}(--)", r" \1", joined)  # YAML folded continuation lines
    return [
        (m.group(1), re.findall(r"(?<!\w)(--[a-z][a-z-]*)", m.group(2)))
        for m in re.finditer(r"bin/regress (ci|selftest)\b([^\n]*)", joined)
    ]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_uses_real_options_and_uploads_junit(path: Path) -> None:
    text = path.read_text()
    calls = _invocations(text)
    assert {c for c, _ in calls} == {"ci", "selftest"}
    for command, flags in calls:
        unknown = set(flags) - _options(command)
        assert not unknown, f"{path.name}: regress {command} has no {sorted(unknown)}"
    ci_flags = next(f for c, f in calls if c == "ci")
    assert {"--old", "--new", "--workloads", "--fail-on"} <= set(ci_flags)
    assert "scripts/setup.sh" in text
    assert "reports/ci/junit.xml" in text and "reports/" in text
    assert "\t" not in text  # YAML forbids tabs for indentation


SHARDED = [
    REPO / ".github" / "workflows" / "kernel-bump-sharded.yml",
    REPO / "ci-templates" / "gitlab-ci-sharded.yml",
]


def _calls(text: str, command: str) -> list[list[str]]:
    joined = re.sub(r"\\\n\s*", " ", text)
    joined = re.sub(r"\n\s{8,}(--|-o|reports/)", r" \1", joined)  # YAML folded lines
    return [
        re.findall(r"(?<!\w)(--[a-z][a-z-]*|-o)(?=\s)", m.group(1))
        for m in re.finditer(rf"bin/regress {command}\b([^\n]*)", joined)
    ]


@pytest.mark.parametrize("path", SHARDED, ids=lambda p: p.name)
def test_sharded_templates_parse_and_use_real_options(path: Path) -> None:
    """The matrix runs every shard 1..N of `regress ci --shard`, and one later job merges
    exactly those N outputs; every flag exists in the CLI; JUnit and KCIDB come out."""
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(path.read_text())
    text = path.read_text()
    assert "\t" not in text
    shards = int(re.search(r'SHARDS: "(\d+)"', text).group(1))  # type: ignore[union-attr]
    if path.parent.name == "workflows":
        jobs = doc["jobs"]
        assert jobs["shard"]["strategy"]["matrix"]["shard"] == list(range(1, shards + 1))
        assert jobs["merge"]["needs"] == "shard"
        steps = " ".join(str(s) for s in jobs["merge"]["steps"])
        assert "download-artifact" in steps and "reports/ci/junit.xml" in steps
    else:
        assert doc["stages"] == ["shard", "merge"]
        matrix = doc["regress-shard"]["parallel"]["matrix"][0]["SHARD"]
        assert matrix == [str(i) for i in range(1, shards + 1)]
        assert doc["regress-merge"]["needs"] == ["regress-shard"]
        assert doc["regress-merge"]["artifacts"]["reports"]["junit"] == "reports/ci/junit.xml"
    for command in ("ci", "merge"):
        calls = _calls(text, command)
        assert len(calls) == 1, (command, calls)
        unknown = set(calls[0]) - _options(command)
        assert not unknown, f"{path.name}: regress {command} has no {sorted(unknown)}"
    assert "--shard" in _calls(text, "ci")[0] and "--kcidb" in _calls(text, "merge")[0]
    merged = re.findall(r"reports/shard-(\d)", text.split("regress merge", 1)[1].split("\n-")[0])
    assert sorted(set(map(int, merged))) == list(range(1, shards + 1))
    assert "scripts/setup.sh" in text

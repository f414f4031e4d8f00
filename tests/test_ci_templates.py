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

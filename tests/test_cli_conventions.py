"""CLI conventions a perf/bpftrace user expects: --version, -h, completion, an example in
every command's help, flags that do not look like they take a value."""

from __future__ import annotations

from pathlib import Path

import typer.main
from typer.testing import CliRunner

from regress import __version__
from regress.cli.main import app

runner = CliRunner()


def _commands() -> list[list[str]]:
    found: list[list[str]] = []

    def walk(cmd: object, prefix: list[str]) -> None:
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            if hasattr(sub, "commands"):
                walk(sub, [*prefix, name])
            else:
                found.append([*prefix, name])

    walk(typer.main.get_command(app), [])
    return found


def test_version_and_short_help() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"regress {__version__}"
    res = runner.invoke(app, ["-h"])
    assert res.exit_code == 0 and "--install-completion" in res.stdout


def test_every_command_has_an_example_and_flags_take_no_value() -> None:
    commands = _commands()
    assert len(commands) >= 15, commands
    for argv in commands:
        res = runner.invoke(app, [*argv, "-h"], env={"COLUMNS": "100"})
        assert res.exit_code == 0, (argv, res.stdout)
        assert "Example: regress " in res.stdout, argv
        assert "<bool>" not in res.stdout, argv


SHARED = [
    "-o/--output", "--json", "--html", "--text", "-w/--workload", "--functions", "--tracepoints",
    "--runs", "--iterations", "--old/--new", "--alpha", "--fail-on", "--force", "--dry-run",
    "--accel", "--cpus",
]  # fmt: skip


def options_table() -> str:
    """Every command x every shared option, from the CLI itself."""

    def names(argv: list[str]) -> set[str]:
        cmd: object = typer.main.get_command(app)
        for part in argv:
            cmd = cmd.commands[part]  # type: ignore[attr-defined]
        found: set[str] = set()
        for p in cmd.params:  # type: ignore[attr-defined]
            found.update(getattr(p, "opts", []))
            found.update(getattr(p, "secondary_opts", []))
        return found

    rows = ["| command | " + " | ".join(f"`{s}`" for s in SHARED) + " |"]
    rows.append("|---|" + "---|" * len(SHARED))
    for argv in _commands():
        have = names(argv)
        marks = ["✓" if all(x in have for x in s.split("/")) else "" for s in SHARED]
        rows.append(f"| `{' '.join(argv)}` | " + " | ".join(marks) + " |")
    return "\n".join(rows)


def test_readme_options_table_is_the_cli() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("<!-- options-table -->\n", 1)[1].split("\n<!-- /options-table -->")[0]
    assert table == options_table(), (
        "README options table is stale; regenerate:\n" + options_table()
    )


def test_help_reads_at_80_columns() -> None:
    """No line of any command's help is wider than 80 columns, and no default is cut."""
    for argv in _commands():
        res = runner.invoke(app, [*argv, "-h"], env={"COLUMNS": "80"}, terminal_width=80)
        lines = res.stdout.splitlines()
        assert all(len(x) <= 80 for x in lines), (argv, [x for x in lines if len(x) > 80])
        assert "…" not in res.stdout, argv

"""The package's shape is a tested property, not a convention (docs/ARCHITECTURE.md).

* imports point one way: cli -> gate -> vm | diff | report -> model; guest imports only
  model and errors (and bcc);
* the guest package imports with numpy, scipy, typer, jinja2 and rich made unimportable;
* every comparing command diffs and renders each workload exactly once (a spy on the
  real pipeline, with only the VM stage replaced by fixture captures);
* ``show`` and ``diff`` name every errno the same way, with the kernel's names;
* ``run`` and ``ci`` ask the VM stage for the same machine shape, so their captures compare.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import regress.gate.pipeline as pipeline
import regress.report.html as report_html
import regress.report.text as report_text
from regress.cli.commands.capture import render_summary
from regress.cli.main import run as cli_run
from regress.diff.differ import diff_captures
from regress.errors import VMError
from regress.guest.discover import Discovery
from regress.model.capture import load_capture, save_capture
from regress.model.names import errno_name
from regress.report.json import to_json
from regress.report.table import render_table
from regress.vm import backend as vm_backend
from regress.vm.backend import CapturePair, RunOptions

PKG = Path(pipeline.__file__).resolve().parents[1]
CI_DATA = Path(__file__).resolve().parent / "testdata" / "ci"

# stage -> the stages it may import (besides itself, errors and the package root)
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "guest": {"model"},
    "diff": {"model"},
    "report": {"model"},
    "vm": {"model", "guest"},  # the VM stage ships the guest and speaks its job protocol
    "gate": {"model", "vm", "diff", "report", "guest"},  # guest: the selftest's FaultSpec
    "cli": {"model", "vm", "diff", "report", "gate", "guest"},
}


def _stage_imports(path: Path) -> set[str]:
    """The regress stages a module imports (``regress.<stage>...``), at any depth."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "regress" and len(parts) > 1 and parts[1] in ALLOWED:
                found.add(parts[1])
    return found


def test_every_module_belongs_to_a_stage() -> None:
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert top == ["__init__.py", "errors.py"], top
    stages = sorted(p.name for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert stages == sorted(ALLOWED), stages


@pytest.mark.parametrize("stage", sorted(ALLOWED))
def test_imports_point_one_way(stage: str) -> None:
    bad = []
    for path in sorted((PKG / stage).rglob("*.py")):
        extra = _stage_imports(path) - ALLOWED[stage] - {stage}
        if extra:
            bad.append(f"{path.relative_to(PKG)} imports {sorted(extra)}")
    assert not bad, bad


BLOCKER = """
import importlib.abc, sys
BLOCKED = {"numpy", "scipy", "typer", "jinja2", "rich", "markupsafe", "click"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is host-only")
        return None
sys.meta_path.insert(0, Block())
import pkgutil, importlib, regress.guest, regress.model
mods = []
for pkg in (regress.model, regress.guest):
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(info.name)
        mods.append(info.name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(len(mods), loaded)
"""


def test_guest_imports_without_host_libraries() -> None:
    """What ships into the VM runs on Debian's python3 + bcc alone."""
    p = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    count, loaded = p.stdout.split(" ", 1)
    assert int(count) >= 12 and loaded.strip() == "[]", p.stdout


# --------------------------------------------------------------------------- one pipeline


class FixtureVM:
    """The VM stage only: copies a real QEMU capture pair (testdata/ci) for every request."""

    name = "fixture-arch"

    def __init__(self) -> None:
        self.calls: list[RunOptions] = []
        vm_backend.register(self.name, lambda: self)

    def dry_run_lines(self, opts: RunOptions) -> list[str]:
        return []

    def capture_pair(self, opts: RunOptions, progress: Any, cancel: Any = None) -> CapturePair:
        self.calls.append(opts)
        out = vm_backend.out_dir_for(opts)
        out.mkdir(parents=True, exist_ok=True)
        caps = {}
        for side, name in (("old", "selftest-control"), ("new", "selftest-faulted")):
            caps[side] = out / f"{side}.json.gz"
            shutil.copyfile(CI_DATA / f"{name}.json.gz", caps[side])
        return CapturePair(out_dir=out, captures=caps)


class NarrowingFixtureVM(FixtureVM):
    """FixtureVM plus a function discovery that reports a fixed list."""

    name = "fixture-narrow"

    def __init__(self) -> None:
        super().__init__()
        self.discover_calls: list[tuple[list[str], int]] = []

    def discover_pair(
        self, opts: RunOptions, syscalls: list[str], max_functions: int, progress: Any
    ) -> dict[str, Discovery]:
        self.discover_calls.append((list(syscalls), max_functions))
        found = Discovery({syscalls[0]: ["bpf_lsm_file_open", "security_file_open"]}, 2)
        return {"old": found, "new": found}


class Spy:
    """Counts calls of a function while passing them through."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.real(*args, **kwargs)


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> dict[str, Spy]:
    s = {
        "diff": Spy(pipeline.diff_captures),
        "html": Spy(report_html.render_html),
        "text": Spy(report_text.render_text),
    }
    monkeypatch.setattr(pipeline, "diff_captures", s["diff"])
    monkeypatch.setattr(report_html, "render_html", s["html"])
    monkeypatch.setattr(report_text, "render_text", s["text"])
    return s


def test_run_diffs_and_renders_once(spies: dict[str, Spy], tmp_path: Path) -> None:
    vm = FixtureVM()
    argv = ["run", "--backend", vm.name, "--runs", "4", "--no-narrow"]
    rc = cli_run([*argv, "-o", str(tmp_path / "r")])
    assert rc == 0
    assert len(vm.calls) == 1
    assert {k: s.calls for k, s in spies.items()} == {"diff": 1, "html": 1, "text": 1}
    assert (tmp_path / "r" / "report.html").is_file() and (tmp_path / "r" / "report.txt").is_file()


def test_run_narrows_a_regression_once_and_renders_once(
    spies: dict[str, Spy], tmp_path: Path
) -> None:
    """A regressed comparison starts one narrowing pass: discovery under the syscall whose
    errors regressed, then one more capture pair with the discovered functions' returns
    traced and at most NARROW_RUNS runs; the reports are still written once, with it."""
    from regress.gate.narrow import NARROW_RUNS

    vm = NarrowingFixtureVM()
    rc = cli_run(["run", "--backend", vm.name, "--runs", "4", "-o", str(tmp_path / "r")])
    assert rc == 0
    assert vm.discover_calls and vm.discover_calls[0][0][0] == "openat"
    first, second = vm.calls
    assert not first.function_returns and second.function_returns
    assert {"bpf_lsm_file_open", "security_file_open"} <= set(second.functions or [])
    assert second.runs == min(4, NARROW_RUNS) and second.out_dir == tmp_path / "r" / "narrow"
    assert {k: s.calls for k, s in spies.items()} == {"diff": 2, "html": 1, "text": 1}
    text = " ".join((tmp_path / "r" / "report.txt").read_text().split())
    assert (
        "Narrowing pass: looked under openat, getppid, write (openat: its errors regressed" in text
    )
    # nothing regressed: no pass (an A/A pair of the control capture)
    vm2 = NarrowingFixtureVM()
    vm2.name = "fixture-narrow-aa"
    vm_backend.register(vm2.name, lambda: vm2)
    real = vm2.capture_pair

    def same_twice(opts: RunOptions, progress: Any, cancel: Any = None) -> CapturePair:
        pair = real(opts, progress, cancel)
        shutil.copyfile(pair.captures["old"], pair.captures["new"])
        return pair

    vm2.capture_pair = same_twice  # type: ignore[method-assign]
    assert cli_run(["run", "--backend", vm2.name, "--runs", "4", "-o", str(tmp_path / "aa")]) == 0
    assert vm2.discover_calls == [] and len(vm2.calls) == 1


class FailingDiscoveryVM(FixtureVM):
    """FixtureVM whose function discovery fails as a guest failure does (VMError)."""

    name = "fixture-narrow-fails"

    def discover_pair(
        self, opts: RunOptions, syscalls: list[str], max_functions: int, progress: Any
    ) -> dict[str, Discovery]:
        raise VMError("function discovery on 6.1.0-56-cloud-amd64: the guest agent failed")


def test_a_failed_narrowing_pass_keeps_the_first_pass_report(tmp_path: Path) -> None:
    """The narrowing pass is extra evidence: when it fails, ``run`` still writes the first
    pass's reports (with a footnote naming the failure) and exits as the first pass does."""
    vm = FailingDiscoveryVM()
    out = tmp_path / "r"
    argv = ["run", "--backend", vm.name, "--runs", "4", "-o", str(out)]
    assert cli_run(argv) == 0  # as without narrowing: run reports, ci gates
    assert len(vm.calls) == 1
    text = " ".join((out / "report.txt").read_text().split())
    assert "the narrowing pass failed, the first pass's result stands: function discovery" in text
    assert "Narrowing pass: looked under" not in text
    html = (out / "report.html").read_text()
    assert "the narrowing pass failed" in html


def test_ci_diffs_and_renders_each_workload_once(spies: dict[str, Spy], tmp_path: Path) -> None:
    vm = FixtureVM()
    argv = ["ci", "--backend", vm.name, "-w", "ps-loop", "-w", "proc-scan", "--runs", "4"]
    argv.append("--no-narrow")
    rc = cli_run([*argv, "-o", str(tmp_path / "ci"), "--fail-on", "none"])
    assert rc == 0
    assert [c.workload for c in vm.calls] == ["ps-loop", "proc-scan"]
    assert {k: s.calls for k, s in spies.items()} == {"diff": 2, "html": 2, "text": 2}
    summary = json.loads((tmp_path / "ci" / "summary.json").read_text())
    assert [w["status"] for w in summary["workloads"]] == ["regression", "regression"]


def test_run_ci_and_selftest_ask_for_the_same_vm_shape(tmp_path: Path) -> None:
    """Same host, default options: the three commands request identical machines."""
    vm = FixtureVM()
    cli_run(["run", "--backend", vm.name, "--no-narrow", "-o", str(tmp_path / "r")])
    cli_run(["ci", "--backend", vm.name, "--no-narrow", "-o", str(tmp_path / "ci")])
    cli_run(["selftest", "--backend", vm.name, "-o", str(tmp_path / "st")])
    shapes = {(c.cpus, c.mem_mb, c.accel, tuple(c.append)) for c in vm.calls}
    assert len(vm.calls) == 3 and len(shapes) == 1, shapes
    assert vm.calls[0].cpus == vm_backend.default_cpus()
    # ...so a capture from `run` and one from `ci` diff without --force
    a = load_capture(tmp_path / "r" / "old.json.gz")
    b = load_capture(tmp_path / "ci" / "ps-loop" / "new.json.gz")
    assert diff_captures(a, b).forced == ()


# --------------------------------------------------------------------------- naming


KERNEL_NAMES = {
    35: "EDEADLK",
    95: "EOPNOTSUPP",
    11: "EAGAIN",
    4000: "E4000",  # in the errno range (<= 4095), unnamed
    512: "ERESTARTSYS",
    516: "ERESTART_RESTARTBLOCK",
    520: "E520",  # not a kernel errno
    524: "ENOTSUPP",
    529: "EIOCBQUEUED",
}


def test_show_and_diff_name_every_errno_alike(tmp_path: Path) -> None:
    cap = load_capture(CI_DATA / "selftest-control.json.gz")
    errnos = sorted({*KERNEL_NAMES, *range(512, 530)})
    for run in cap.runs:
        run.syscalls["ioctl"] = {str(e): 3 for e in errnos}
    path = tmp_path / "c.json"
    save_capture(cap, path)
    cap = load_capture(path)
    shown = "\n".join(render_summary(cap, top=500))
    result = diff_captures(cap, cap)
    table = render_table(result, show_all=True)
    doc = json.loads(to_json(result))
    subs = {d["sub"] for d in doc["divergences"] if d["kind"] == "syscall" and d["name"] == "ioctl"}
    for e in errnos:
        name = errno_name(e)
        assert name == KERNEL_NAMES.get(e, name)
        assert f"ioctl {name} " in shown, name
        assert f"syscall:ioctl:{name} " in table, name
        assert name in subs
    assert len(subs) == len(errnos)


def test_one_cache_rule_for_every_stage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Header trees (guest stage) and kernels/images (VM stage) honour the same variables."""
    from regress.guest import environment
    from regress.vm import image, kernels

    monkeypatch.setenv("REGRESS_CACHE", str(tmp_path / "c"))
    assert environment.cache_dir() == tmp_path / "c" / "headers"
    assert kernels.kernels_dir() == tmp_path / "c" / "kernels"
    assert image.images_dir() == tmp_path / "c" / "images"
    monkeypatch.delenv("REGRESS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert environment.cache_dir() == tmp_path / "x" / "regress" / "headers"
    assert kernels.kernels_dir() == tmp_path / "x" / "regress" / "kernels"

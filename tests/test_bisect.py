"""regress bisect: the search over one packaged kernel line.

Fast tests replay real captures of the planted workload (tests/testdata/workloads/
bisect-plant.toml, captured on Debian 6.1.0-47..56 under QEMU) through a registered
backend, so the verdicts, reports and suspects are the real pipeline's; the slow test
boots the kernels.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from regress.errors import InputError, UsageError
from regress.gate.bisect import BisectOutcome, Criterion, bisect, line_between
from regress.model.events import Progress
from regress.model.result import Thresholds
from regress.vm import backend as vm_backend
from regress.vm import kernels
from regress.vm.backend import CapturePair, RunOptions

DATA = Path(__file__).parent / "testdata"
PLANT = DATA / "workloads" / "bisect-plant.toml"
STORED = DATA / "bisect"

pytestmark = pytest.mark.skipif(shutil.which("apt-cache") is None, reason="needs apt metadata")


class Replay:
    """A backend that hands back stored real captures by kernel; counts what it was asked."""

    asked: ClassVar[list[str]] = []

    def capture_pair(
        self, opts: RunOptions, progress: Progress, cancel: threading.Event | None = None
    ) -> CapturePair:
        assert opts.out_dir is not None
        opts.out_dir.mkdir(parents=True, exist_ok=True)
        pair = CapturePair(out_dir=opts.out_dir, captures={})
        for side, ref in (("old", opts.old), ("new", opts.new)):
            release = ref.split(":", 1)[1]
            Replay.asked.append(release)
            stored = STORED / f"{release}.json.gz"
            if not stored.is_file():
                raise AssertionError(f"the search asked for {release}, which it should not need")
            dest = opts.out_dir / f"{side}.json"
            shutil.copy(stored, dest)
            pair.captures[side] = dest
        return pair

    def dry_run_lines(self, opts: RunOptions) -> list[str]:
        return []

    def discover_pair(self, *a: object, **k: object) -> object:
        raise NotImplementedError


@pytest.fixture
def replay(monkeypatch: pytest.MonkeyPatch) -> type[Replay]:
    Replay.asked = []
    monkeypatch.setitem(vm_backend._REGISTRY, "replay", Replay)
    return Replay


def _opts() -> RunOptions:
    return RunOptions(workload=str(PLANT), runs=3, cpus=1, mem_mb=2048)


def replayed_bisect(out: Path, criterion: Criterion | None = None) -> BisectOutcome:
    """The planted search 6.1.0-47..56 over the stored captures (``Replay`` registered)."""
    return bisect(
        "debian:6.1.0-47-cloud-amd64",
        "debian:6.1.0-56-cloud-amd64",
        _opts(),
        Thresholds(),
        criterion or Criterion(),
        out,
        backend="replay",
    )


def test_finds_the_first_bad_package(tmp_path: Path, replay: type[Replay]) -> None:
    out = tmp_path / "bisect"
    outcome = replayed_bisect(out)
    assert len(outcome.candidates) == 10
    assert outcome.first_bad.release == "6.1.0-52-cloud-amd64"
    assert outcome.last_good.release == "6.1.0-51-cloud-amd64"
    assert outcome.first_bad.upstream == "6.1.180"
    # endpoints, then two kernels per step: 6 of the 10 captured
    assert len(replay.asked) == 6 and outcome.boots == 6
    verdicts = {s.kernel.release: (s.bad, s.evidence) for s in outcome.steps}
    assert (
        verdicts["6.1.0-56-cloud-amd64"][0]
        and "statx ENOENT" in verdicts["6.1.0-56-cloud-amd64"][1]
    )
    assert not verdicts["6.1.0-51-cloud-amd64"][0]
    for s in outcome.steps:
        assert Path(s.report).is_file() and Path(s.capture).is_file()
    doc = json.loads((out / "bisect.json").read_text())
    assert doc["first_bad"]["release"] == "6.1.0-52-cloud-amd64"
    assert "first bad: 6.1.0-52-cloud-amd64 (upstream 6.1.180" in (out / "bisect.txt").read_text()
    # a second search reuses every capture it has
    replay.asked.clear()
    again = replayed_bisect(out, Criterion("key", "syscall:statx:ENOENT"))
    assert replay.asked == [] and again.first_bad.release == "6.1.0-52-cloud-amd64"


def test_refuses_what_cannot_be_bisected(tmp_path: Path, replay: type[Replay]) -> None:
    with pytest.raises(UsageError, match="different kernel lines"):
        line_between("debian:6.1.0-47-cloud-amd64", "debian:6.12.117+deb12-cloud-amd64")
    with pytest.raises(UsageError, match="must be an older package"):
        line_between("debian:6.1.0-56-cloud-amd64", "debian:6.1.0-47-cloud-amd64")
    with pytest.raises(UsageError, match="--key needs"):
        Criterion("key")
    # a "bad" kernel that is not bad by the criterion: nothing to bisect, said with why
    with pytest.raises(InputError, match="does not differ from --good"):
        bisect(
            "debian:6.1.0-47-cloud-amd64",
            "debian:6.1.0-51-cloud-amd64",
            _opts(),
            Thresholds(),
            Criterion(),
            tmp_path / "b",
            backend="replay",
        )
    line = line_between("debian:6.1.0-47-cloud-amd64", "debian:6.1.0-51-cloud-amd64")
    assert [k.release for k in line][:2] == ["6.1.0-47-cloud-amd64", "6.1.0-48-cloud-amd64"]


@pytest.mark.slow
def test_bisect_boots_the_packaged_kernels(tmp_path: Path) -> None:
    """The real thing: 7 packaged kernels of the 6.1 line, the planted regression."""
    out = tmp_path / "real"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "regress.cli.main",
            "bisect",
            "--good",
            "debian:6.1.0-47-cloud-amd64",
            "--bad",
            "debian:6.1.0-53-cloud-amd64",
            "-w",
            str(PLANT),
            "--runs",
            "3",
            "--key",
            "syscall:statx:ENOENT",
            "-o",
            str(out),
            "--json",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["first_bad"]["release"] == "6.1.0-52-cloud-amd64", doc
    assert kernels.cached("6.1.0-52-cloud-amd64") is not None

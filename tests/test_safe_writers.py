"""Every writer goes through ``atomic_write_bytes``: it replaces only regular files.

In a temporary directory (never on the real /dev): a symlink, a FIFO and a character
device made with mknod survive every writer unchanged in kind; missing directories are
created only inside reports/; a hostile workload name cannot place output elsewhere.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from regress.cli.main import run
from regress.errors import InputError
from regress.model.capture import atomic_write_bytes
from regress.model.paths import safe_component
from regress.vm.backend import RunOptions, default_out_dir

REPORT = Path(__file__).resolve().parent / "testdata" / "report"
OLD, NEW = REPORT / "ps-loop-old.json", REPORT / "ps-loop-new.json"


def test_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and target.read_text() == "new"


def test_fifo_is_written_through_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    atomic_write_bytes(fifo, b"through the pipe")
    reader.join(timeout=10)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_character_device_is_written_through_not_replaced(tmp_path: Path) -> None:
    dev = tmp_path / "null.tar.gz"  # (the bundle insists on its suffix)
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the null device's numbers
    for argv in (
        ["report", str(OLD), str(NEW), "-o", str(dev)],
        ["diff", str(OLD), str(NEW), "--json", str(dev), "--fail-on", "none"],
        ["bundle", str(OLD), str(NEW), "-o", str(dev)],
    ):
        assert run(argv) in (0, 1), argv
        assert stat.S_ISCHR(os.lstat(dev).st_mode), argv


def test_directories_and_missing_parents_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InputError, match="it is a directory; not replaced"):
        atomic_write_bytes(tmp_path, b"x")
    with pytest.raises(InputError, match="does not exist"):
        atomic_write_bytes(tmp_path / "typo" / "deeper" / "r.html", b"x")
    assert not (tmp_path / "typo").exists()
    monkeypatch.chdir(tmp_path)  # regress's own reports/ tree is created on demand
    atomic_write_bytes(Path("reports") / "a" / "r.html", b"x")
    assert (tmp_path / "reports" / "a" / "r.html").read_bytes() == b"x"


def test_dev_stdout_streams_the_report(capfd: pytest.CaptureFixture[str]) -> None:
    assert run(["report", str(OLD), str(NEW), "--format", "text", "-o", "/dev/stdout"]) == 0
    out = capfd.readouterr().out
    assert out.startswith("Subject: [REGRESSION]") and "Where it diverges" in out


@pytest.mark.parametrize("name", ["../../x", "/x", "..", "a/../../b", "\\n/etc"])
def test_a_workload_name_cannot_leave_the_output_directory(name: str) -> None:
    out = default_out_dir(RunOptions(), name)
    assert out.parent == Path("reports") and ".." not in out.parts and "/" not in out.name
    assert safe_component(name) and "/" not in safe_component(name)

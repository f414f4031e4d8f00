"""VM runner pieces that need no VM: argv, disks, result slots, merging, errors, CLI dry-run."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from regress.cli.main import run as cli_run
from regress.errors import UsageError, VMError
from regress.guest import agent
from regress.model.capture import (
    Capture,
    KernelInfo,
    MachineInfo,
    Run,
    TracerInfo,
    WorkloadInfo,
)
from regress.model.workload import resolve_workload
from regress.vm import backend, image, kernels, orchestrate, qemu, vagrant
from regress.vm.kernels import Kernel


def _kernel(tmp_path: Path) -> Kernel:
    return Kernel(
        label="debian:x",
        release="6.1.0-56-cloud-amd64",
        vmlinuz=tmp_path / "k,1" / "vmlinuz",
        tree=tmp_path / "k,1" / "tree",
    )


def _cfg(tmp_path: Path, accel: str = "tcg") -> qemu.BootConfig:
    return qemu.BootConfig(
        kernel=_kernel(tmp_path),
        root_image=tmp_path / "root.ext4",
        kernel_disk=tmp_path / "k,1" / "kernel.ext4",
        initrd=tmp_path / "initrd",
        job_disk=tmp_path / "job.tar",
        result_disk=tmp_path / "res.img",
        console_log=tmp_path / "console.log",
        accel=accel,
        append=["root=/dev/vdz"],
    )


def test_qemu_argv_is_a_list_with_isolated_disks(tmp_path: Path) -> None:
    argv = qemu.qemu_argv(_cfg(tmp_path))
    assert argv[0] == "qemu-system-x86_64"
    assert argv[argv.index("-accel") + 1] == "tcg"
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert len(drives) == 4
    assert drives[0].endswith("snapshot=on") and "root.ext4" in drives[0]
    assert "k,,1/kernel.ext4" in drives[1] and drives[1].endswith("readonly=on")  # comma escaped
    assert drives[2].endswith("readonly=on") and "job.tar" in drives[2]
    assert "readonly" not in drives[3] and "snapshot" not in drives[3]
    append = argv[argv.index("-append") + 1]
    assert "console=ttyS0" in append and "panic=-1" in append and append.endswith("root=/dev/vdz")
    assert "-no-reboot" in argv
    kvm = qemu.qemu_argv(_cfg(tmp_path, accel="kvm"))
    assert kvm[kvm.index("-accel") + 1] == "kvm" and "host" in kvm


def test_choose_accel_explicit_tcg() -> None:
    assert qemu.choose_accel("tcg").name == "tcg"
    assert qemu.choose_accel("auto").name in ("kvm", "tcg")


def test_result_slots_survive_a_torn_write(tmp_path: Path) -> None:
    disk = tmp_path / "res.img"
    qemu.new_result_disk(disk)
    assert agent.read_result_disk(disk) is None
    w = agent.ResultWriter(disk)
    w.write({"state": "running", "n": 1})
    w.write({"state": "done", "n": 2})
    assert agent.read_result_disk(disk) == {"state": "done", "n": 2}
    # Corrupt the newest slot (seq 2 lives in slot 0): the previous result is still read.
    with open(disk, "r+b") as fh:
        fh.seek(agent.HEADER.size + 3)
        fh.write(b"garbage")
    assert agent.read_result_disk(disk) == {"state": "running", "n": 1}


def test_job_roundtrip_keeps_the_spec_hash(repo: Path) -> None:
    for name in ("ps-loop", "tcp-loopback"):
        spec = resolve_workload(name)
        back = agent.spec_from_job(json.loads(json.dumps(agent.spec_to_job(spec))))
        assert back.spec_hash() == spec.spec_hash()
        assert back.files == spec.files


def test_job_disk_ships_the_agent_not_the_host_code(tmp_path: Path) -> None:
    path = tmp_path / "job.tar"
    qemu.write_job_disk(
        path, {"kind": "command", "command": ["true"]}, extra={"boot-config": b"CONFIG_X=y\n"}
    )
    assert path.stat().st_size % 512 == 0
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
        job = json.loads(tar.extractfile("job.json").read())  # type: ignore[union-attr]
    assert {
        "guest-init.sh",
        "job.json",
        "boot-config",
        "src/regress/__init__.py",
        "src/regress/errors.py",
        "src/regress/guest/agent.py",
        "src/regress/guest/runner.py",
        "src/regress/model/workload.py",
        "src/regress/model/data/syscalls_x86_64.txt",
    } <= names
    # An include list: only the guest stage, the model and the errors travel.
    shipped = {n.split("/")[2] for n in names if n.startswith("src/regress/")}
    assert shipped == {"__init__.py", "errors.py", "guest", "model"}, shipped
    assert not any("__pycache__" in n for n in names)
    assert job == {"kind": "command", "command": ["true"]}


def test_initramfs_cpio_lists_with_cpio(tmp_path: Path) -> None:
    if shutil.which("cpio") is None:
        pytest.fail("cpio not installed: run scripts/setup.sh")
    data = image._cpio_newc(
        [("bin", 0o40755, b""), ("bin/x", 0o100755, b"abc"), ("bin/sh", 0o120777, "x")]
    )
    out = subprocess.run(["cpio", "-t"], input=data, capture_output=True, check=True)
    assert out.stdout.decode().split() == ["bin", "bin/x", "bin/sh"]


def test_module_order_puts_dependencies_first(tmp_path: Path) -> None:
    (tmp_path / "modules.dep").write_text(
        "kernel/virtio_pci.ko: kernel/virtio_pci_modern_dev.ko kernel/virtio_ring.ko "
        "kernel/virtio.ko\nkernel/virtio_ring.ko: kernel/virtio.ko\nkernel/virtio.ko:\n"
        "kernel/virtio_pci_modern_dev.ko:\nkernel/virtio_blk.ko: kernel/virtio_ring.ko "
        "kernel/virtio.ko\n"
    )
    (tmp_path / "modules.builtin").write_text("kernel/fs/ext4/ext4.ko\n")
    order = image._modules_in_order(tmp_path, ("virtio_pci", "virtio_blk", "ext4"))
    names = [Path(m).stem for m in order]
    assert names.index("virtio") < names.index("virtio_ring") < names.index("virtio_pci")
    assert names.index("virtio_pci_modern_dev") < names.index("virtio_pci")
    assert names[-1] == "virtio_blk" and "ext4" not in names
    with pytest.raises(Exception, match="no module nvme"):
        image._modules_in_order(tmp_path, ("nvme",))


def test_debian_refs() -> None:
    abi = "6.1.0-56-cloud-amd64"
    assert kernels.parse_debian_ref(f"debian:{abi}") == ("release", abi)
    assert kernels.parse_debian_ref("debian:6.1.192-2") == ("version", "6.1.192-2")
    bpo = "6.12.117+deb12-cloud-amd64"  # the 6.12 line's naming
    assert kernels.parse_debian_ref(f"debian:{bpo}") == ("release", bpo)
    assert kernels.parse_debian_ref("debian:6.12.117-1~deb12u1") == (
        "version",
        "6.12.117-1~deb12u1",
    )
    for bad in (
        "6.1.0-56-cloud-amd64",
        "debian:6.1.0-56-rt-amd64",
        "debian:latest",
        "debian:6.1;rm -rf /",
        "debian:",
    ):
        with pytest.raises(UsageError):
            kernels.parse_debian_ref(bad)


def _capture(runs: int, fingerprint: str = "f") -> dict[str, object]:
    cap = Capture(
        kernel=KernelInfo("r", "v", "c"),
        machine=MachineInfo("qemu", "x86_64", 2, 2048, "tcg"),
        tracer=TracerInfo(fingerprint, {}, ""),
        workload=WorkloadInfo("w", "h", {}),
        bcc_version="0.26",
        requested_runs=runs,
        runs=[
            Run(index=i, iterations=3, wall_s=1.0, started_utc="", functions={"f": i})
            for i in range(runs)
        ],
    )
    return cap.to_dict()


def test_merge_boots_renumbers_and_tags_runs() -> None:
    merged = backend.merge_boots([(0, _capture(1)), (1, _capture(1)), (2, _capture(1))], 3, "old")
    assert merged is not None and merged.complete
    assert [(r.index, r.boot) for r in merged.runs] == [(0, 0), (1, 1), (2, 2)]
    partial = backend.merge_boots([(0, _capture(1))], 3, "old")
    assert partial is not None and not partial.complete
    assert partial.to_dict()["complete"] is False
    with pytest.raises(VMError, match="different tracer"):
        backend.merge_boots([(0, _capture(1)), (1, _capture(1, "g"))], 2, "old")


def _boot_result(tmp_path: Path, **kw: object) -> qemu.BootResult:
    base: dict[str, object] = dict(
        result=None,
        console_log=tmp_path / "c.log",
        wall_s=5.0,
        agent_ready_s=None,
        qemu_rc=0,
        timed_out=False,
        panic=None,
        qemu_stderr="",
    )
    base.update(kw)
    return qemu.BootResult(**base)  # type: ignore[arg-type]


def test_failures_name_the_console_log(tmp_path: Path) -> None:
    log = str(tmp_path / "c.log")
    ok = _boot_result(tmp_path, result={"state": "done"})
    assert qemu.failure_of(ok, what="x") is None
    cases = {
        "timed out": _boot_result(tmp_path, timed_out=True),
        "panicked: Kernel panic - not syncing: VFS": _boot_result(
            tmp_path, panic="Kernel panic - not syncing: VFS"
        ),
        "without a result": _boot_result(tmp_path),
        "qemu exited 1": _boot_result(tmp_path, qemu_rc=1, qemu_stderr="bad option"),
        "KVM cannot run": _boot_result(tmp_path, qemu_stderr="KVM internal error. Suberror: 1"),
    }
    for expected, res in cases.items():
        err = qemu.failure_of(res, what="old kernel boot 0")
        assert err is not None and expected in err.one_line(), expected
        assert log in err.one_line() and "\n" not in err.one_line()


def test_agent_error_keeps_the_guest_class(tmp_path: Path) -> None:
    from regress.errors import WorkloadRunError

    e = orchestrate._agent_error(
        {"error": {"type": "WorkloadRunError", "message": "iteration 2 exited 3"}},
        "new kernel",
        tmp_path / "c.log",
    )
    assert isinstance(e, WorkloadRunError) and "c.log" in e.message
    e2 = orchestrate._agent_error({"error": {"type": "KeyError", "message": "x"}}, "n", Path("l"))
    assert type(e2) is VMError


def test_agent_command_job_writes_its_result(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "job.json").write_text(
        json.dumps({"kind": "command", "command": ["sh", "-c", "echo hi; exit 3"]})
    )
    disk = tmp_path / "res.img"
    qemu.new_result_disk(disk)
    assert agent.main([str(job), str(disk)]) == 0
    res = agent.read_result_disk(disk)
    assert res is not None and res["state"] == "done"
    assert res["command"]["rc"] == 3 and res["command"]["stdout"] == "hi\n"
    (job / "job.json").write_text(json.dumps({"kind": "nonsense"}))
    assert agent.main([str(job), str(disk)]) != 0
    res = agent.read_result_disk(disk)
    assert res is not None and res["state"] == "failed" and "nonsense" in res["error"]["message"]


def test_cli_dry_run_prints_qemu_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_run(["run", "--dry-run", "--runs", "2", "--fresh-boot-per-run"]) == 0
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if x.startswith("qemu-system-x86_64 ")]
    assert len(lines) == 4  # two boots per kernel
    assert "6.1.0-47-cloud-amd64/vmlinuz" in lines[0] and "6.1.0-56-cloud-amd64" in lines[-1]
    assert "snapshot=on" in lines[0]


def test_cli_vagrant_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_run(["run", "--backend", "vagrant", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for needle in (
        "vagrant up old --provision",
        "vagrant upload",
        "vagrant ssh new -c",
        "REGRESS_NEW_KERNEL=6.1.0-56-cloud-amd64",
        "vagrant halt new",
    ):
        assert needle in out


def test_cli_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_run(["run", "--dry-run", "--backend", "xen"]) == 2
    assert cli_run(["run", "--dry-run", "--old", "6.1.0-47"]) == 2
    assert cli_run(["run", "--dry-run", "--runs", "0"]) == 2
    assert cli_run(["run", "--dry-run", "--old-modules", "/tmp"]) == 2
    err = capsys.readouterr().err
    assert "regress: error:" in err


@pytest.mark.skipif(
    shutil.which("vagrant") is None,
    reason="vagrant is not installed (278 apt packages); dry-run is tested above",
)
def test_vagrantfile_validates() -> None:
    env = {"VAGRANT_CWD": str(vagrant.VAGRANT_DIR), "PATH": "/usr/bin:/bin"}
    subprocess.run(["vagrant", "validate"], env=env, check=True, capture_output=True)


def test_gzip_payload_limit() -> None:
    big = {"x": "a" * 10}
    blob = agent.encode_slot(1, big)
    assert agent.decode_slot(blob) == (1, big)
    assert agent.decode_slot(blob[:-1]) is None
    assert gzip.decompress(blob[agent.HEADER.size :]) == json.dumps(big, sort_keys=True).encode()


def test_dry_run_of_own_builds_shows_the_cache_entry_it_will_boot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run prints the paths the real run uses (the content-keyed cache entry), and
    neither it nor the run writes beside the user's bzImage."""
    from regress.model import paths

    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    build = tmp_path / "build"
    mods = build / "lib" / "modules" / "6.9.0-test"
    (mods / "kernel").mkdir(parents=True)
    (mods / "modules.dep").write_text("")
    (build / "bzImage").write_bytes(b"\0" * 512)
    argv = ["run", "--dry-run", "--new-kernel", str(build / "bzImage")]
    argv += ["--new-modules", str(mods), "--new-label", "patched", "-o", str(tmp_path / "o")]
    assert cli_run(argv) == 0
    text = capsys.readouterr().out
    key, entry = kernels.paths_entry(build / "bzImage", mods, None)
    assert f"into {entry} (content key {key}" in text
    assert f"-kernel {entry / 'vmlinuz'}" in text
    assert str(build / "bzImage") not in text.split("# would copy", 1)[0]
    assert sorted(p.name for p in build.iterdir()) == ["bzImage", "lib"]
    assert cli_run([*argv[:-2], "--old-label", "x"]) == 2  # a label without its kernel

"""Vagrant backend: the same agent and job, on ``old``/``new`` machines from ``vagrant/``.

For hosts with hardware virtualization. Drives ``vagrant up/reload/upload/ssh/halt``;
the job tar is the one the QEMU backend puts on its job disk, and the agent writes its
result to a file read back with ``python3 -m regress.guest.agent --dump``.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from regress.errors import EnvironmentProblem, UsageError, VMError
from regress.guest.discover import Discovery
from regress.model.capture import MachineInfo, save_capture
from regress.model.events import Progress
from regress.vm import backend, kernels, qemu
from regress.vm.backend import (
    CapturePair,
    RunOptions,
    guest_job,
    load_workload,
    merge_boots,
    out_dir_for,
    validate,
)

VAGRANT_DIR = Path(__file__).resolve().parent.parent.parent / "vagrant"
GUEST_JOB = "/tmp/regress-job"
GUEST_RESULT = "/tmp/regress-result.img"


def _kernel_release(ref: str) -> str:
    kind, body = kernels.parse_debian_ref(ref)
    if kind == "release":
        return body
    return kernels.resolve_release(ref)


def _env(opts: RunOptions) -> dict[str, str]:
    if opts.old_paths or opts.new_paths:
        raise VMError(
            "--backend vagrant installs Debian kernel packages; "
            "kernels given as paths need --backend qemu"
        )
    return {
        "VAGRANT_CWD": str(VAGRANT_DIR),
        "REGRESS_OLD_KERNEL": _kernel_release(opts.old),
        "REGRESS_NEW_KERNEL": _kernel_release(opts.new),
        "REGRESS_CPUS": str(opts.cpus),
        "REGRESS_MEM_MB": str(opts.mem_mb),
    }


def commands(opts: RunOptions, job_tar: Path, result_json: dict[str, Path]) -> list[list[str]]:
    """Every vagrant command a run performs, in order (argument lists)."""
    run_agent = (
        f"sudo sh -c 'rm -rf {GUEST_JOB} && mkdir -p {GUEST_JOB} && "
        f"tar -xf {GUEST_JOB}.tar -C {GUEST_JOB} && rm -f {GUEST_RESULT} && "
        f"truncate -s 64M {GUEST_RESULT} && cd {GUEST_JOB} && "
        f"PYTHONPATH={GUEST_JOB}/src python3 -m regress.guest.agent {GUEST_JOB} {GUEST_RESULT}'"
    )
    dump = f"sudo PYTHONPATH={GUEST_JOB}/src python3 -m regress.guest.agent --dump {GUEST_RESULT}"
    cmds: list[list[str]] = [["vagrant", "validate"]]
    for side in ("old", "new"):
        cmds += [
            ["vagrant", "up", side, "--provision"],
            ["vagrant", "reload", side],
            [
                "vagrant",
                "upload",
                str(job_tar.with_name(f"{side}-{job_tar.name}")),
                f"{GUEST_JOB}.tar",
                side,
            ],
            ["vagrant", "ssh", side, "-c", run_agent],
            ["vagrant", "ssh", side, "-c", dump],  # stdout -> result_json[side]
            ["vagrant", "halt", side],
        ]
    return cmds


def dry_run_lines(opts: RunOptions) -> list[str]:
    validate(opts)
    spec = load_workload(opts)
    out_dir = out_dir_for(opts)
    env = _env(opts)
    job_tar = out_dir / "logs" / "job.tar"
    results = {s: out_dir / "logs" / f"{s}-result.json" for s in ("old", "new")}
    found = "vagrant found" if shutil.which("vagrant") else "vagrant NOT installed"
    lines = [
        f"# vagrant backend ({found}); "
        f"workload {spec.name}, {opts.runs} runs x {spec.iterations} iterations",
        "# environment: " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()),
    ]
    for argv in commands(opts, job_tar, results):
        line = " ".join(shlex.quote(a) for a in argv)
        if argv[1] == "ssh" and "--dump" in argv[-1]:
            line += f" > {shlex.quote(str(results[argv[2]]))}"
        lines.append(line)
    lines.append(f"# then: {out_dir}/old.json, new.json (the pipeline diffs and renders)")
    return lines


def capture_pair(opts: RunOptions) -> CapturePair:
    """Both captures from Vagrant machines (needs vagrant and a working provider)."""
    if shutil.which("vagrant") is None:
        raise EnvironmentProblem(
            "vagrant is not installed", hint="install vagrant + a provider, or use --backend qemu"
        )
    validate(opts)
    spec = load_workload(opts)
    out_dir = out_dir_for(opts)
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**_env_base(), **_env(opts)}
    job_tar = logs / "job.tar"
    results = {s: logs / f"{s}-result.json" for s in ("old", "new")}
    machine = MachineInfo(
        backend="vagrant",
        arch="x86_64",
        cpus=opts.cpus,
        mem_mb=opts.mem_mb,
        accel="kvm",
        hostname="",
    )
    for name in ("old", "new"):
        qemu.write_job_disk(
            job_tar.with_name(f"{name}-{job_tar.name}"),
            guest_job(opts, spec, machine, opts.runs, 0),
        )
    captures: dict[str, Path] = {}
    for argv in commands(opts, job_tar, results):
        side = argv[2] if len(argv) > 2 and argv[2] in ("old", "new") else None
        dump = argv[1] == "ssh" and "--dump" in argv[-1]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        with (logs / "vagrant.log").open("a") as log:
            log.write(f"$ {shlex.join(argv)}\n{proc.stdout}{proc.stderr}\n")
        if proc.returncode != 0 and not (argv[1] == "ssh" and not dump):
            raise VMError(
                f"{shlex.join(argv[:3])} failed (exit {proc.returncode}); "
                f"log: {logs / 'vagrant.log'}"
            )
        if dump and side is not None:
            results[side].write_text(proc.stdout)
            captures[side] = _finish(side, proc.stdout, opts, out_dir, logs)
    return CapturePair(out_dir=out_dir, captures=captures)


def _env_base() -> dict[str, str]:
    import os

    return dict(os.environ)


def _finish(side: str, text: str, opts: RunOptions, out_dir: Path, logs: Path) -> Path:
    try:
        result: dict[str, Any] = json.loads(text)
    except ValueError:
        raise VMError(f"{side}: no result from the agent; log: {logs / 'vagrant.log'}") from None
    cap = merge_boots([(0, result["capture"])], opts.runs, side) if result.get("capture") else None
    if result.get("state") != "done" or cap is None or not cap.complete:
        err = str((result.get("error") or {}).get("message") or "agent did not finish")
        if cap is not None and cap.runs:
            save_capture(cap, out_dir / f"{side}.partial.json")
        raise VMError(f"{side}: {err}; log: {logs / 'vagrant.log'}")
    path = out_dir / f"{side}.json"
    save_capture(cap, path)
    return path


class VagrantBackend:
    """Vagrant machines ``old`` and ``new`` from ``vagrant/Vagrantfile``."""

    name = "vagrant"

    def capture_pair(
        self, opts: RunOptions, progress: Progress, cancel: threading.Event | None = None
    ) -> CapturePair:
        return capture_pair(opts)

    def dry_run_lines(self, opts: RunOptions) -> list[str]:
        return dry_run_lines(opts)

    def discover_pair(
        self, opts: RunOptions, syscalls: list[str], max_functions: int, progress: Progress
    ) -> dict[str, Discovery]:
        raise UsageError(
            "the narrowing pass's function discovery runs on the qemu backend only",
            hint="pass --no-narrow, or use --backend qemu",
        )


backend.register("vagrant", VagrantBackend)

"""Guest-side entry point: ``python3 -m regress.guest.agent JOB_DIR RESULT_DEVICE``.

The host ships this package, ``job.json`` and the workload's files on a job disk; the
agent runs the job (a traced capture via ``regress.guest.runner.run_capture``, or a plain
command for benchmarks) and writes its result to a dedicated raw result disk, never
the console. The console only carries ``REGRESS-EVENT {json}`` progress lines.

Result disk format (also read by the host, hence here): two slots of ``SLOT_BYTES``;
each holds ``MAGIC``, a sequence number, the payload length, the payload's sha256 and
a gzipped JSON payload. Each write goes to the slot not holding the newest result and
is fsynced, so a crash mid-write leaves the previous result readable. The agent writes
after every finished run, so runs completed before a hang or panic are not lost.

Stdlib-only: this runs on the guest's Debian python3.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from regress.model.events import Event

MAGIC = b"RGRSRES1"
SLOT_BYTES = 32 * 2**20
HEADER = struct.Struct("<8sQQ32s")  # magic, seq, length, sha256
RESULT_DISK_BYTES = 2 * SLOT_BYTES


# --------------------------------------------------------------------------- result disk


def encode_slot(seq: int, payload: dict[str, Any]) -> bytes:
    data = gzip.compress(json.dumps(payload, sort_keys=True).encode(), mtime=0)
    if HEADER.size + len(data) > SLOT_BYTES:
        raise ValueError(f"result of {len(data)} bytes does not fit a {SLOT_BYTES}-byte slot")
    return HEADER.pack(MAGIC, seq, len(data), hashlib.sha256(data).digest()) + data


def decode_slot(raw: bytes) -> tuple[int, dict[str, Any]] | None:
    if len(raw) < HEADER.size:
        return None
    magic, seq, length, digest = HEADER.unpack_from(raw)
    if magic != MAGIC or HEADER.size + length > len(raw):
        return None
    data = raw[HEADER.size : HEADER.size + length]
    if hashlib.sha256(data).digest() != digest:
        return None
    try:
        doc = json.loads(gzip.decompress(data))
    except (OSError, ValueError):
        return None
    return (seq, doc) if isinstance(doc, dict) else None


def read_result_disk(path: Path) -> dict[str, Any] | None:
    """The newest intact result on a result disk (image file or device), or None."""
    best: tuple[int, dict[str, Any]] | None = None
    with open(path, "rb") as fh:
        for slot in range(2):
            fh.seek(slot * SLOT_BYTES)
            got = decode_slot(fh.read(SLOT_BYTES))
            if got is not None and (best is None or got[0] > best[0]):
                best = got
    return best[1] if best else None


class ResultWriter:
    """Alternating-slot writer for the result device."""

    def __init__(self, device: Path) -> None:
        self.device = device
        self.seq = 0

    def write(self, payload: dict[str, Any]) -> None:
        self.seq += 1
        blob = encode_slot(self.seq, payload)
        fd = os.open(self.device, os.O_WRONLY)
        try:
            os.pwrite(fd, blob, (self.seq % 2) * SLOT_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------- job encoding


def spec_to_job(spec: Any) -> dict[str, Any]:
    """A ``WorkloadSpec`` as JSON, file contents included (base64)."""
    return {
        "name": spec.name,
        "command": spec.command if isinstance(spec.command, str) else list(spec.command),
        "description": spec.description,
        "iterations": spec.iterations,
        "timeout_s": spec.timeout_s,
        "setup": spec.setup,
        "teardown": spec.teardown,
        "liveness": spec.liveness,
        "files": {k: base64.b64encode(v).decode() for k, v in sorted(spec.files.items())},
        "functions": list(spec.functions),
        "tracepoints": list(spec.tracepoints),
        "env": dict(spec.env),
        "source": spec.source,
        "function_returns": spec.function_returns,
    }


def spec_from_job(doc: dict[str, Any]) -> Any:
    """Rebuild the exact ``WorkloadSpec`` (same hash as on the host)."""
    from regress.model.workload import WorkloadSpec

    cmd = doc["command"]
    return WorkloadSpec(
        name=doc["name"],
        command=cmd if isinstance(cmd, str) else tuple(cmd),
        description=doc.get("description", ""),
        iterations=int(doc["iterations"]),
        timeout_s=float(doc["timeout_s"]),
        setup=doc.get("setup"),
        teardown=doc.get("teardown"),
        liveness=doc.get("liveness"),
        files={k: base64.b64decode(v) for k, v in doc.get("files", {}).items()},
        functions=tuple(doc.get("functions", [])),
        tracepoints=tuple(doc.get("tracepoints", [])),
        env=dict(doc.get("env", {})),
        source=doc.get("source", "<job>"),
        function_returns=bool(doc.get("function_returns", False)),
    )


# --------------------------------------------------------------------------- running


def emit(event: Event) -> None:
    """A progress line on the console (progress display only; results use the disk)."""
    sys.stdout.write(event.to_line() + "\n")
    sys.stdout.flush()


def _error_doc(exc: BaseException) -> dict[str, Any]:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    hint = getattr(exc, "hint", None)
    return {
        "type": type(exc).__name__,
        "message": message,
        "hint": hint,
        "exit_code": int(getattr(exc, "exit_code", 70)),
    }


def _run_capture_job(
    job: dict[str, Any], writer: ResultWriter, result: dict[str, Any], job_dir: Path
) -> int:
    from regress.guest.runner import run_capture
    from regress.model.capture import MachineInfo, load_capture

    spec = spec_from_job(job["workload"])
    out = Path("/results/capture.json")
    machine = MachineInfo(**job["machine"])
    last_mtime = [0.0]
    # Positive control (regress selftest): an injected fault, loaded for the whole capture
    # and named in the capture's notes so it is never mistaken for a normal capture.
    fault = job.get("fault")
    fault_notes: list[str] = [f"fault injected: {fault['description']}"] if fault else []

    def publish() -> None:
        try:
            mtime = out.stat().st_mtime
        except FileNotFoundError:
            return
        if mtime == last_mtime[0]:
            return
        last_mtime[0] = mtime
        result["capture"] = load_capture(out).to_dict()
        result["capture"]["notes"] = result["capture"].get("notes", []) + fault_notes
        writer.write(result)
        emit(Event("saved", runs=int(job["runs"]), runs_done=len(result["capture"]["runs"])))

    def on_event(event: Event) -> None:
        # Console output is slow under TCG: every 10th iteration is enough for progress.
        if event.kind != "iteration" or (event.iteration or 0) % 10 == 9:
            if event.kind != "saved":  # published below, once the host can read it
                emit(event)
        if event.kind in ("saved", "run_done"):
            publish()

    fault_prog = None
    fault_module = None
    if fault and fault.get("kind") == "module":
        fault_module = _load_fault_module(fault, job_dir)
        emit(Event("fault_loaded", message=fault["description"]))
    elif fault:
        from regress.guest.faults import STAT_DENIED, STAT_MATCHED, STATS_MAP, stats_note
        from regress.guest.tracer import load_lsm_program

        fault_prog = load_lsm_program(fault["bpf_text"])
        emit(Event("fault_loaded", message=fault["description"]))
    try:
        run_capture(
            spec,
            runs=int(job["runs"]),
            out=out,
            tracepoints=job.get("tracepoints"),
            functions=job.get("functions"),
            kernel_headers=None,  # the kernel disk provides /lib/modules/<release>/build
            machine=machine,
            on_event=on_event,
            own_kernel=True,  # a disposable guest: nothing else traces this kernel
        )
    finally:
        if fault_module is not None:
            fault_notes.append(_unload_fault_module(fault_module))
            last_mtime[0] = -1.0
        if fault_prog is not None:
            try:
                stats = fault_prog.array_values(STATS_MAP)
                fault_notes.append(stats_note(stats[STAT_MATCHED], stats[STAT_DENIED]))
            finally:
                fault_prog.close()
            last_mtime[0] = -1.0  # republish with the fault's figures
        publish()
    return 0


def _load_fault_module(fault: dict[str, Any], job_dir: Path) -> str:
    """insmod the fault module the host built for this kernel (on the job disk)."""
    from regress.guest.modfault import MODULE_FILE

    name = str(fault["module_name"])
    proc = subprocess.run(
        ["insmod", str(job_dir / MODULE_FILE)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"insmod {MODULE_FILE} failed: {proc.stderr.strip()}")
    return name


def _unload_fault_module(name: str) -> str:
    """rmmod the fault module; its counters, read first, as a capture note."""
    from regress.guest.modfault import stats_note

    params = Path("/sys/module") / name / "parameters"
    try:
        matched = int((params / "matched").read_text())
        rewritten = int((params / "rewritten").read_text())
        note = stats_note(matched, rewritten)
    except (OSError, ValueError) as exc:
        note = f"fault module counters unreadable: {exc}"
    subprocess.run(["rmmod", name], capture_output=True, check=False)
    return note


def _run_discover_job(job: dict[str, Any], result: dict[str, Any]) -> int:
    """Which functions run under the given syscalls for this workload (narrowing)."""
    from regress.guest.discover import MAX_FUNCTIONS, discover

    spec = spec_from_job(job["workload"])
    limit = int(job.get("max_functions", MAX_FUNCTIONS))
    result["discovery"] = discover(spec, list(job["syscalls"]), max_functions=limit).to_dict()
    return 0


def _run_command_job(job: dict[str, Any], result: dict[str, Any]) -> int:
    """Run a plain command (benchmarks, diagnostics); stdout/stderr come back in the result."""
    started = time.monotonic()
    timeout = float(job.get("timeout_s", 600))
    proc = subprocess.run(job["command"], capture_output=True, timeout=timeout, check=False)
    result["command"] = {
        "argv": job["command"],
        "rc": proc.returncode,
        "wall_s": round(time.monotonic() - started, 3),
        "stdout": proc.stdout.decode(errors="replace")[-200_000:],
        "stderr": proc.stderr.decode(errors="replace")[-200_000:],
    }
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--dump":  # Vagrant backend: result file -> stdout
        doc = read_result_disk(Path(args[1]))
        sys.stdout.write(json.dumps(doc) + "\n")
        return 0 if doc is not None else 1
    if len(args) != 2:
        sys.stderr.write(
            "usage: python3 -m regress.guest.agent JOB_DIR RESULT_DEVICE\n"
            "       python3 -m regress.guest.agent --dump RESULT_FILE\n"
        )
        return 2
    job_dir, device = Path(args[0]), Path(args[1])
    writer = ResultWriter(device)
    job = json.loads((job_dir / "job.json").read_text())
    result: dict[str, Any] = {
        "state": "running",
        "kind": job.get("kind"),
        "boot": job.get("boot"),
        "release": os.uname().release,
        "agent_ready_uptime": _uptime(),
    }
    emit(Event("agent_ready", release=result["release"]))
    writer.write(result)
    rc = 0
    try:
        if job.get("kind") == "capture":
            rc = _run_capture_job(job, writer, result, job_dir)
        elif job.get("kind") == "command":
            rc = _run_command_job(job, result)
        elif job.get("kind") == "discover":
            rc = _run_discover_job(job, result)
        else:
            raise ValueError(f"unknown job kind {job.get('kind')!r}")
        result["state"] = "done"
    except BaseException as exc:  # everything goes back to the host, then we power off
        result["state"] = "failed"
        result["error"] = _error_doc(exc)
        result["traceback"] = traceback.format_exc()[-8000:]
        rc = result["error"]["exit_code"] or 1
        sys.stderr.write(result["traceback"])
    result["rc"] = rc
    result["finished_uptime"] = _uptime()
    writer.write(result)
    emit(Event("agent_exit", status=result["state"]))
    return rc


def _uptime() -> float:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return -1.0


if __name__ == "__main__":
    sys.exit(main())

"""Foreign captures: ``bpftrace -f json`` count maps keyed by (syscall, errno).

Users often already have a bpftrace one-liner; its output can be diffed as one
run per side without re-capturing. Verified against bpftrace 0.17 output of::

    bpftrace -f json -e 't:raw_syscalls:sys_exit /comm=="ps"/
        { @[args->id, args->ret > 0 ? 0 : -args->ret] = count(); }'

which prints JSON lines such as ``{"type": "attached_probes", ...}`` and, at
exit, ``{"type": "map", "data": {"@": {"257,2": 408, "0,0": 915}}}``.

Accepted map keys: ``"<syscall nr>,<errno>"`` (numbers resolved with the x86_64
table in ``syscalls.py``) or ``"tracepoint:syscalls:sys_exit_<name>,<errno>"``
(from ``@[probe, ...]``); errno must be 0..4095 (0 = success). The only count map
with that shape is used; when a map is printed several times the last print
wins (bpftrace prints every map at exit). Anything else is refused in one line.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Any

from regress.errors import CaptureFormatError, InputError
from regress.model import names as syscalls
from regress.model import safejson
from regress.model.capture import (
    MAX_COUNT,
    Capture,
    KernelInfo,
    MachineInfo,
    Run,
    TracerInfo,
    WorkloadInfo,
    read_maybe_gzipped,
    sha256_of,
)
from regress.model.safejson import clip

MAX_ERRNO = 4095
_SYS_EXIT_PROBE = re.compile(r"\A(?:tracepoint|t):syscalls:sys_exit_([A-Za-z0-9_]{1,64})\Z")
_REVERSE_ALIASES = {v: k for k, v in syscalls.TRACEFS_ALIASES.items()}
EXPECTED = (
    "expected a count map keyed by [syscall id, errno], e.g. "
    "@[args->id, args->ret > 0 ? 0 : -args->ret] = count()"
)


def read_bytes(path: Path) -> bytes:
    """File contents, gunzipped when gzip; one-line errors."""
    return read_maybe_gzipped(path, what="capture file")


def _first_record(raw: bytes) -> Any:
    for line in raw.splitlines():
        if line.strip():
            try:
                return safejson.loads(line, "first line")
            except CaptureFormatError:
                return None
    return None


def looks_like_bpftrace(path: Path) -> bool:
    """True when the first non-blank line is a bpftrace JSON record ({"type": ...})."""
    try:
        raw = read_bytes(path)
    except InputError:
        return False  # let the capture loader report it
    first = _first_record(raw)
    return isinstance(first, dict) and "type" in first and "format" not in first


def _records(path: Path, raw: bytes) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = safejson.loads(line, "")
        except CaptureFormatError as exc:
            raise CaptureFormatError(
                f"{clip(path)}: line {lineno}: not a bpftrace JSON record (was it run with "
                f"-f json?){exc.message}"
            ) from None
        if not isinstance(rec, dict) or "type" not in rec:
            raise CaptureFormatError(f"{path}: line {lineno}: not a bpftrace JSON record")
        out.append(rec)
    return out


def _syscall_name(field: str) -> str | None:
    if re.fullmatch(r"\d{1,5}", field):
        return syscalls.name_of(int(field))
    m = _SYS_EXIT_PROBE.match(field)
    if m:
        name = m.group(1)
        return _REVERSE_ALIASES.get(name, name)
    return None


def parse_count_map(path: Path, name: str, value: Any) -> dict[str, dict[str, int]]:
    """A map's ``data`` value -> syscall name -> errno -> count, or a one-line refusal."""
    where = f"{clip(path)}: map {clip(name, 40)}"
    if not isinstance(value, dict):
        raise CaptureFormatError(f"{where} is a scalar, not a keyed count map; {EXPECTED}")
    out: dict[str, dict[str, int]] = {}
    for key, count in value.items():
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
            raise CaptureFormatError(
                f"{where}: value for key {clip(key)!r} is not a count (use count()); {EXPECTED}"
            )
        parts = str(key).rsplit(",", 1)
        if len(parts) != 2:
            raise CaptureFormatError(f"{where}: key {clip(key)!r} has one field; {EXPECTED}")
        sysname = _syscall_name(parts[0])
        if sysname is None:
            raise CaptureFormatError(
                f"{where}: key {clip(key)!r}: first field is not a syscall id or "
                f"tracepoint:syscalls:sys_exit_* probe; {EXPECTED}"
            )
        field = parts[1].strip()
        err = int(field) if field.isdigit() and len(field) <= 4 else -1
        if not 0 <= err <= MAX_ERRNO:
            raise CaptureFormatError(
                f"{where}: key {clip(key)!r}: second field is not an errno (0..{MAX_ERRNO}); "
                f"{EXPECTED}"
            )
        inner = out.setdefault(sysname, {})
        inner[str(err)] = inner.get(str(err), 0) + count
    return out


def load_bpftrace(path: str | Path) -> Capture:
    """Read bpftrace JSON output as a one-run ``Capture`` (1 iteration, backend "import")."""
    path = Path(path)
    records = _records(path, read_bytes(path))
    maps: dict[str, Any] = {}
    for rec in records:
        if rec.get("type") == "map" and isinstance(rec.get("data"), dict):
            for name, value in rec["data"].items():
                maps[str(name)] = value  # last print wins
    if not maps:
        raise CaptureFormatError(f"{path}: bpftrace output has no map; {EXPECTED}")
    parsed: dict[str, dict[str, dict[str, int]]] = {}
    errors: dict[str, CaptureFormatError] = {}
    for name in sorted(maps):
        try:
            parsed[name] = parse_count_map(path, name, maps[name])
        except CaptureFormatError as exc:
            errors[name] = exc
    if not parsed:
        raise errors[sorted(errors)[0]]
    if len(parsed) > 1:
        raise CaptureFormatError(
            f"{path}: several count maps ({', '.join(sorted(parsed))}); keep one "
            "(clear the others before exit or delete them in an END block)"
        )
    map_name, table = next(iter(parsed.items()))
    shape = {"source": "bpftrace", "map": map_name, "key": "syscall,errno"}
    return Capture(
        kernel=KernelInfo(release=f"bpftrace:{path.name}", version="", cmdline=""),
        machine=MachineInfo(
            backend="import", arch=platform.machine(), cpus=0, mem_mb=0, accel=None
        ),
        tracer=TracerInfo(fingerprint=sha256_of(shape), options=shape, bpf_text=""),
        workload=WorkloadInfo(name=f"bpftrace {map_name}", hash=sha256_of(shape), spec={}),
        bcc_version=None,
        requested_runs=1,
        probes=[],
        runs=[
            Run(
                index=0,
                iterations=1,
                wall_s=0.0,
                started_utc="",
                syscalls={
                    k: dict(sorted(v.items(), key=lambda kv: int(kv[0])))
                    for k, v in sorted(table.items())
                },
            )
        ],
        notes=[
            f"imported from bpftrace JSON {path} (map {map_name}); syscall numbers "
            "resolved with the x86_64 table"
        ],
    )

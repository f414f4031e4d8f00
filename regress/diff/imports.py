"""Foreign captures: ``bpftrace -f json`` count maps, any key shape, one or more runs.

Users often already have a bpftrace one-liner; its output can be diffed without
re-capturing. Verified against bpftrace 0.17 output, which prints JSON lines such as
``{"type": "attached_probes", ...}`` and, at exit, one ``{"type": "map", ...}`` line per
map. Accepted (any number of count maps, values from ``count()``):

* ``@[args->id, args->ret > 0 ? 0 : -args->ret] = count()`` on
  ``tracepoint:raw_syscalls:sys_exit`` -- keyed ``"<syscall nr>,<errno>"`` (or
  ``"tracepoint:syscalls:sys_exit_<name>,<errno>"`` from ``@[probe, ...]``): read as the
  syscall/errno rows regress's own tracer makes (numbers resolved with the x86_64
  table; errno 0..4095, 0 = success). At most one such map.
* any other count map -- ``@[kstack]``, ``@[func]``, ``@[comm, probe]``,
  ``@[args->id, ret]``, ``@x`` without a key: each entry becomes one ``map`` row named
  as bpftrace prints it, ``@name[key]``. Stack keys are folded to one line,
  innermost frame first (``a;b;c``) with the ``+offset`` of each frame dropped, so the
  same path compares across two kernel builds.

One file is one run; a directory of files (``old/run1.json``, ``run2.json``, ...) is one
run per file, so the statistics are the same as for regress's own captures. Lines that
are not JSON records (the traced command's own output, ``-c``) are skipped and counted in
a note; a map printed several times counts as its last print. Anything else -- a map of
histograms, a value that is not a count, runs with different maps -- is refused in one
line.
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
        if line.lstrip().startswith(b"{"):  # (lines before it: the command's own output)
            try:
                return safejson.loads(line, "first line")
            except CaptureFormatError:
                return None
    return None


def looks_like_bpftrace(path: Path) -> bool:
    """True when the first JSON line is a bpftrace record ({"type": ...}); for a
    directory, of its first file."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        return bool(files) and looks_like_bpftrace(files[0])
    try:
        raw = read_bytes(path)
    except InputError:
        return False  # let the capture loader report it
    first = _first_record(raw)
    return isinstance(first, dict) and "type" in first and "format" not in first


def _records(path: Path, raw: bytes) -> tuple[list[dict[str, Any]], int]:
    """The JSON records, and how many other lines (the command's own output) were skipped."""
    out: list[dict[str, Any]] = []
    skipped = 0
    for lineno, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        if not line.lstrip().startswith(b"{"):
            skipped += 1
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
    return out, skipped


def _syscall_name(field: str) -> str | None:
    if re.fullmatch(r"\d{1,5}", field):
        return syscalls.name_of(int(field))
    m = _SYS_EXIT_PROBE.match(field)
    if m:
        name = m.group(1)
        return _REVERSE_ALIASES.get(name, name)
    return None


def _count(where: str, key: str, count: Any) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
        raise CaptureFormatError(
            f"{where}: value for key {clip(key)!r} is not a count (use count())"
        )
    return count


def _syscall_errno(key: str) -> tuple[str, str] | None:
    """``"257,2"`` -> ("openat", "2"); None when the key is not that shape."""
    parts = str(key).rsplit(",", 1)
    if len(parts) != 2:
        return None
    sysname = _syscall_name(parts[0].strip())
    field = parts[1].strip()
    if sysname is None or not (field.isdigit() and len(field) <= 4) or int(field) > MAX_ERRNO:
        return None
    return sysname, str(int(field))


def parse_count_map(path: Path, name: str, value: Any) -> dict[str, dict[str, int]]:
    """A (syscall, errno) map's ``data`` value -> syscall name -> errno -> count."""
    where = f"{clip(path)}: map {clip(name, 40)}"
    if not isinstance(value, dict):
        raise CaptureFormatError(f"{where} is a scalar, not a keyed count map; {EXPECTED}")
    out: dict[str, dict[str, int]] = {}
    for key, count in value.items():
        n = _count(where, str(key), count)
        pair = _syscall_errno(str(key))
        if pair is None:
            raise CaptureFormatError(f"{where}: key {clip(key)!r} is not [syscall, errno]")
        inner = out.setdefault(pair[0], {})
        inner[pair[1]] = inner.get(pair[1], 0) + n
    return out


def _is_syscall_map(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(_syscall_errno(str(k)) is not None for k in value)
    )


_FRAME_OFFSET = re.compile(r"\+(?:0x)?[0-9a-fA-F]+$")
MAX_ENTRY = 200  # characters of an entry name before it is shortened (with a hash)


def entry_name(map_name: str, key: str | None) -> str:
    """``@name[key]`` as a row name: stacks folded, frame offsets dropped, long keys
    shortened with a hash of the whole so different keys stay different."""
    if key is None:
        return map_name
    text = str(key)
    if "\n" in text:  # a stack: one frame per line, innermost first
        frames = [_FRAME_OFFSET.sub("", f.strip()) for f in text.splitlines() if f.strip()]
        text = ";".join(frames)
    text = " ".join(text.split())
    name = f"{map_name}[{text}]"
    if len(name) > MAX_ENTRY:
        name = f"{name[: MAX_ENTRY - 12]}…#{sha256_of(text)[:8]}]"
    return name


def parse_generic_map(path: Path, name: str, value: Any) -> dict[str, int]:
    """Any count map -> ``@name[key]`` -> count (a scalar ``@x = count()`` is ``@x``)."""
    where = f"{clip(path)}: map {clip(name, 40)}"
    if not isinstance(value, dict):
        return {entry_name(name, None): _count(where, name, value)}
    out: dict[str, int] = {}
    for key, count in value.items():
        n = _count(where, str(key), count)
        entry = entry_name(name, str(key))
        out[entry] = out.get(entry, 0) + n  # stacks that differ only by offsets add up
    return out


def _run_of(path: Path, index: int) -> tuple[Run, tuple[str, ...], str | None, int]:
    """One bpftrace output file as one run: (run, its map names, the syscall map, skipped)."""
    records, skipped = _records(path, read_bytes(path))
    maps: dict[str, Any] = {}
    for rec in records:
        if rec.get("type") == "map" and isinstance(rec.get("data"), dict):
            for name, value in rec["data"].items():
                maps[str(name)] = value  # last print wins
    if not maps:
        raise CaptureFormatError(f"{path}: bpftrace output has no map; {EXPECTED}")
    sys_maps = [n for n in sorted(maps) if _is_syscall_map(maps[n])]
    if len(sys_maps) > 1:
        raise CaptureFormatError(
            f"{path}: several [syscall, errno] maps ({', '.join(sys_maps)}); keep one"
        )
    table = parse_count_map(path, sys_maps[0], maps[sys_maps[0]]) if sys_maps else {}
    generic: dict[str, int] = {}
    for name in sorted(maps):
        if name not in sys_maps:
            generic.update(parse_generic_map(path, name, maps[name]))
    run = Run(
        index=index,
        iterations=1,
        wall_s=0.0,
        started_utc="",
        syscalls={
            k: dict(sorted(v.items(), key=lambda kv: int(kv[0]))) for k, v in sorted(table.items())
        },
        maps=dict(sorted(generic.items())),
    )
    return run, tuple(sorted(maps)), (sys_maps[0] if sys_maps else None), skipped


def load_bpftrace(path: str | Path) -> Capture:
    """bpftrace JSON output (a file: one run; a directory: one run per file) as a
    ``Capture`` (1 iteration per run, backend "import")."""
    path = Path(path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    if not files:
        raise InputError(f"{path}: an empty directory (expected bpftrace -f json files)")
    runs: list[Run] = []
    names: tuple[str, ...] | None = None
    sys_map: str | None = None
    skipped = 0
    for i, f in enumerate(files):
        run, run_maps, run_sys, n_skipped = _run_of(f, i)
        if names is not None and run_maps != names:
            raise CaptureFormatError(
                f"{f}: maps {', '.join(run_maps)} differ from the first run's "
                f"({', '.join(names)}): one program per side"
            )
        names, sys_map, skipped = run_maps, run_sys, skipped + n_skipped
        runs.append(run)
    assert names is not None
    shape = {"source": "bpftrace", "maps": list(names), "syscall_map": sys_map}
    label = ", ".join(names)
    notes = [
        f"imported from bpftrace JSON {path} ({len(runs)} run(s); maps {label}); syscall "
        "numbers resolved with the x86_64 table"
    ]
    if skipped:
        notes.append(f"{skipped} line(s) that were not JSON records (the command's output) skipped")
    return Capture(
        kernel=KernelInfo(release=f"bpftrace:{path.name}", version="", cmdline=""),
        machine=MachineInfo(
            backend="import", arch=platform.machine(), cpus=0, mem_mb=0, accel=None
        ),
        tracer=TracerInfo(fingerprint=sha256_of(shape), options=shape, bpf_text=""),
        workload=WorkloadInfo(name=f"bpftrace {label}", hash=sha256_of(shape), spec={}),
        bcc_version=None,
        requested_runs=len(runs),
        probes=[],
        runs=runs,
        notes=notes,
    )

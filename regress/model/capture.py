"""Capture files: what one workload did to one kernel, versioned.

A capture is JSON (gzip when the name ends in ``.gz``; either is read back by
magic number). It records everything that must match between two captures for
a diff to mean anything (workload hash, tracer fingerprint, machine shape,
iterations per run) so that only the kernel may differ.

This module is stdlib-only: it also runs inside the guest VM.

Schema history (``schema_version``):
  1 -- 2026-11-24: first version. kernel/machine/bcc/tracer/workload metadata,
       probe statuses, per-run syscall (name -> errno -> count), log2 return
       value histograms, tracepoint and function counts, per-iteration
       liveness and exit codes, lost-event counters; ``requested_runs`` and
       ``complete`` so a partial capture is never mistaken for a whole one.
  2 -- 2026-11-29: probe kinds use the differ's vocabulary (``syscall``, ``retval``,
       ``tracepoint``, ``function``) instead of ``syscalls``/``retvals``.
  3 -- 2026-11-29: per-iteration ``timed_out`` next to ``exit_codes``: a non-zero exit or
       a timeout is an outcome of the iteration (the run goes on), not an abort.
  4 -- 2026-11-29: optional per-iteration counts ``runs[].per_iteration`` (kind -> name ->
       sub -> one count per iteration; they add up to the run's totals), read by the
       tracer after every iteration. Older captures have none (``null``). What traced
       functions return, ``runs[].funcrets`` (name -> "0" | "-<errno>" | "other" -> n),
       with probe kind ``funcret``; older captures have none (``{}``).
  5 -- 2026-11-30: errno origins (with function returns traced): ``runs[].origins``
       (syscall -> "<errno>@<function>" -> n; function "?" when the errno was born in
       no traced function), ``runs[].origin_stacks`` ("<syscall>:<errno>@<function>" ->
       the most frequent kernel call path of that origin, innermost caller first) and
       ``runs[].fn_syscalls`` (function -> syscall it returned under -> n; "-" outside
       any syscall). Older captures have none (``{}``).
  6 -- 2026-11-30: what the kernel side was built and traced with: ``kernel.headers``
       (the headers tree the tracer was compiled against -- another kernel's when the
       kernel has no packaged headers), ``kernel.tainted`` (/proc/sys/kernel/tainted) and
       ``kernel.out_of_tree_modules`` (loaded modules flagged O or E); and, set by the
       host, how the side was named (``kernel.label``: ``debian:<release>`` or the user's
       label) and for an own build its files (``kernel.build``: kernel, modules, headers
       paths and the content key of its cache entry). Older captures did not record
       them (``null``).
  7 -- 2026-11-30: ``runs[].maps`` (key -> count): entries of foreign count maps of any
       key shape (bpftrace ``@name[key]``), imported as the ``map`` kind. Older captures
       have none (``{}``).

To change the schema: bump ``SCHEMA_VERSION``, add a history line above, write
``migrate_vN_to_vN+1(doc) -> doc`` and register it in ``MIGRATIONS``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from regress.errors import CaptureFormatError, InputError, SchemaTooNewError
from regress.model import safejson
from regress.model.paths import REPORTS_DIR
from regress.model.safejson import clip

SCHEMA_VERSION = 7
# Counts, indices and iterations are exact in a float64 below 2^53: everything beyond is
# refused when read (an absurd count would otherwise make exact tests run for ever).
MAX_COUNT = 2**53 - 1
MAX_ITERATIONS_PER_RUN = 1_000_000
MAX_RETVAL_BUCKET = 64
MAX_KEY = 256  # characters of any name a capture keys counts by (kernel symbols: <= 128)
FORMAT_NAME = "regress-capture"

# One vocabulary with the differ's row kinds (``regress.model.result.MetricKind``):
# ``syscall`` and ``retval`` probes are whole families (every syscall's exits / return
# values from ``raw_syscalls:sys_exit``), the others one tracepoint or function each.
ProbeKind = Literal["syscall", "retval", "tracepoint", "function", "funcret"]
ProbeState = Literal["attached", "absent", "failed"]
PROBE_KINDS: tuple[str, ...] = ("syscall", "retval", "tracepoint", "function", "funcret")
# How a function return is classed (``funcrets`` subs): 0/NULL, an errno, anything else.
RETURN_CLASS_OTHER = "other"
MAX_ERRNO = 4095
FAMILY_PROBE_KINDS: frozenset[str] = frozenset({"syscall", "retval"})
# Kinds of per-iteration series: the probes' counts, and errno origins (``origins``).
SERIES_KINDS: tuple[str, ...] = (*PROBE_KINDS, "origin")
UNTRACED_ORIGIN = "?"  # an errno born in no traced function
NO_SYSCALL = "-"  # ``fn_syscalls``: a function returning outside any syscall
PROBE_STATES: tuple[str, ...] = ("attached", "absent", "failed")


def _each(
    doc: dict[str, Any], key: str, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    """``doc[key]`` with ``change`` applied to every object in it; anything malformed is
    left for the strict loader to refuse with its path."""
    items = doc.get(key)
    if isinstance(items, list):
        doc[key] = [change(x) if isinstance(x, dict) else x for x in items]
    return doc


def _length(value: Any) -> int:
    """len() of a list, 0 for anything else (the strict loader then says what is wrong)."""
    return len(value) if isinstance(value, list) else 0


def migrate_v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """v1 named the family probes ``syscalls``/``retvals``."""
    rename = {"syscalls": "syscall", "retvals": "retval"}
    return _each(
        doc, "probes", lambda p: {**p, "kind": rename.get(str(p.get("kind")), p.get("kind"))}
    )


def migrate_v2_to_v3(doc: dict[str, Any]) -> dict[str, Any]:
    """v2 aborted a run at the first failing iteration: nothing it recorded timed out."""
    return _each(doc, "runs", lambda r: {**r, "timed_out": [False] * _length(r.get("exit_codes"))})


def migrate_v3_to_v4(doc: dict[str, Any]) -> dict[str, Any]:
    """v3 read the counters once per run and did not probe function returns."""
    return _each(doc, "runs", lambda r: {**r, "per_iteration": None, "funcrets": {}})


def migrate_v4_to_v5(doc: dict[str, Any]) -> dict[str, Any]:
    """v4 recorded no errno origins and no syscall per function."""
    return _each(
        doc, "runs", lambda r: {**r, "origins": {}, "origin_stacks": {}, "fn_syscalls": {}}
    )


def migrate_v5_to_v6(doc: dict[str, Any]) -> dict[str, Any]:
    """v5 did not record headers, taint or out-of-tree modules."""
    kernel = doc.get("kernel")
    if isinstance(kernel, dict):
        doc["kernel"] = {
            **kernel,
            "headers": None,
            "tainted": None,
            "out_of_tree_modules": None,
            "label": None,
            "build": None,
        }
    return doc


def migrate_v6_to_v7(doc: dict[str, Any]) -> dict[str, Any]:
    """v6 had no foreign count-map entries."""
    return _each(doc, "runs", lambda r: {**r, "maps": {}})


# Migrations: MIGRATIONS[n] turns a version-n document into a version-(n+1) one.
Migration = Callable[[dict[str, Any]], dict[str, Any]]
MIGRATIONS: dict[int, Migration] = {
    1: migrate_v1_to_v2,
    2: migrate_v2_to_v3,
    3: migrate_v3_to_v4,
    4: migrate_v4_to_v5,
    5: migrate_v5_to_v6,
    6: migrate_v6_to_v7,
}


def origin_parts(sub: str) -> tuple[int, str] | None:
    """``"13@bpf_lsm_file_open"`` -> (13, "bpf_lsm_file_open"); None when malformed."""
    err, sep, fn = sub.partition("@")
    if not sep or not fn or not err.isdigit() or not 0 < int(err) <= MAX_ERRNO:
        return None
    return int(err), fn


INTERRUPTED_PREFIX = "interrupted by the user"


def interrupted_note(done: int, requested: int) -> str:
    """The note a capture cut short by Ctrl-C/SIGTERM carries (not a failure)."""
    return f"{INTERRUPTED_PREFIX} after {done} of {requested} runs; finished runs kept"


def origin_sub(err: int, fn: str) -> str:
    """``(-13, "bpf_lsm_file_open")`` -> ``"13@bpf_lsm_file_open"`` (``?``: born untraced)."""
    return f"{abs(err)}@{fn or UNTRACED_ORIGIN}"


@dataclass
class KernelInfo:
    release: str
    version: str  # /proc/version
    cmdline: str  # /proc/cmdline
    config_hash: str | None = None  # sha256 of the normalised config, when readable
    config: dict[str, str] | None = None  # CONFIG_X -> value ("y", "m", "\"str\"", ...)
    headers: str | None = None  # name of the headers tree the tracer was compiled against
    tainted: int | None = None  # /proc/sys/kernel/tainted at capture start
    out_of_tree_modules: list[str] | None = None  # loaded modules flagged (O) or (E)
    label: str | None = None  # how the side was named (debian:<release>, a user label)
    build: dict[str, str] | None = None  # own build: kernel/modules/headers paths, key

    @property
    def identity(self) -> str:
        """What tells this kernel apart: release, /proc/version and, for own builds, the
        content key of the files it was booted from (same release, other modules)."""
        key = (self.build or {}).get("key", "")
        return f"{self.release}\n{self.version}\n{key}"

    @property
    def distro_version(self) -> str | None:
        """The distribution's package version from /proc/version (``Debian 6.1.192-3``)."""
        m = re.search(r"\bDebian (\S+) \(", self.version)
        return m.group(1) if m else None

    @property
    def upstream(self) -> str | None:
        """The kernel.org version this kernel is built from: Debian's upstream version, or
        the release's leading version (``6.9.0-rc2+`` -> 6.9); None when unknown."""
        distro = self.distro_version
        if distro is not None:
            body = distro.split(":", 1)[-1]
            return body.rsplit("-", 1)[0] if "-" in body else body
        m = re.match(r"(\d+\.\d+)(\.\d+)?", self.release)
        if m is None:
            return None
        return m.group(1) if m.group(2) in (None, ".0") else m.group(0)

    @property
    def foreign_headers(self) -> bool:
        """Compiled against another kernel's headers (fine: the tracer reads no structs)."""
        return bool(self.headers) and self.release not in str(self.headers)


@dataclass
class MachineInfo:
    """Where the workload ran. Everything but ``hostname`` must match to compare."""

    backend: str  # "host", "qemu", "vagrant", "import"
    arch: str
    cpus: int
    mem_mb: int
    accel: str | None = None  # "kvm", "tcg" or None on bare metal
    hostname: str = ""

    def shape(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "arch": self.arch,
            "cpus": self.cpus,
            "mem_mb": self.mem_mb,
            "accel": self.accel,
        }


@dataclass
class TracerInfo:
    fingerprint: str  # sha256 of bpf_text + canonical options
    options: dict[str, Any]
    bpf_text: str


@dataclass
class WorkloadInfo:
    name: str
    hash: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class ProbeStatus:
    """One requested probe. ``absent`` (not on this kernel) is never a count of 0."""

    kind: str
    name: str
    status: str
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in PROBE_KINDS:
            raise ValueError(f"unknown probe kind {self.kind!r}")
        if self.status not in PROBE_STATES:
            raise ValueError(f"unknown probe status {self.status!r}")


# Per-iteration counts: kind ("syscall", "retval", "tracepoint", "function") -> name ->
# sub (errno / log2 bucket as text, "" for flat counts) -> one count per iteration.
Series = dict[str, dict[str, dict[str, list[int]]]]
KeyTotals = dict[tuple[str, str, str], int]


@dataclass
class Run:
    """One tracer session over ``iterations`` iterations of the workload command."""

    index: int
    iterations: int
    wall_s: float
    started_utc: str
    syscalls: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> errno -> n
    retvals: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> log2 bucket -> n
    tracepoints: dict[str, int] = field(default_factory=dict)  # "cat:event" -> n
    functions: dict[str, int] = field(default_factory=dict)  # normalised name -> n
    # normalised name -> return class ("0", "-<errno>", "other") -> n
    funcrets: dict[str, dict[str, int]] = field(default_factory=dict)
    # errno origins: syscall -> "<errno>@<function>" -> n (function "?": born untraced)
    origins: dict[str, dict[str, int]] = field(default_factory=dict)
    origin_stacks: dict[str, list[str]] = field(default_factory=dict)  # "<sys>:<sub>" -> path
    fn_syscalls: dict[str, dict[str, int]] = field(default_factory=dict)  # fn -> syscall -> n
    liveness: list[bool | None] = field(default_factory=list)  # per iteration
    exit_codes: list[int] = field(default_factory=list)  # per iteration (-N: signal N)
    timed_out: list[bool] = field(default_factory=list)  # per iteration: killed at timeout
    lost: dict[str, int] = field(default_factory=dict)  # counter -> n
    boot: int | None = None  # which VM boot produced this run, when in a VM
    per_iteration: Series | None = None  # None: read once per run (schema < 4, imports)
    maps: dict[str, int] = field(default_factory=dict)  # "@name[key]" -> n (imports)

    def __post_init__(self) -> None:
        if not self.timed_out and self.exit_codes:  # built without timeouts: none happened
            self.timed_out = [False] * len(self.exit_codes)

    def key_totals(self) -> KeyTotals:
        """The run's counts by ``(kind, name, sub)``, the differ's key."""
        out: KeyTotals = {}
        nested = (
            ("syscall", self.syscalls),
            ("retval", self.retvals),
            ("funcret", self.funcrets),
            ("origin", self.origins),
        )
        for kind, table in nested:
            for name, inner in table.items():
                for sub, n in inner.items():
                    out[(kind, name, sub)] = n
        for kind, flat in (
            ("tracepoint", self.tracepoints),
            ("function", self.functions),
            ("map", self.maps),
        ):
            for name, n in flat.items():
                out[(kind, name, "")] = n
        return out

    def series_items(self) -> Iterator[tuple[tuple[str, str, str], list[int]]]:
        """``((kind, name, sub), per-iteration counts)`` of every key in ``per_iteration``."""
        for kind, names in (self.per_iteration or {}).items():
            for name, subs in names.items():
                for sub, values in subs.items():
                    yield (kind, name, sub), values

    def series_problem(self) -> str | None:
        """Why ``per_iteration`` does not fit the run's totals, or None when it does."""
        if self.per_iteration is None:
            return None
        unknown = set(self.per_iteration) - set(SERIES_KINDS)
        if unknown:
            return f"unknown kind {sorted(unknown)[0]!r}"
        sums: KeyTotals = {}
        for key, values in self.series_items():
            if len(values) != self.iterations:
                kind, name, sub = key
                return f"{kind} {name} {sub}: {len(values)} values for {self.iterations} iterations"
            sums[key] = sum(values)
        totals = self.key_totals()
        for key in sums.keys() | totals.keys():
            if sums.get(key, 0) != totals.get(key, 0):
                kind, name, sub = key
                return (
                    f"{kind} {name} {sub}: per-iteration counts add up to {sums.get(key, 0)}, "
                    f"the run's total is {totals.get(key, 0)}"
                )
        return None


@dataclass
class Capture:
    kernel: KernelInfo
    machine: MachineInfo
    tracer: TracerInfo
    workload: WorkloadInfo
    bcc_version: str | None
    requested_runs: int
    probes: list[ProbeStatus] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    regress_version: str = ""
    created_utc: str = ""
    schema_version: int = SCHEMA_VERSION

    @property
    def complete(self) -> bool:
        return len(self.runs) >= self.requested_runs

    @property
    def interrupted(self) -> bool:
        """Cut short by the user (Ctrl-C, SIGTERM), not by a failure."""
        return any(n.startswith(INTERRUPTED_PREFIX) for n in self.notes)

    @property
    def state(self) -> str:
        """``complete``, or why not, for one-line summaries."""
        if self.complete:
            return "complete"
        if self.interrupted:
            return "INTERRUPTED (by the user; finished runs kept)"
        return "INCOMPLETE (a run failed; finished runs kept)"

    @property
    def iterations_per_run(self) -> int | None:
        its = {r.iterations for r in self.runs}
        return its.pop() if len(its) == 1 else None

    @property
    def total_iterations(self) -> int:
        return sum(r.iterations for r in self.runs)

    def lost_totals(self) -> dict[str, int]:
        """Lost-event counters summed over runs, non-zero ones only, sorted by name."""
        totals: dict[str, int] = {}
        for run in self.runs:
            for k, v in run.lost.items():
                totals[k] = totals.get(k, 0) + v
        return {k: v for k, v in sorted(totals.items()) if v > 0}

    def liveness_per_run(self) -> tuple[list[int], list[int]]:
        """(failed, checked) liveness checks per run; ``None`` entries were not checked."""
        failed = [sum(1 for x in r.liveness if x is False) for r in self.runs]
        checked = [sum(1 for x in r.liveness if x is not None) for r in self.runs]
        return failed, checked

    def exit_per_run(self) -> tuple[list[int], list[int]]:
        """(failed, recorded) iterations per run: non-zero exit or timed out."""
        failed = [
            sum(
                1
                for i, code in enumerate(r.exit_codes)
                if code != 0 or (i < len(r.timed_out) and r.timed_out[i])
            )
            for r in self.runs
        ]
        return failed, [len(r.exit_codes) for r in self.runs]

    def exit_outcomes(self) -> dict[str, int]:
        """How iterations ended, over all runs: ``{"exit 0": 247, "exit 3": 2, ...}``."""
        out: dict[str, int] = {}
        for r in self.runs:
            for i, code in enumerate(r.exit_codes):
                late = i < len(r.timed_out) and r.timed_out[i]
                label = "timed out" if late else f"exit {code}" if code >= 0 else f"signal {-code}"
                out[label] = out.get(label, 0) + 1
        return dict(sorted(out.items()))

    def liveness_totals(self) -> tuple[int, int]:
        """(failed, checked) liveness checks over all runs."""
        failed, checked = self.liveness_per_run()
        return sum(failed), sum(checked)

    def probe_status(self, kind: str, name: str) -> ProbeStatus | None:
        for p in self.probes:
            if p.kind == kind and p.name == name:
                return p
        return None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "format": FORMAT_NAME,
            "schema_version": self.schema_version,
            "regress_version": self.regress_version,
            "created_utc": self.created_utc,
            "complete": self.complete,
            "requested_runs": self.requested_runs,
            "kernel": asdict(self.kernel),
            "machine": asdict(self.machine),
            "bcc_version": self.bcc_version,
            "tracer": asdict(self.tracer),
            "workload": asdict(self.workload),
            "probes": [asdict(p) for p in self.probes],
            # Field by field, not ``asdict``: its deep copy of every count table was half
            # the cost of saving a capture after each run (the document is only dumped).
            "runs": [{f.name: getattr(r, f.name) for f in fields(Run)} for r in self.runs],
            "notes": list(self.notes),
        }
        return doc


def canonical_json(value: Any) -> str:
    """Stable JSON text for hashing (sorted keys, no whitespace)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_of(value: Any) -> str:
    data = value if isinstance(value, bytes) else canonical_json(value).encode()
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- writing


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` without ever destroying what is there.

    A regular file (or a new one) is replaced atomically: a crash leaves the old or the
    new file. A character device or FIFO the user named is written *through*, never
    replaced; so is anything under /dev or /proc (``-o /dev/stdout`` streams into
    whatever stdout is, even a file the shell redirected it to). A symbolic link is
    followed to its target, which gets the same treatment (the link itself stays).
    Directories, block devices and sockets are refused. Missing parent directories are
    created only inside regress's own ``reports/``; elsewhere a missing directory is an
    error (a typo must not make a tree).
    """
    path = Path(path)
    shown = clip(path)
    target = path
    if str(path).startswith(("/dev/", "/proc/")) and path.exists():
        # /dev/stdout, /dev/fd/N, /proc/self/fd/N: the caller's open file, whatever it
        # is (terminal, pipe, or a file the shell redirected): stream into it.
        _write_through(path, data, shown)
        return
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if not target.parent.is_dir():
            raise InputError(f"cannot write {shown}: it is a link to a missing directory")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise InputError(f"cannot write {shown}: {exc.strerror or exc}") from None
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
            _write_through(target, data, shown)
            return
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise InputError(f"cannot write {shown}: it is {kind}; not replaced")
    _ensure_parent(target, shown)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise InputError(f"cannot write {shown}: {exc.strerror or exc}") from None
    try:
        # mkstemp creates 0600; give the file the mode open() would (0666 & ~umask) so
        # captures and reports stay shareable.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):  # disk full, path became a directory, ...
            raise InputError(f"cannot write {shown}: {exc.strerror or exc}") from None
        raise


def _write_through(target: Path, data: bytes, shown: str) -> None:
    """Write into an existing device or FIFO (no truncation, no replacement)."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND)  # a redirected file: at its end
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    except OSError as exc:
        raise InputError(f"cannot write {shown}: {exc.strerror or exc}") from None


def _ensure_parent(target: Path, shown: str) -> None:
    """The parent directory exists, or is created when it lies inside ``reports/``."""
    parent = target.parent
    if parent.is_dir():
        return
    if parent.exists():
        raise InputError(f"cannot write {shown}: {clip(parent)} is not a directory")
    reports = (Path.cwd() / REPORTS_DIR).resolve()
    inside = Path(os.path.abspath(parent))
    if inside == reports or reports in inside.parents:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot write {shown}: {exc.strerror or exc}") from None
        return
    raise InputError(
        f"cannot write {shown}: directory {clip(parent)} does not exist",
        hint="create it first; regress only creates directories inside reports/",
    )


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def dumps_capture(capture: Capture | Mapping[str, Any], *, gzipped: bool = False) -> bytes:
    doc = capture.to_dict() if isinstance(capture, Capture) else dict(capture)
    # Compact: with ``indent`` the json module falls back to its pure-Python encoder, 4x
    # slower, and a capture is saved after every run (in a TCG guest, seconds each).
    data = (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode()
    if gzipped:
        return gzip.compress(data, mtime=0)
    return data


def save_capture(capture: Capture, path: Path) -> None:
    """Atomically write a capture; gzip when the name ends in ``.gz``."""
    path = Path(path)
    atomic_write_bytes(path, dumps_capture(capture, gzipped=path.name.endswith(".gz")))


# --------------------------------------------------------------------------- reading


def read_maybe_gzipped(path: Path, *, what: str = "file") -> bytes:
    """File contents, gunzipped when they start with gzip's magic; bounded, one-line
    errors (``regress.model.safejson``)."""
    return safejson.read_capped(Path(path), what=what)


def read_json_document(path: Path, *, what: str = "file") -> Any:
    """Read JSON or gzipped JSON from ``path`` with bounds and one-line errors."""
    return safejson.loads(read_maybe_gzipped(path, what=what), str(path))


def migrate(doc: dict[str, Any], *, source: str = "capture") -> dict[str, Any]:
    """Bring ``doc`` up to ``SCHEMA_VERSION`` or refuse it with a reason."""
    version = doc.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise CaptureFormatError(f"{source}: missing or non-integer schema_version")
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"{source}: schema_version {version} is newer than this regress understands "
            f"({SCHEMA_VERSION})",
            hint="upgrade regress to read it",
        )
    if version < 1:
        raise CaptureFormatError(f"{source}: schema_version {version} is not a valid version")
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise CaptureFormatError(
                f"{source}: no migration from schema_version {version} to {version + 1}"
            )
        doc = step(dict(doc))
        version += 1
        doc["schema_version"] = version
    return doc


def load_capture(path: Path) -> Capture:
    """Read, migrate and validate a capture file."""
    doc = read_json_document(path, what="capture file")
    if not isinstance(doc, dict):
        raise CaptureFormatError(f"{path}: not a regress capture (top level is not an object)")
    if doc.get("format") != FORMAT_NAME:
        raise CaptureFormatError(
            f'{path}: not a regress capture (no "format": "{FORMAT_NAME}")',
            hint="bpftrace output is read by 'regress diff' directly",
        )
    return capture_from_dict(migrate(doc, source=str(path)), source=str(path))


class _Checker:
    """Strict, path-naming type checks for documents read from disk."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, msg: str) -> CaptureFormatError:
        return CaptureFormatError(f"{clip(self.source)}: {clip(where)}: {msg}")

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "expected an object")
        for key in value:
            if len(key) > MAX_KEY:  # a name (syscall, function, event); rows pad to it
                raise self.fail(f"{where}.{key}", f"key longer than {MAX_KEY} characters")
        return value

    def get(self, d: Mapping[str, Any], key: str, where: str) -> Any:
        if key not in d:
            raise self.fail(f"{where}.{key}" if where else key, "missing")
        return d[key]

    def str_(self, value: Any, where: str, *, optional: bool = False) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self.fail(where, "expected a string")
        return value

    def str_map(self, value: Any, where: str) -> dict[str, str] | None:
        """An optional object of strings (``null`` stays None)."""
        if value is None:
            return None
        return {str(a): self.str_(b, f"{where}.{a}") for a, b in self.obj(value, where).items()}

    def list_(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, "expected a list")
        return value

    def int_(self, value: Any, where: str, *, optional: bool = False, minimum: int = 0) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, "expected an integer")
        if value < minimum:
            raise self.fail(where, f"expected an integer >= {minimum}")
        if value > MAX_COUNT:
            raise self.fail(where, "expected an integer below 2^53")
        return value

    def num(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, "expected a number")
        if not -MAX_COUNT <= value <= MAX_COUNT:
            raise self.fail(where, "number out of range")
        return float(value)

    def iterations(self, value: Any, where: str) -> int:
        n: int = self.int_(value, where, minimum=1)
        if n > MAX_ITERATIONS_PER_RUN:
            raise self.fail(where, f"expected at most {MAX_ITERATIONS_PER_RUN} iterations")
        return n

    def counts(self, value: Any, where: str) -> dict[str, int]:
        d = self.obj(value, where)
        for k, v in d.items():
            self.int_(v, f"{where}.{k}")
        return dict(d)

    def counts_by_name(self, value: Any, where: str) -> dict[str, dict[str, int]]:
        return {k: self.counts(v, f"{where}.{k}") for k, v in self.obj(value, where).items()}

    def nested_counts(
        self, value: Any, where: str, *, top: int = MAX_ERRNO
    ) -> dict[str, dict[str, int]]:
        """name -> integer key (errno 0..4095, or a log2 bucket 0..64 with ``top``) -> n."""
        d = self.obj(value, where)
        out: dict[str, dict[str, int]] = {}
        for k, v in d.items():
            inner = self.counts(v, f"{where}.{k}")
            for ik in inner:
                # digits only, bounded: int() of a 5000-digit key is slow and unbounded
                if not (ik.isascii() and ik.isdigit() and len(ik) <= 4 and int(ik) <= top):
                    raise self.fail(f"{where}.{k}.{ik}", f"expected an integer key 0..{top}")
            out[k] = inner
        return out

    def return_counts(self, value: Any, where: str) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name, inner in self.obj(value, where).items():
            counts = self.counts(inner, f"{where}.{name}")
            for cls in counts:
                if cls in ("0", RETURN_CLASS_OTHER):
                    continue
                try:
                    ok = -MAX_ERRNO <= int(cls) < 0
                except ValueError:
                    ok = False
                if not ok:
                    raise self.fail(f"{where}.{name}.{cls}", 'expected "0", "-<errno>" or "other"')
            out[name] = counts
        return out

    def origin_counts(self, value: Any, where: str) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name, inner in self.obj(value, where).items():
            counts = self.counts(inner, f"{where}.{name}")
            for sub in counts:
                if origin_parts(sub) is None:
                    raise self.fail(f"{where}.{name}.{sub}", 'expected "<errno>@<function>"')
            out[name] = counts
        return out

    def paths(self, value: Any, where: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, frames in self.obj(value, where).items():
            if not isinstance(frames, list) or not all(isinstance(f, str) for f in frames):
                raise self.fail(f"{where}.{key}", "expected a list of function names")
            out[key] = list(frames)
        return out

    def series(self, value: Any, where: str) -> Series | None:
        if value is None:
            return None
        out: Series = {}
        for kind, names in self.obj(value, where).items():
            out[kind] = {}
            for name, subs in self.obj(names, f"{where}.{kind}").items():
                out[kind][name] = {}
                for sub, values in self.obj(subs, f"{where}.{kind}.{name}").items():
                    at = f"{where}.{kind}.{name}.{sub}"
                    if not isinstance(values, list):
                        raise self.fail(at, "expected a list of counts")
                    for v in values:
                        self.int_(v, at)
                    out[kind][name][sub] = list(values)
        return out


def capture_from_dict(doc: dict[str, Any], *, source: str = "capture") -> Capture:
    c = _Checker(source)
    k = c.obj(c.get(doc, "kernel", ""), "kernel")
    kernel = KernelInfo(
        release=c.str_(c.get(k, "release", "kernel"), "kernel.release"),
        version=c.str_(c.get(k, "version", "kernel"), "kernel.version"),
        cmdline=c.str_(c.get(k, "cmdline", "kernel"), "kernel.cmdline"),
        config_hash=c.str_(k.get("config_hash"), "kernel.config_hash", optional=True),
        config=c.str_map(k.get("config"), "kernel.config"),
        headers=c.str_(k.get("headers"), "kernel.headers", optional=True),
        tainted=c.int_(k.get("tainted"), "kernel.tainted", optional=True),
        label=c.str_(k.get("label"), "kernel.label", optional=True),
        build=c.str_map(k.get("build"), "kernel.build"),
        out_of_tree_modules=(
            [
                c.str_(x, "kernel.out_of_tree_modules[]")
                for x in c.list_(k["out_of_tree_modules"], "kernel.out_of_tree_modules")
            ]
            if k.get("out_of_tree_modules") is not None
            else None
        ),
    )
    m = c.obj(c.get(doc, "machine", ""), "machine")
    machine = MachineInfo(
        backend=c.str_(c.get(m, "backend", "machine"), "machine.backend"),
        arch=c.str_(c.get(m, "arch", "machine"), "machine.arch"),
        cpus=c.int_(c.get(m, "cpus", "machine"), "machine.cpus"),
        mem_mb=c.int_(c.get(m, "mem_mb", "machine"), "machine.mem_mb"),
        accel=c.str_(m.get("accel"), "machine.accel", optional=True),
        hostname=c.str_(m.get("hostname", ""), "machine.hostname"),
    )
    t = c.obj(c.get(doc, "tracer", ""), "tracer")
    tracer = TracerInfo(
        fingerprint=c.str_(c.get(t, "fingerprint", "tracer"), "tracer.fingerprint"),
        options=c.obj(c.get(t, "options", "tracer"), "tracer.options"),
        bpf_text=c.str_(c.get(t, "bpf_text", "tracer"), "tracer.bpf_text"),
    )
    w = c.obj(c.get(doc, "workload", ""), "workload")
    workload = WorkloadInfo(
        name=c.str_(c.get(w, "name", "workload"), "workload.name"),
        hash=c.str_(c.get(w, "hash", "workload"), "workload.hash"),
        spec=c.obj(c.get(w, "spec", "workload"), "workload.spec"),
    )
    probes: list[ProbeStatus] = []
    raw_probes = c.get(doc, "probes", "")
    if not isinstance(raw_probes, list):
        raise c.fail("probes", "expected a list")
    for i, p in enumerate(raw_probes):
        where = f"probes[{i}]"
        p = c.obj(p, where)
        kind = c.str_(c.get(p, "kind", where), f"{where}.kind")
        status = c.str_(c.get(p, "status", where), f"{where}.status")
        if kind not in PROBE_KINDS:
            raise c.fail(f"{where}.kind", f"unknown probe kind {kind!r}")
        if status not in PROBE_STATES:
            raise c.fail(f"{where}.status", f"unknown probe status {status!r}")
        probes.append(
            ProbeStatus(
                kind=kind,
                name=c.str_(c.get(p, "name", where), f"{where}.name"),
                status=status,
                reason=c.str_(p.get("reason"), f"{where}.reason", optional=True),
            )
        )
    runs: list[Run] = []
    raw_runs = c.get(doc, "runs", "")
    if not isinstance(raw_runs, list):
        raise c.fail("runs", "expected a list")
    for i, r in enumerate(raw_runs):
        where = f"runs[{i}]"
        r = c.obj(r, where)
        liveness = r.get("liveness", [])
        if not isinstance(liveness, list) or any(
            x is not None and not isinstance(x, bool) for x in liveness
        ):
            raise c.fail(f"{where}.liveness", "expected a list of true/false/null")
        exit_codes = r.get("exit_codes", [])
        if not isinstance(exit_codes, list):
            raise c.fail(f"{where}.exit_codes", "expected a list of integers")
        for j, code in enumerate(exit_codes):
            c.int_(code, f"{where}.exit_codes[{j}]", minimum=-255)
        timed_out = r.get("timed_out", [])
        if not isinstance(timed_out, list) or not all(isinstance(x, bool) for x in timed_out):
            raise c.fail(f"{where}.timed_out", "expected a list of true/false")
        if len(timed_out) != len(exit_codes):
            raise c.fail(f"{where}.timed_out", "expected one entry per exit code")
        runs.append(
            Run(
                index=c.int_(c.get(r, "index", where), f"{where}.index"),
                iterations=c.iterations(c.get(r, "iterations", where), f"{where}.iterations"),
                wall_s=c.num(c.get(r, "wall_s", where), f"{where}.wall_s"),
                started_utc=c.str_(r.get("started_utc", ""), f"{where}.started_utc"),
                syscalls=c.nested_counts(r.get("syscalls", {}), f"{where}.syscalls"),
                retvals=c.nested_counts(
                    r.get("retvals", {}), f"{where}.retvals", top=MAX_RETVAL_BUCKET
                ),
                tracepoints=c.counts(r.get("tracepoints", {}), f"{where}.tracepoints"),
                functions=c.counts(r.get("functions", {}), f"{where}.functions"),
                maps=c.counts(c.get(r, "maps", where), f"{where}.maps"),
                funcrets=c.return_counts(r.get("funcrets", {}), f"{where}.funcrets"),
                origins=c.origin_counts(r.get("origins", {}), f"{where}.origins"),
                origin_stacks=c.paths(r.get("origin_stacks", {}), f"{where}.origin_stacks"),
                fn_syscalls=c.counts_by_name(r.get("fn_syscalls", {}), f"{where}.fn_syscalls"),
                liveness=list(liveness),
                exit_codes=list(exit_codes),
                timed_out=list(timed_out),
                lost=c.counts(r.get("lost", {}), f"{where}.lost"),
                boot=c.int_(r.get("boot"), f"{where}.boot", optional=True),
                per_iteration=c.series(r.get("per_iteration"), f"{where}.per_iteration"),
            )
        )
        problem = runs[-1].series_problem()
        if problem:
            raise c.fail(f"{where}.per_iteration", problem)
    requested = c.int_(doc.get("requested_runs", len(runs)), "requested_runs")
    notes = doc.get("notes", [])
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise c.fail("notes", "expected a list of strings")
    return Capture(
        kernel=kernel,
        machine=machine,
        tracer=tracer,
        workload=workload,
        bcc_version=c.str_(doc.get("bcc_version"), "bcc_version", optional=True),
        requested_runs=requested,
        probes=probes,
        runs=runs,
        notes=list(notes),
        regress_version=c.str_(doc.get("regress_version", ""), "regress_version"),
        created_utc=c.str_(doc.get("created_utc", ""), "created_utc"),
        schema_version=int(doc["schema_version"]),
    )

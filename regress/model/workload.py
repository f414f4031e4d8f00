"""Workload specs (``workloads/*.toml``): what to run, how often, how to judge it.

A spec is validated strictly: unknown keys and wrong types are errors that name
the file and the key, because a typo silently ignored would make two captures
"comparable" while measuring different things.

Keys (only ``name`` and ``command`` are required)::

    name = "ps-loop"                 # printable, <= 100 chars
    description = "..."
    command = "ps -e"                # shell string (run by /bin/sh -c) ...
    command = ["ps", "-e"]           # ... or an argv list
    iterations = 50                  # traced iterations per run
    timeout_s = 10.0                 # per iteration
    setup = "..."                    # shell, once per run before the iterations, untraced
    teardown = "..."                 # shell, once per run after, untraced, always runs
    liveness = "..."                 # shell, after each iteration, untraced; exit 0 = behaved
    files = ["helper.sh"]            # auxiliary files next to the spec, copied to the workdir
    functions = ["find_ge_pid"]      # default kernel function probes (VM runs)
    function_returns = false         # also count what they return (kretprobes; costs more)
    tracepoints = ["sched:sched_process_fork"]  # default tracepoint patterns
    [env]
    NAME = "value"

At run time every command sees ``REGRESS_WORKDIR`` (a fresh directory per run
holding the auxiliary files; also the cwd), ``REGRESS_ITERATION`` (0-based)
and ``REGRESS_OUT`` (the last iteration's stdout file, for the liveness check).

Stdlib-only: this module also runs inside the guest VM.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regress.errors import WorkloadError

WORKLOADS_DIR_ENV = "REGRESS_WORKLOADS_DIR"
MAX_ITERATIONS = 1_000_000
MAX_NAME = 100

FUNCTION_PATTERN_RE = re.compile(r"\A[A-Za-z_*?\[][A-Za-z0-9_.*?\[\]-]{0,127}\Z")
TRACEPOINT_PATTERN_RE = re.compile(r"\A[A-Za-z0-9_*?]{1,64}:[A-Za-z0-9_*?]{1,128}\Z")
ENV_NAME_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*\Z")
FILE_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")

_ALLOWED = {
    "name": "a string",
    "description": "a string",
    "command": "a string or a list of strings",
    "iterations": "a positive integer",
    "timeout_s": "a positive number",
    "setup": "a string",
    "teardown": "a string",
    "liveness": "a string",
    "files": "a list of file names",
    "functions": "a list of function patterns",
    "function_returns": "true or false",
    "tracepoints": "a list of 'category:event' patterns",
    "env": "a table of strings",
}


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    command: str | tuple[str, ...]
    description: str = ""
    iterations: int = 50
    timeout_s: float = 30.0
    setup: str | None = None
    teardown: str | None = None
    liveness: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)  # name -> content
    functions: tuple[str, ...] = ()
    tracepoints: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    source: str = "<memory>"
    function_returns: bool = False

    def argv(self) -> list[str]:
        """The command as an argument vector (shell strings go through /bin/sh -c)."""
        if isinstance(self.command, str):
            return ["/bin/sh", "-c", self.command]
        return list(self.command)

    def to_dict(self) -> dict[str, Any]:
        """Everything that defines behaviour; file contents appear as hashes.

        ``function_returns`` appears only when on, so specs written before it existed
        keep their hash (and their captures stay comparable)."""
        doc: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "command": self.command if isinstance(self.command, str) else list(self.command),
            "iterations": self.iterations,
            "timeout_s": self.timeout_s,
            "setup": self.setup,
            "teardown": self.teardown,
            "liveness": self.liveness,
            "files": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(self.files.items())},
            "functions": list(self.functions),
            "tracepoints": list(self.tracepoints),
            "env": dict(sorted(self.env.items())),
        }
        if self.function_returns:
            doc["function_returns"] = True
        return doc

    def spec_hash(self) -> str:
        from regress.model.capture import sha256_of

        return sha256_of(self.to_dict())

    def with_function_returns(self) -> WorkloadSpec:
        from dataclasses import replace

        return replace(self, function_returns=True)

    def with_iterations(self, iterations: int) -> WorkloadSpec:
        from dataclasses import replace

        _check_iterations(iterations, self.source, "iterations")
        return replace(self, iterations=iterations)


def _check_iterations(value: Any, source: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ITERATIONS:
        raise WorkloadError(f"{source}: {key}: expected an integer from 1 to {MAX_ITERATIONS}")
    return value


def _str_list(
    value: Any, source: str, key: str, pattern: re.Pattern[str] | None
) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise WorkloadError(f"{source}: {key}: expected {_ALLOWED[key]}")
    if pattern is not None:
        for x in value:
            if not pattern.match(x):
                raise WorkloadError(f"{source}: {key}: invalid entry {x!r}")
    return tuple(value)


def _printable(value: str, source: str, key: str, *, limit: int | None = None) -> str:
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in value) or "\x7f" in value:
        raise WorkloadError(f"{source}: {key}: control characters are not allowed")
    if limit is not None and len(value) > limit:
        raise WorkloadError(f"{source}: {key}: longer than {limit} characters")
    return value


def spec_from_dict(data: dict[str, Any], *, source: str, base_dir: Path | None) -> WorkloadSpec:
    """Validate a parsed spec; ``base_dir`` resolves ``files`` (None: files not allowed)."""
    for key in data:
        if key not in _ALLOWED:
            raise WorkloadError(
                f"{source}: unknown key {key!r}",
                hint="allowed: " + ", ".join(sorted(_ALLOWED)),
            )
    for required in ("name", "command"):
        if required not in data:
            raise WorkloadError(f"{source}: missing required key {required!r}")

    def get_str(key: str) -> str | None:
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, str):
            raise WorkloadError(f"{source}: {key}: expected {_ALLOWED[key]}")
        return _printable(value, source, key)

    name = get_str("name") or ""
    name = name.strip()
    if not name or len(name) > MAX_NAME or "\n" in name:
        raise WorkloadError(f"{source}: name: expected one line of 1 to {MAX_NAME} characters")

    raw_cmd = data["command"]
    command: str | tuple[str, ...]
    if isinstance(raw_cmd, str):
        if not raw_cmd.strip():
            raise WorkloadError(f"{source}: command: is empty")
        command = _printable(raw_cmd, source, "command")
    elif isinstance(raw_cmd, list) and raw_cmd and all(isinstance(x, str) for x in raw_cmd):
        command = tuple(_printable(x, source, "command") for x in raw_cmd)
    else:
        raise WorkloadError(f"{source}: command: expected {_ALLOWED['command']}")

    iterations = _check_iterations(data.get("iterations", 50), source, "iterations")
    timeout = data.get("timeout_s", 30.0)
    bad_type = isinstance(timeout, bool) or not isinstance(timeout, int | float)
    if bad_type or not 0 < timeout <= 86400:
        raise WorkloadError(f"{source}: timeout_s: expected a number of seconds from 0 to 86400")

    files: dict[str, bytes] = {}
    if "files" in data:
        names = _str_list(data["files"], source, "files", FILE_NAME_RE)
        if names and base_dir is None:
            raise WorkloadError(f"{source}: files: not allowed for a spec without a directory")
        for fname in names:
            path = (base_dir or Path(".")) / fname
            try:
                files[fname] = path.read_bytes()
            except OSError:
                raise WorkloadError(
                    f"{source}: files: cannot read {fname!r} next to the spec"
                ) from None

    env: dict[str, str] = {}
    if "env" in data:
        raw_env = data["env"]
        if not isinstance(raw_env, dict):
            raise WorkloadError(f"{source}: env: expected {_ALLOWED['env']}")
        for k, v in raw_env.items():
            if not ENV_NAME_RE.match(k):
                raise WorkloadError(f"{source}: env.{k}: invalid variable name")
            if k.startswith("REGRESS_"):
                raise WorkloadError(f"{source}: env.{k}: REGRESS_* variables are reserved")
            if not isinstance(v, str):
                raise WorkloadError(f"{source}: env.{k}: expected a string")
            env[k] = _printable(v, source, f"env.{k}")

    return WorkloadSpec(
        name=name,
        command=command,
        description=get_str("description") or "",
        iterations=iterations,
        timeout_s=float(timeout),
        setup=get_str("setup"),
        teardown=get_str("teardown"),
        liveness=get_str("liveness"),
        files=files,
        functions=_str_list(data.get("functions", []), source, "functions", FUNCTION_PATTERN_RE),
        tracepoints=_str_list(
            data.get("tracepoints", []), source, "tracepoints", TRACEPOINT_PATTERN_RE
        ),
        env=env,
        source=source,
        function_returns=_bool(data.get("function_returns", False), source, "function_returns"),
    )


def _bool(value: Any, source: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise WorkloadError(f"{source}: {key}: expected {_ALLOWED[key]}")
    return value


def load_spec(path: Path) -> WorkloadSpec:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WorkloadError(f"{path}: no such workload file") from None
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise WorkloadError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise WorkloadError(f"{path}: malformed TOML: {exc}") from None
    return spec_from_dict(data, source=str(path), base_dir=path.parent)


def builtin_dir() -> Path:
    """The directory of built-in specs: $REGRESS_WORKLOADS_DIR or the repo's workloads/."""
    env = os.environ.get(WORKLOADS_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "workloads"


def builtin_names() -> list[str]:
    d = builtin_dir()
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


def resolve_workload(name_or_path: str) -> WorkloadSpec:
    """A built-in name (``ps-loop``) or a path to a ``.toml`` spec."""
    candidate = Path(name_or_path)
    if name_or_path.endswith(".toml") or os.sep in name_or_path or candidate.is_file():
        return load_spec(candidate)
    path = builtin_dir() / f"{name_or_path}.toml"
    if path.is_file():
        return load_spec(path)
    names = builtin_names()
    raise WorkloadError(
        f"unknown workload {name_or_path!r}",
        hint=("built-ins: " + ", ".join(names)) if names else "no built-in workloads found",
    )

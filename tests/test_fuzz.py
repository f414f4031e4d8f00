"""Property-based fuzzing of every reader, through the CLI entry point, in-process.

Hostile captures and bpftrace imports are built from valid ones by structural mutation
(a leaf replaced by an extreme number, a huge or deeply nested value, text with lone
surrogates, control characters or HTML/JS; a key deleted or renamed; a container's type
changed), serialised as JSON (sometimes gzipped), and run through ``validate``, ``show``,
``diff`` and ``report``. Whatever the input: the exit code is 0, 1 or 2 (never 70, an
internal error), stderr is at most one bounded line, the HTML report carries no
unescaped payload, and each example finishes within hypothesis's deadline.

The default suite runs a fixed-seed profile (80 inputs, ~20 s); ``-m slow`` runs >= 10,000 inputs.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import random
import resource
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from regress.cli.main import run

DATA = Path(__file__).resolve().parent / "testdata"
BASE = DATA / "report" / "ps-loop-old.json"
OTHER = DATA / "report" / "ps-loop-new.json"
PAYLOAD = "<script>alert(1)</script>"
HOSTILE_TEXT = [
    PAYLOAD,
    "\ud800",  # a lone surrogate
    "a\udfffb",
    "\x00\x1b[31mred\x07",
    "x" * 5000,
    "../../../../etc/passwd",
    "\u202etxt.exe",
    "",
]
HOSTILE_NUMBERS: list[Any] = [
    -1,
    0,
    2**53,
    2**63,
    10**400,
    1e308,
    -1e308,
    0.5,
    True,
    None,
    20000,
]
DEEP = "DEEP-NESTING-MARKER"


def _base_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(BASE.read_text())
    return doc


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a node (for picking a mutation site)."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):  # a few items are enough
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def mutate(doc: dict[str, Any], rng: random.Random, n: int) -> Any:
    """``n`` structural mutations of a capture document."""
    for _ in range(n):
        paths = _paths(doc)
        path = rng.choice(paths)
        kind = rng.randrange(12)  # (deep nesting, kind 4, refuses the whole document)
        if kind == 0:
            doc = _set(doc, path, rng.choice(HOSTILE_NUMBERS))
        elif kind == 1:
            doc = _set(doc, path, rng.choice(HOSTILE_TEXT))
        elif kind == 2 and path:  # delete a key or item
            parent = doc
            for key in path[:-1]:
                parent = parent[key]
            with contextlib.suppress(KeyError, IndexError, TypeError):
                del parent[path[-1]]
        elif kind == 3:  # a hostile key next to the existing ones
            node = doc
            for key in path:
                node = node[key]
            if isinstance(node, dict):
                node[rng.choice(HOSTILE_TEXT) or "k"] = rng.choice(HOSTILE_NUMBERS)
        elif kind == 4:
            doc = _set(doc, path, DEEP)
        elif kind == 5:  # a container's type changes
            doc = _set(doc, path, rng.choice([[], {}, [1, 2], {"a": 1}, "text"]))
        elif kind == 6:
            doc = _set(doc, path, {str(i): i for i in range(rng.choice([10, 3000]))})
        elif kind in (7, 8, 9):  # a number somewhere a count is expected
            doc = _set(doc, path, rng.choice(HOSTILE_NUMBERS[:7]))
        else:
            doc = _set(doc, path, rng.choice(HOSTILE_NUMBERS + HOSTILE_TEXT))
    return doc


def serialise(doc: Any, rng: random.Random) -> bytes:
    text = json.dumps(doc, ensure_ascii=True)
    text = text.replace(json.dumps(DEEP), "[" * 3000 + "1" + "]" * 3000)
    data = text.encode()
    return gzip.compress(data, mtime=0) if rng.random() < 0.2 else data


def bpftrace_text(rng: random.Random) -> bytes:
    data: dict[str, Any] = {"257,2": 408, "0,0": 915}
    for _ in range(rng.randrange(1, 4)):
        data[rng.choice(["1,0", "x,y", "9" * 300 + ",0", "1," + "9" * 50, PAYLOAD])] = rng.choice(
            HOSTILE_NUMBERS
        )
    recs = [
        {"type": "attached_probes", "data": {"probes": 1}},
        {"type": "map", "data": {rng.choice(["@", PAYLOAD, "@x"]): data}},
    ]
    return "\n".join(json.dumps(r) for r in recs).encode() + b"\n"


def call(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = run(argv)
    return rc, out.getvalue(), err.getvalue()


def check(rc: int, err: str, argv: list[str]) -> None:
    assert rc in (0, 1, 2), (argv, rc, err[-2000:])
    lines = [x for x in err.splitlines() if x.strip()]
    if rc == 2:
        assert len(lines) == 1, (argv, err[-2000:])
    assert all(len(x) <= 500 for x in lines), (argv, max(map(len, lines)))


def exercise(tmp: Path, data: bytes, name: str) -> None:
    path = tmp / name
    path.write_bytes(data)
    for argv in (
        ["validate", str(path)],
        ["show", str(path)],
        ["diff", str(path), str(OTHER)],
        ["report", str(path), str(OTHER), "-o", str(tmp / "r.html")],
    ):
        rc, _, err = call(argv)
        check(rc, err, argv)
        if argv[0] == "report" and rc == 0:
            html = (tmp / "r.html").read_text()
            assert PAYLOAD not in html, "unescaped markup in the HTML report"
        if rc == 2 and argv[0] in ("validate", "show"):
            break  # the other commands would refuse the same input the same way


MAX_RSS_MB = 2048  # the whole fuzzing process, after every example


def _one(tmp_path_factory: pytest.TempPathFactory, seed_value: int, n: int) -> None:
    rng = random.Random(seed_value)
    tmp = tmp_path_factory.mktemp("fuzz")
    if rng.random() < 0.15:
        exercise(tmp, bpftrace_text(rng), "b.json")
    else:
        exercise(tmp, serialise(mutate(_base_doc(), rng, n), rng), "c.json")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert peak_mb < MAX_RSS_MB, f"memory blew up: peak RSS {peak_mb:.0f} MB"


COMMON = dict(
    deadline=20_000,  # ms per example: "no hang" is a property too
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


@seed(20261130)
@settings(max_examples=80, **COMMON)  # type: ignore[arg-type]
@given(seed_value=st.integers(0, 2**32), n=st.integers(1, 4))
def test_hostile_inputs_fixed_profile(
    tmp_path_factory: pytest.TempPathFactory, seed_value: int, n: int
) -> None:
    _one(tmp_path_factory, seed_value, n)


@pytest.mark.slow
@settings(max_examples=10_000, **COMMON)  # type: ignore[arg-type]
@given(seed_value=st.integers(0, 2**32), n=st.integers(1, 6))
def test_hostile_inputs_long_profile(
    tmp_path_factory: pytest.TempPathFactory, seed_value: int, n: int
) -> None:
    _one(tmp_path_factory, seed_value, n)

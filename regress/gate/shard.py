"""A CI run split over machines: ``regress ci --shard I/N`` and ``regress merge``.

regress does not schedule anything itself: a CI matrix (GitHub Actions, GitLab) runs N
jobs, each ``regress ci ... --shard I/N``, and one job ``regress merge`` over their
output directories. The unit of work is one workload's two kernels (a capture pair,
two VMs in parallel); units are assigned to shards by expected cost (runs x iterations
x the spec's timeout per iteration, longest first onto the least loaded shard, ties by
name), so the same inputs always give the same slices. A shard captures only -- no
diff, no verdict -- and writes ``shard.json``; the merge checks the shards belong
together (same kernels, workloads, runs, VM shape, thresholds and regress version;
every shard 1..N present once), combines captures run by run when a workload's side
comes from several shards (same tracer fingerprint, workload, machine shape and regress
version, or refused with the reason), and then computes every verdict once, with the
same code as an unsharded run: same summary, reports, index and JUnit.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regress
from regress.errors import InputError, UsageError
from regress.model.capture import Capture, atomic_write_text, load_capture, save_capture
from regress.model.workload import resolve_workload

SHARD_FORMAT = "regress-ci-shard"
SHARD_VERSION = 1
SHARD_RE = re.compile(r"\A(\d{1,4})/(\d{1,4})\Z")


def parse_shard(text: str) -> tuple[int, int]:
    """``2/3`` -> (2, 3); 1-based, refused unless 1 <= I <= N."""
    m = SHARD_RE.match(text.strip())
    if m is None:
        raise UsageError(f"--shard {text[:20]!r}: expected I/N, e.g. 2/3")
    i, n = int(m.group(1)), int(m.group(2))
    if not 1 <= i <= n:
        raise UsageError(f"--shard {text}: I must be between 1 and N")
    return i, n


@dataclass(frozen=True)
class Unit:
    """One workload's capture pair (both kernels) and what it is expected to cost."""

    workload: str
    cost: float


def units(workloads: list[str], runs: int, iterations: int | None) -> list[Unit]:
    """The work of a CI run: one unit per workload, cost from its spec."""
    out = []
    for w in workloads:
        spec = resolve_workload(w)
        its = iterations or spec.iterations
        per_iteration = min(spec.timeout_s or 30.0, 30.0)  # a bound, not a measurement
        out.append(Unit(w, float(runs * its) * per_iteration + 60.0))  # + boot
    return out


def assign(work: list[Unit], shards: int) -> list[list[Unit]]:
    """Longest-processing-time-first: deterministic and balanced by expected cost."""
    loads = [0.0] * shards
    slices: list[list[Unit]] = [[] for _ in range(shards)]
    for u in sorted(work, key=lambda u: (-u.cost, u.workload)):
        target = min(range(shards), key=lambda i: (loads[i], i))
        slices[target].append(u)
        loads[target] += u.cost
    return slices


def slice_of(workloads: list[str], runs: int, iterations: int | None, i: int, n: int) -> list[str]:
    """Shard ``i`` of ``n``'s workloads, in the command line's order."""
    mine = {u.workload for u in assign(units(workloads, runs, iterations), n)[i - 1]}
    return [w for w in workloads if w in mine]


def manifest(
    *,
    shard: tuple[int, int],
    mine: list[str],
    workloads: list[str],
    old: str,
    new: str,
    runs: int,
    iterations: int | None,
    vm_shape: dict[str, Any],
    thresholds: dict[str, Any],
    fail_on: str,
    captures: dict[str, dict[str, str]],
    errors: dict[str, str],
) -> dict[str, Any]:
    return {
        "format": SHARD_FORMAT,
        "format_version": SHARD_VERSION,
        "regress_version": regress.__version__,
        "shard": shard[0],
        "of": shard[1],
        "workloads": list(workloads),
        "mine": list(mine),
        "old": old,
        "new": new,
        "runs": runs,
        "iterations": iterations,
        "vm_shape": vm_shape,
        "thresholds": thresholds,
        "fail_on": fail_on,
        "captures": captures,  # workload -> side -> path relative to the shard directory
        "errors": errors,  # workload -> why it could not be captured
    }


def write_manifest(out_dir: Path, doc: dict[str, Any]) -> Path:
    path = out_dir / "shard.json"
    atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


@dataclass
class Shard:
    path: Path
    doc: dict[str, Any]


MUST_AGREE = ("of", "workloads", "old", "new", "runs", "iterations", "vm_shape", "thresholds")


def read_shards(dirs: list[Path]) -> list[Shard]:
    """Shard outputs that belong to one CI run, or a one-line refusal saying why not."""
    shards: list[Shard] = []
    for d in dirs:
        path = d / "shard.json"
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a shard manifest ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != SHARD_FORMAT:
            raise InputError(f"{path}: not a regress ci shard manifest")
        shards.append(Shard(d, doc))
    first = shards[0].doc
    for s in shards[1:]:
        for key in (*MUST_AGREE, "regress_version"):
            if s.doc.get(key) != first.get(key):
                raise InputError(
                    f"{s.path} and {shards[0].path} are shards of different CI runs: "
                    f"{key} differs ({str(s.doc.get(key))[:60]} vs {str(first.get(key))[:60]})"
                )
    seen = sorted(int(s.doc["shard"]) for s in shards)
    want = list(range(1, int(first["of"]) + 1))
    if seen != want:
        missing = sorted(set(want) - set(seen))
        dup = sorted({i for i in seen if seen.count(i) > 1})
        raise InputError(
            f"shards {seen} of {first['of']}: "
            + (f"missing {', '.join(map(str, missing))}" if missing else "")
            + ("; " if missing and dup else "")
            + (f"given twice: {', '.join(map(str, dup))}" if dup else "")
        )
    return sorted(shards, key=lambda s: int(s.doc["shard"]))


def merge_runs(parts: list[tuple[Path, Capture]], what: str) -> Capture:
    """One capture from the same side's captures in several shards, run by run."""
    base_path, base = parts[0]
    runs = list(base.runs)
    for path, cap in parts[1:]:
        for field, a, b in (
            ("tracer fingerprint", base.tracer.fingerprint, cap.tracer.fingerprint),
            ("workload", base.workload.hash, cap.workload.hash),
            ("machine shape", base.machine.shape(), cap.machine.shape()),
            ("regress version", base.regress_version, cap.regress_version),
            ("kernel", base.kernel.identity, cap.kernel.identity),
        ):
            if a != b:
                raise InputError(f"{what}: {path} and {base_path} differ in {field}: not merged")
        runs += cap.runs
    runs = [dataclasses.replace(r, index=i) for i, r in enumerate(runs)]
    return dataclasses.replace(base, runs=runs, requested_runs=len(runs))


def gather(shards: list[Shard], out_dir: Path) -> tuple[dict[str, dict[str, Path]], dict[str, str]]:
    """Every workload's old/new capture under ``out_dir/<slug>/`` (merged run by run when
    a side came from several shards), and the workloads a shard could not capture."""
    from regress.gate.ci import workload_slug

    parts: dict[tuple[str, str], list[tuple[Path, Capture]]] = {}
    errors: dict[str, str] = {}
    for s in shards:
        for workload, sides in s.doc.get("captures", {}).items():
            for side, rel in sides.items():
                path = s.path / rel
                parts.setdefault((workload, side), []).append((path, load_capture(path)))
        for workload, why in s.doc.get("errors", {}).items():
            errors[workload] = f"shard {s.doc['shard']}/{s.doc['of']}: {why}"
    merged: dict[str, dict[str, Path]] = {}
    for (workload, side), caps in sorted(parts.items()):
        dest = out_dir / workload_slug(workload) / f"{side}.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        save_capture(merge_runs(caps, f"{workload} {side}"), dest)
        merged.setdefault(workload, {})[side] = dest
    return merged, errors

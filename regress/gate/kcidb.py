"""A CI comparison as KCIDB I/O JSON, for KernelCI's collector (``kcidb-submit``).

KCIDB's model is checkout -> build -> tests. regress maps the kernel under test (the NEW
side) to the checkout and its build (a packaged or own-built kernel: the package or
release is named, not a git commit regress does not know), and every workload to one
test ``regress.<workload>``: FAIL when the gate's policy trips, PASS otherwise, ERROR
when it could not be compared, with the regression rows summarised in ``comment`` and
``misc`` and, given a base URL where the artifacts will be published, links to each
workload's reports as output files. Built from ``summary.json`` (plain data), so the
KCIDB file, the index and the JUnit file cannot disagree. Validated in the tests with
the ``kcidb-io`` package (schema v5).
"""

from __future__ import annotations

import re
from typing import Any

KCIDB_VERSION = {"major": 5, "minor": 3}
ORIGIN_RE = re.compile(r"\A[a-z0-9_]{1,32}\Z")
_PATH_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def _path_part(name: str) -> str:
    """A KCIDB test-path component: letters, digits, _ and - only."""
    return _PATH_UNSAFE.sub("_", name.removesuffix(".toml").split("/")[-1]) or "workload"


def kcidb_doc(
    summary: dict[str, Any], *, origin: str = "regress", base_url: str | None = None
) -> dict[str, Any]:
    """KCIDB I/O data for a ``regress ci`` summary (``summary.json``)."""
    if not ORIGIN_RE.match(origin):
        raise ValueError(f"KCIDB origin {origin!r}: lowercase letters, digits and _ only")
    new, old = str(summary["new"]), str(summary["old"])
    run_id = f"{summary.get('created_utc', '')}:{old}..{new}"
    checkout_id = f"{origin}:{new}"
    build_id = f"{origin}:{new}:{summary.get('created_utc', '')}"
    tests = []
    for w in summary["workloads"]:
        status = "ERROR" if w["status"] == "error" else ("FAIL" if w["failed"] else "PASS")
        test: dict[str, Any] = {
            "id": f"{origin}:{run_id}:{w['slug']}",
            "build_id": build_id,
            "origin": origin,
            "path": f"regress.{_path_part(w['workload'])}",
            "status": status,
            "comment": f"{w['workload']} on {new} vs {old}: {w['message']}"[:1000],
            "misc": {
                "old_kernel": old,
                "significant": w["significant"],
                "regressions": w["regressions"],
                "keys_tested": w["keys_tested"],
                "top": [
                    {"key": t["key"], "class": t["class"], "q": t["q"], "summary": t["summary"]}
                    for t in w["top"]
                ],
            },
        }
        if base_url:
            base = base_url.rstrip("/")
            files = {**w.get("reports", {}), **w.get("captures", {})}
            test["output_files"] = [
                {"name": f"{kind}-{path.rsplit('/', 1)[-1]}", "url": f"{base}/{path}"}
                for kind, path in sorted(files.items())
            ]
            if "html" in w.get("reports", {}):
                test["log_url"] = f"{base}/{w['reports']['html']}"
        tests.append(test)
    return {
        "version": dict(KCIDB_VERSION),
        "checkouts": [
            {
                "id": checkout_id,
                "origin": origin,
                "tree_name": "debian" if new.startswith("debian:") else "custom",
                "comment": f"kernel under test {new}, compared with {old} by regress",
                "valid": True,
            }
        ],
        "builds": [
            {
                "id": build_id,
                "checkout_id": checkout_id,
                "origin": origin,
                "architecture": "x86_64",
                "config_name": new.split(":", 1)[-1][:100],
                "comment": f"{new} as booted by regress (a packaged or own-built kernel)",
                "status": "PASS",
            }
        ],
        "tests": tests,
    }

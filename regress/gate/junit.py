"""JUnit XML of a CI run: one test case per workload (+ the selftest), from ``summary.json``.

Built from the summary document (plain data) so the JUnit file, the index page and
``summary.json`` cannot disagree. ElementTree escapes every string.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from regress.report.format import fmt_p


def _pair_name(ref: str) -> str:
    # JUnit viewers split class names at dots: keep the kernels' dots out of it.
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in ref.split(":")[-1])


def _detail(w: dict[str, Any]) -> str:
    lines = [f"workload {w['workload']}: {w['status']}", w["message"]]
    for t in w["top"]:
        lines.append(f"  {t['summary']} (q={fmt_p(t['q'])})")
    aa = w.get("aa")
    if aa is not None:
        lines.append(
            f"A/A negative control ({aa['release']}, {aa['runs_a']} vs {aa['runs_b']} "
            f"runs): {w['aa_text']}"
        )
    for kind, path in sorted(w["reports"].items()):
        lines.append(f"report ({kind}): {path}")
    return "\n".join(lines)


def junit_xml(summary: dict[str, Any]) -> str:
    workloads: list[dict[str, Any]] = summary["workloads"]
    canary: dict[str, Any] | None = summary.get("selftest")
    failures = sum(1 for w in workloads if w["failed"] and w["status"] != "error")
    errors = sum(1 for w in workloads if w["status"] == "error")
    tests = len(workloads)
    if canary is not None:
        tests += 1
        errors += 1 if canary["error"] else 0
        failures += 1 if not canary["passed"] and not canary["error"] else 0
    old, new = summary["old"], summary["new"]
    suites = ET.Element(
        "testsuites",
        name="regress ci",
        tests=str(tests),
        failures=str(failures),
        errors=str(errors),
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"regress ci {old} -> {new}",
        tests=str(tests),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        timestamp=summary["created_utc"],
        time=f"{sum(w['wall_s'] for w in workloads):.1f}",
    )
    props = ET.SubElement(suite, "properties")
    for name in ("old", "new", "runs", "fail_on"):
        ET.SubElement(props, "property", name=name, value=str(summary[name]))
    classname = f"regress_ci.{_pair_name(old)}-vs-{_pair_name(new)}"
    if canary is not None:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=classname,
            name="selftest (injected fault)",
            time=f"{canary['wall_s']:.1f}",
        )
        if canary["error"]:
            ET.SubElement(case, "error", message=canary["message"], type="error")
        elif not canary["passed"]:
            ET.SubElement(case, "failure", message=canary["message"], type="canary-missed")
        ET.SubElement(
            case, "system-out"
        ).text = f"{canary['message']}\nreport: {canary['report'] or 'none'}"
    for w in workloads:
        case = ET.SubElement(
            suite, "testcase", classname=classname, name=w["workload"], time=f"{w['wall_s']:.1f}"
        )
        detail = _detail(w)
        if w["status"] == "error":
            ET.SubElement(case, "error", message=w["message"], type="error").text = detail
        elif w["failed"]:
            ET.SubElement(case, "failure", message=w["message"], type=w["status"]).text = detail
        ET.SubElement(case, "system-out").text = detail
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, "unicode") + "\n"

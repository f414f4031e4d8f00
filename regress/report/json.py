"""``DiffResult`` -> machine JSON (``regress diff --json``), format ``regress-diff`` v3.

Fields are the model's (``regress.model.result``): each divergence has ``kind``,
``name`` and ``sub`` plus its ``key`` and ``label``; NaN/inf become null. Keys are
sorted, the top level indented and one divergence per line, so the output is
byte-identical for identical input and fast for 50k rows.

Version history: 1 -- first version; 2 -- ``name``/``sub`` per divergence, ``tests``
(the statistical tests with the sentence the report prints), thresholds typed; the
``exit`` kind, ``certain-small``/``suggestive`` classes and ``interpretation``;
3 -- threshold ``min_runs_mwu`` renamed ``min_runs_per_side`` (it gates the QL test);
``funcret`` rows (what a traced function returned); ``contrasts``: per kernel whose
iterations both failed and passed, the keys that differ between them (side, failing,
passing, rows of kind/name/sub/label/failing/passing/p/q, keys_tested, method);
``culprits``: "Where it diverges", per function its basis and evidence (source diff or
contrast, label, before/after per iteration, side, q, ratio, class); 4 -- threshold
``min_ratio_signal``; ``suspects`` (the upstream changes between two Debian packages,
ranked). Documented by ``docs/schemas/regress-diff.schema.json``, validated in tests.
"""

from __future__ import annotations

import gc
import json
from dataclasses import asdict
from typing import Any

from regress.model.result import DiffResult, Divergence, SideValues, plain

JSON_FORMAT = "regress-diff"
JSON_VERSION = 4


def _side(sv: SideValues) -> dict[str, Any]:
    # per_iter and raw are finite by construction (counts / iterations)
    return {
        "per_iter": list(sv.per_iter),
        "raw": list(sv.raw),
        "center": plain(sv.center),
        "probe_status": sv.probe_status,
        "probe_reason": sv.probe_reason,
        "trials": None if sv.trials is None else list(sv.trials),
    }


def divergence_dict(d: Divergence) -> dict[str, Any]:
    """Built directly (``asdict`` deep-copies: slow for 50k rows)."""
    return {
        "key": d.key,
        "kind": d.kind,
        "name": d.name,
        "sub": d.sub,
        "label": d.label,
        "cls": d.cls,
        "old": _side(d.old),
        "new": _side(d.new),
        "ratio": plain(d.ratio),
        "ratio_ci": None if d.ratio_ci is None else plain(d.ratio_ci),
        "delta": plain(d.delta),
        "test": d.test,
        "p": d.p,
        "q": d.q,
        "significant": d.significant,
        "regression": d.regression,
        "score": d.score,
        "notes": list(d.notes),
        "interpretation": d.interpretation,
    }


def to_json(result: DiffResult) -> str:
    doc = {
        "format": JSON_FORMAT,
        "format_version": JSON_VERSION,
        "old": plain(asdict(result.old)),
        "new": plain(asdict(result.new)),
        "thresholds": plain(result.thresholds.as_dict()),
        "keys_tested": result.keys_tested,
        "tests": [asdict(t) for t in result.tests],
        "warnings": [asdict(w) for w in result.warnings],
        "forced": list(result.forced),
        "aa_false_positives": result.aa_false_positives,
        "contrasts": [plain(asdict(c)) for c in result.contrasts],
        "culprits": [plain(asdict(c)) for c in result.culprits],
        "return_mix": [plain(asdict(m)) for m in result.return_mix],
        "narrowing": None if result.narrowing is None else plain(asdict(result.narrowing)),
        "suspects": None if result.suspects is None else plain(asdict(result.suspects)),
        "significant_count": len(result.significant),
        "regression_count": len(result.regressions),
    }
    head = json.dumps(doc, sort_keys=True, indent=1, allow_nan=False)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # many small acyclic dicts: see diff.differ.diff_captures
    try:
        rows = [
            json.dumps(divergence_dict(d), sort_keys=True, allow_nan=False, separators=(",", ":"))
            for d in result.divergences
        ]
    finally:
        if gc_was_enabled:
            gc.enable()
    body = ",\n".join(rows)
    div = '"divergences": [\n' + body + "\n]" if rows else '"divergences": []'
    return head[:-2] + ",\n " + div + "\n}\n"

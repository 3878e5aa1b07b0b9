"""The machine-readable report: every result as JSON-safe data."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from ..compare import Comparison
from ..results import CaseResult, RunResult, TrainSummary
from .text import allowed_at_worst, case_text, diagnosis_text, unsupported_text

# --- JSON ------------------------------------------------------------------------------------------------------


def _num(x: float | None) -> float | str | None:
    if x is None:
        return None
    return x if math.isfinite(x) else str(x)


def comparison_json(c: Comparison) -> dict[str, Any]:
    return {
        "label": c.label, "path": c.path, "wrt": c.wrt, "verdict": "pass" if c.passed else "fail",
        "mismatched": c.mismatched, "n": c.n, "worst_index": list(c.worst) if c.worst is not None else None,
        "exact": _num(c.expected), "exact_hi": _num(c.expected_hi), "got": _num(c.got), "abs_err": _num(c.abs_err),
        "rel_err": _num(c.rel_err), "ulps": _num(c.ulps), "rtol": c.tolerance.rtol, "atol": c.tolerance.atol,
        "tolerance": "derived" if c.tolerance.derived else ("table+rounding" if c.slack is not None else "fixed"),
        "allowed": _num(allowed_at_worst(c)),
        "dtype": c.dtype, "kinks": c.kinks, "kink_side": c.kink_side,
        "diagnosis": c.diagnosis.kind if c.diagnosis else None, "diagnosis_text": diagnosis_text(c.diagnosis, c),
        "formula": c.formula, "undefined": {str(k): v for k, v in c.undefined.items()},
        "unclassified": c.unclassified, "edge_count": c.edge_count,
        "edges": [{"index": list(e.index), "kind": e.kind, "left": _num(e.left), "right": _num(e.right),
                   "got": _num(e.got), "reason": e.reason, "accepted": e.accepted} for e in c.edges],
    }


# the JSON report's layout: raised when a field changes meaning or goes away (a new field keeps it)
SCHEMA_VERSION = 2
JSON_ELEMENTS = 1_000  # inputs larger than this are summarised in the JSON report


def _point_json(value: Any) -> Any:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size <= JSON_ELEMENTS:  # JSON has no inf or NaN: they are written as the strings "inf", "-inf", "nan"
        return np.vectorize(_num, otypes=[object])(arr).tolist() if not np.isfinite(arr).all() else arr.tolist()
    finite = arr[np.isfinite(arr)]
    return {"shape": list(arr.shape), "elements": int(arr.size),
            "min": float(finite.min()) if finite.size else None, "max": float(finite.max()) if finite.size else None,
            "note": f"more than {JSON_ELEMENTS} elements: summarised"}


def case_json(r: CaseResult) -> dict[str, Any]:
    return {
        "case": r.name, "location": r.location, "verdict": r.status, "seconds": round(r.seconds, 4),
        "ran_on": r.ran_on or None,
        "evaluation": r.evaluation, "reference": r.reference, "dtype": r.dtype,
        "points": [{n: _point_json(v) for n, v in p.items()} for p in r.points],
        "error": str(r.error) if r.error else (r.crashed or r.user_error or None),
        "timed_out_after": r.timed_out, "limit_enforced": r.limit_enforced,
        "expect_failure": r.case.expect_failure if r.case else None,
        "checks": [{
            "check": c.check, "point": c.point, "verdict": c.status, "skipped": c.skipped, "error": c.error,
            "unsupported": [unsupported_text(u) for u in c.unsupported],
            "unsupported_reasons": [{"path": u.path, "why": u.why.value, "functions": list(u.functions),
                                     "needs": list(u.needs)} for u in c.unsupported],
            "comparisons": [comparison_json(x) for x in c.comparisons],
            "facts": [{"label": f.label, "expected": _jsonable(f.expected), "got": _jsonable(f.got),
                       "verdict": "pass" if f.passed else "fail", "note": f.note} for f in c.facts],
            **({"train": train_json(c.train)} if c.train is not None else {}),
        } for c in r.checks],
        "report": case_text(r) or None,
    }


def train_json(t: TrainSummary) -> dict[str, Any]:
    """A train check's loop: iterations are 0-based (the last one ran is `iterations - 1`)."""
    return {"iterations": t.iterations, "last_iteration": t.iterations - 1, "stopped": t.stopped,
            "stop_below": t.stop_below, "final_loss": _num(t.losses[-1]) if t.losses else None,
            "exact_final_loss": _num(t.exact_losses[-1]) if t.exact_losses else None, "params": _jsonable(t.params),
            "exact_params": _jsonable(t.exact_params), "diverged": t.diverged,
            "losses": [_num(x) for x in t.losses], "exact_losses": [_num(x) for x in t.exact_losses],
            "metrics": {k: [_num(x) for x in v] for k, v in t.metrics.items()}}


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v, allow_nan=False)
        return v
    except (TypeError, ValueError):  # not JSON, or inf / NaN in it
        return repr(v)


def run_json(run: RunResult) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "gradverify": run.versions.get("gradverify"), "versions": run.versions, "seed": run.seed,
        "seconds": round(run.seconds, 3), "complete": not run.incomplete, "exit_code": run.exit_code,
        "summary": run.counts(), "shard": list(run.shard) if run.shard else None, "scheduler": run.scheduler,
        "cases": [case_json(c) for c in run.cases],
        "errors": [{"file": e.file, "line": e.line, "case": e.case, "key": e.key, "message": e.reason,
                    "text": str(e)} for e in run.errors],
    }

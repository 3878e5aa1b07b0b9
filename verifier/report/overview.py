"""The run's report in pytest's shape: a line per file, every failure in full, a line per finding, the totals.

`gradverify run` prints, by default: the header, one line per case file (its counts per verdict), every failing,
erroring, timed-out or invalid case in full, one line per conformance finding (the dtypes of one case together), a
count of the cases at classified edges, the totals. `-v` adds the per-case table, the edge blocks, the notes and
each train loop's log; `-vv` every check of every case.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..results import EDGE, FINDING, CaseResult, RunResult, TrainSummary
from .text import counts_text

SHOWN_IN_FULL = ("fail", "error", "timeout", "invalid")


def file_lines(run: RunResult) -> list[str]:
    """One line per case file: its counts per verdict (files that failed to load count as invalid)."""
    per: dict[str, dict[str, int]] = {}
    for r in run.cases:
        where = (r.case.file if r.case is not None else None) or (r.error.file if r.error else None) or "<memory>"
        bucket = per.setdefault(where, {})
        bucket[r.status] = bucket.get(r.status, 0) + 1
    for e in run.errors:
        bucket = per.setdefault(e.file or "<input>", {})
        bucket["invalid"] = bucket.get("invalid", 0) + 1
    width = max((len(f) for f in per), default=0)
    return [f"{f:<{width}}  {counts_text(c)}" for f, c in per.items()]


def failed(run: RunResult) -> list[CaseResult]:
    return [r for r in run.cases if r.status in SHOWN_IN_FULL]


def finding_lines(run: RunResult) -> list[str]:
    """One line per conformance case with findings, its dtype variants together: the worst finding of each."""
    families: dict[str, list[CaseResult]] = {}
    for r in run.cases:
        if r.status == FINDING:
            key = r.case.family if r.case is not None and r.case.family else r.name
            families.setdefault(key, []).append(r)
    out = []
    for name, results in families.items():
        worst = [max(r.findings(), key=lambda c: c.rel_err if c.rel_err is not None else float("inf")) for r in results]
        parts = []
        for r, w in zip(results, worst):
            rel = f"rel err {w.rel_err:.2g}" if w.rel_err is not None else "not finite"
            ulps = f", {w.ulps:.3g} ULPs" if w.ulps is not None and np.isfinite(w.ulps) else ""
            parts.append(f"{r.dtype} {rel}{ulps}")
        first = worst[0]
        out.append(f"FINDING {name} [{first.check}] {first.label} via {first.path}: {'; '.join(parts)} "
                   f"({results[0].location})")
    return out


def edge_line(run: RunResult) -> str | None:
    n = sum(r.status == EDGE for r in run.cases)
    return f"{n} conformance case(s) at classified edges only (kinks, poles, conventions): -v lists them" if n else None


def _array(v: Any) -> str:
    arr = np.asarray(v, dtype=np.float64)
    if arr.size == 1:
        return f"{float(arr.reshape(-1)[0]):.5g}"
    return np.array2string(arr, formatter={"float_kind": lambda x: f"{x:.5g}"}, separator=", ")


def train_lines(result: CaseResult, verbose: bool = False) -> list[str]:
    """Where each train loop stopped and why, its final loss and parameters; with verbose, its loss log."""
    out = []
    for check in result.checks:
        t = check.train
        if t is None:
            continue
        exact = (f" (the exact-gradient loop: last iteration {len(t.exact_losses) - 1}, final loss "
                 f"{t.exact_losses[-1]:.4g})") if t.exact_losses else ""
        params = ", ".join(f"{n} = {_array(v)}" for n, v in t.params.items())
        out.append(f"train {result.name}: {stop_text(t)}; final {params}{exact}")
        if t.diverged:
            out.append(f"  diverged: the loss grew from {t.losses[0]:.4g} to {t.losses[-1]:.4g} (a learning rate too "
                       "large for this loss?)")
        if verbose:
            for k in range(0, t.iterations, t.log_every):
                extra = "".join(f", {name} {values[k]:.4g}" for name, values in t.metrics.items())
                exact = f" (exact {t.exact_losses[k]:.4g})" if k < len(t.exact_losses) else ""
                out.append(f"  iteration {k}: loss {t.losses[k]:.4g}{exact}{extra}")
    return out


def stop_text(t: TrainSummary) -> str:
    last = t.losses[-1] if t.losses else float("nan")
    if t.stopped == "stop_below":
        return (f"stopped at iteration {t.iterations - 1} (0-based): its loss {last:.4g} < stop_below "
                f"{t.stop_below:g}")
    return f"ran its {t.iterations} steps (the step budget; last iteration {t.iterations - 1}), final loss {last:.4g}"

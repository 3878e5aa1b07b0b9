"""The table of torch's conventions at edge points, generated from a run of the conformance suite (cases with
`op:`): for each point where the derivative does not exist or torch's formula is singular, the exact facts and what
torch returns, and the findings (torch's gradient wrong or inaccurate away from edge points)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..compare import KINK, Edge
from ..results import FINDING, CaseResult, RunResult
from .text import array_text, diagnosis_text, edge_points, edge_verdict, fmt

KIND_ORDER = ("kink", "removable singularity", "pole", "0·inf", "outside the domain", "non-finite input")


def _point(result: CaseResult, point: int) -> str:
    values = result.points[point] if point < len(result.points) else {}
    return ", ".join(f"{n} = {array_text(np.asarray(v, dtype=np.float64))}" for n, v in values.items())


def _exact(e: Edge) -> str:
    if e.kind == KINK:
        return f"left {fmt(e.left)}, right {fmt(e.right)}"
    if math.isnan(e.left):
        return e.reason or "no value"
    return fmt(e.left)


def _disagreements(rows: list[dict[str, Any]]) -> list[str]:
    """Kinks of the same shape (the same one-sided derivatives) where ops follow different conventions: which side
    each op's reverse mode returns (clamp, hardtanh and relu6 at their bounds)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        e: Edge = row["edge"]
        if e.kind == KINK:
            groups.setdefault((fmt(e.left), fmt(e.right)), []).append(row)
    out: list[str] = []
    for (left, right), members in sorted(groups.items()):
        sides = {(m["op"], m["at"]): sorted({x.side for x in m["torch"].values()}) for m in members}
        if len({m["op"] for m in members}) < 2 or len({tuple(v) for v in sides.values()}) < 2:
            continue
        if not out:
            out = ["", "## One kind of kink, different conventions", "",
                   "Kinks with the same one-sided derivatives where torch's ops return different sides: the same",
                   "function at its bound (a clamp, a hardtanh, a relu6) is differentiated by different conventions.",
                   "", "| left, right | op | point | torch returns |", "|---|---|---|---|"]
        for (op, at), side in sorted(sides.items()):
            out.append(f"| {left}, {right} | {op} | {at} | {', '.join(side)} |")
    return out


def document(run: RunResult, command: str) -> str:
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    findings = []
    for r in run.cases:
        if r.case is None or r.case.op is None:
            continue
        if r.status == FINDING:
            findings.append(r)
        for point, c, e in edge_points(r):
            key = ((r.case.family or r.case.name), point, c.wrt, e.index)
            row = rows.setdefault(key, {"op": r.case.op, "case": (r.case.family or r.case.name), "at": _point(r, point),
                                        "wrt": c.wrt, "index": e.index, "edge": e, "torch": {}})
            row["torch"][r.dtype] = e
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows.values():  # elements of one input with the same facts and the same torch values: one row
        e = row["edge"]
        same = (row["case"], row["at"], row["wrt"], e.kind, _exact(e),
                tuple(sorted((d, fmt(x.got)) for d, x in row["torch"].items())))
        if same in merged:
            merged[same]["indices"].append(row["index"])
        else:
            merged[same] = {**row, "indices": [row["index"]]}
    for row in merged.values():
        idx = row["indices"]
        row["element"] = f"d/d{row['wrt']}" + ("" if idx == [()] else str(list(idx[0])) if len(idx) == 1 else
                                                f" ({len(idx)} elements: {', '.join(str(list(i)) for i in idx[:4])}"
                                                f"{', ...' if len(idx) > 4 else ''})")
    rows = merged
    lines = [
        "# torch's gradients at edge points", "",
        f"Generated from the conformance suite by `{command}` (torch and sympy versions below). For every point of",
        "`cases/ops` where the derivative does not exist, or exists but a formula is singular there, the exact facts",
        "(sympy, evaluated in mpmath at 50 digits) and the value torch's reverse mode (`y.backward()`) returns in",
        "float64 and float32. Kinds:", "",
        "- **kink**: the one-sided derivatives differ; torch's value is accepted when it lies between them.",
        "- **removable singularity**: the exact derivative is the limit of a formula that is 0/0 or 0·inf there;",
        "  torch's finite value is compared with it, and torch's NaN or inf there is a finding (below), not an edge.",
        "- **pole**: the function or its derivative is infinite there; torch may return anything.",
        "- **0·inf**: the derivative exists but meets a pole elsewhere in torch's products (a zero weight or",
        "  tangent times an infinite partial), or the exact formula is an indeterminate 0·inf.",
        "- **outside the domain**: the function has no real value there (e.g. log of a negative number).", "",
        "| op | case | point | element | kind | exact | torch float64 | torch float32 | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows.values():
        edge: Edge = row["edge"]
        got = {d: fmt(x.got) for d, x in row["torch"].items()}
        verdicts = {edge_verdict(x) for x in row["torch"].values()}
        cells = [row["op"], row["case"], row["at"], row["element"], edge.kind, _exact(edge), got.get("float64", "-"),
                 got.get("float32", "-"), "; ".join(sorted(verdicts))]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    counts: dict[str, int] = {}
    for row in rows.values():
        counts[row["edge"].kind] = counts.get(row["edge"].kind, 0) + 1
    lines += _disagreements(list(rows.values()))
    lines += ["", "Edge points by kind: " + ", ".join(f"{k} {counts[k]}" for k in KIND_ORDER if k in counts) + ".", ""]
    lines += ["## Findings", "",
              "Cases where torch's gradient differs from the exact one away from every edge point: one row per point,",
              "element and kind of derivative (first order by reverse mode, forward mode, or higher order), with how many",
              "of torch's paths show it; the tolerance is the derived per-element bound (the running rounding error of",
              "the forward values and of the chain rule's terms in the dtype, 1e-11 (float64) or 2e-5 (float32) per",
              "library function; a value is never accepted for being small). Each point's kind (a boundary, a tail,",
              "the end of the domain) is shown where `points: auto` added it. The ULP-level accuracy of each op is in",
              "the sweep table.", "",
              "| case | check | via | point | exact | torch | rel err | ULPs | diagnosis |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in findings:
        kinds = r.point_kinds
        paths: dict[tuple[Any, ...], list[Any]] = {}  # one row per discrepancy, however many paths show it
        for ch in r.checks:
            for c in ch.comparisons:
                if not c.passed and c.unclassified:
                    order = "higher" if ch.check == "higher" else "jvp" if ch.check == "jvp" else "first"
                    at = (ch.point, order, c.worst if order != "jvp" else None)
                    paths.setdefault(at, []).append((ch, c))
        for group in paths.values():
            ch, c = group[0]
            rel = f"{c.rel_err:.3g}" if c.rel_err is not None else "-"
            ulps = f"{c.ulps:.3g}" if c.ulps is not None and math.isfinite(c.ulps) else "-"
            text = (diagnosis_text(c.diagnosis, c) or "").split(":")[0]
            via = c.path + (f" (and {len(group) - 1} more path(s))" if len(group) > 1 else "")
            kind = f" ({kinds[ch.point]})" if ch.point < len(kinds) and kinds[ch.point] else ""
            cells = [r.name, f"{ch.check}: {c.label}", via, _point(r, ch.point) + kind + (
                     f" (index {list(c.worst)})" if c.worst else ""), fmt(c.expected), fmt(c.got), rel, ulps, text]
            lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
    v = run.versions
    lines += ["", f"torch {v.get('torch', '?')}, sympy {v.get('sympy', '?')}, mpmath {v.get('mpmath', '?')}, "
              f"gradverify {v.get('gradverify', '?')}, python {v.get('python', '?')}."]
    return "\n".join(lines) + "\n"

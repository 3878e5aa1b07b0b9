"""All wording: the mismatch report, error messages for the terminal, the results table and the JSON report."""

from __future__ import annotations

import math

import numpy as np

from ..compare import KINK, REMOVABLE, SATURATED, Comparison, Diagnosis, Edge, Fact
from ..dtypes import HALF, LARGEST
from ..errors import CaseError
from ..results import EDGE, FINDING, CaseResult, CheckResult, RunResult
from ..torchside.paths import Unsupported, Why

MAX_SHOWN = 8  # input elements shown in full
MAX_ALSO = 6  # further failing comparisons of one check, one line each


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return str(x)
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.17g}" if abs(x) >= 1e-4 or x == 0 else f"{x:.10e}"


def diagnosis_text(d: Diagnosis | None, c: Comparison) -> str | None:
    if d is None:
        return None
    if d.kind == "accumulated":
        k = int(d.factor or 0)
        extra = " (or a factor-of-2 error)" if k == 2 else ""
        return (f"{k}.0x expected: gradients accumulated over {k} backward calls without zero_(){extra}; "
                "zero .grad (x.grad.zero_() / optimizer.zero_grad()) before each backward")
    if d.kind == "sign":
        return "-1x expected: the sign is flipped"
    if d.kind == "ignores_grad_output":
        return ("backward does not scale with grad_output: the result is the gradient for v = 1 whatever v is "
                "(multiply by grad_output)")
    if d.kind == "region":
        part = {"sign": ": the sign is flipped there", "zero": ": 0 there"}.get(d.detail.get("what", ""), "")
        return (f"wrong where {d.detail['input']} {d.detail['side']} {d.detail['at']:.6g} ({d.count} of {c.n} "
                f"element(s)){part}, right elsewhere")
    if d.kind == "mutated_state":
        return (f"the first backward through this graph was right, call {d.count} was wrong: backward changes its "
                "saved tensors (or other state) in place (e.g. grad = ctx.saved; grad *= grad_output); work on a copy")
    if d.kind == "factor":
        f = d.factor or 0.0
        if abs(f - 0.5) < 1e-9:
            return "0.5x expected: a factor of 1/2 is wrong (a missing 2, e.g. from d(x**2) = 2x)"
        return f"{f:.6g}x expected: a constant factor is wrong"
    if d.kind == "kink":
        side = f"; torch returned the {c.kink_side} value" if c.kink_side in ("left", "right") else ""
        return (f"the derivative does not exist at {d.count} element(s) (a kink: the one-sided derivatives differ)"
                f"{side}; strict mode fails at kinks")
    if d.kind == "missing_zero_grad":
        return ("the gradient at step t equals the sum of the exact gradients of steps 1..t: zero_grad() / "
                "grad.zero_() is missing")
    if d.kind == "relative":
        rel = (d.factor or 1.0) - 1.0
        return (f"(1 {'+' if rel > 0 else '-'} {abs(rel):.3g})x expected: every element off by the same relative error "
                f"{rel:.3g} (a slightly wrong constant, or a lower-precision computation)")
    if d.kind == "zero":
        return (f"got 0 where the exact derivative is non-zero ({d.count} element(s)): a detached path, an input "
                "without requires_grad, or .grad never filled")
    if d.kind == "none":
        return ".grad is None: nothing flowed back to this input (detached, or requires_grad is False)"
    if d.kind == "nonfinite":
        if c.dtype in HALF:
            return (f"got NaN/inf where the exact value is finite ({d.count} element(s)): torch's computation left "
                    f"{c.dtype}'s range on the way (largest finite {LARGEST[c.dtype]:g}) though the result is inside "
                    "it; the exact formula stays inside")
        return f"got NaN/inf where the exact value is finite ({d.count} element(s))"
    if d.kind == "conjugate":
        return ("got ds/dz·g + g·conj(ds/dz̄) where torch's convention is conj(ds/dz)·g + conj(g)·ds/dz̄: a backward "
                "that returns the (holomorphic) derivative without conjugating it")
    if d.kind == "transpose":
        return "got the transpose of the exact matrix"
    if d.kind == "shape":
        return f"got shape {list(c.got_shape)}, the exact result has shape {list(c.expected_shape)}"
    if d.kind == "saturated":
        return (f"{d.count} element(s) off by less than {SATURATED} units of roundoff of 1 where the exact value is "
                f"small (up to {d.factor:.3g}, representable in {c.dtype}): the result went through values of order 1 "
                "that cannot resolve it (1 - y or y + 1 where the output y rounds to its limit, as in the saturated "
                "tails of sigmoid, tanh, expm1): an inaccurate formula, not a wrong derivative")
    if d.kind == "inaccurate":
        return (f"{d.count} of {c.n} element(s) differ by small relative errors (up to {d.factor:.2g}) with no common "
                "factor: an inaccurate formula or a lower-precision computation, not a wrong derivative")
    if d.kind == "partial":
        return f"{d.count} of {c.n} element(s) differ with no common pattern (a missing or wrong term)"
    return d.kind


def allowed_at_worst(c: Comparison) -> float | None:
    """The error the comparison allowed at its worst element (tolerance and rounding bound together)."""
    if c.worst is None or c.expected is None:
        return None
    slack = 0.0
    if c.slack is not None and c.slack.shape == c.expected_shape:
        slack = float(c.slack[c.worst])
    magnitude = max(abs(c.expected), abs(c.expected_hi if c.expected_hi is not None else c.expected))
    if not math.isfinite(magnitude):
        return None
    return float(c.tolerance.allowed(magnitude, slack))


def _point_text(result: CaseResult, check: CheckResult, index: tuple[int, ...] | None) -> str:
    point = result.points[check.point] if check.point < len(result.points) else {}
    parts = []
    complex_inputs = result.case.complex_inputs if result.case is not None else ()
    for name, value in point.items():
        arr = np.asarray(value, dtype=np.float64)
        if name in complex_inputs and arr.size <= 2 * MAX_SHOWN:  # real pairs shown as the complex numbers they are
            parts.append(f"{name} = {_complex_text(arr[..., 0] + 1j * arr[..., 1])}")
        elif arr.size <= MAX_SHOWN:
            parts.append(f"{name} = {array_text(arr)}")
        elif index is not None and len(index) >= arr.ndim and arr.ndim and all(i < d for i, d in zip(index, arr.shape)):
            sub = tuple(index[: arr.ndim])
            parts.append(f"{name}{list(sub)} = {fmt(float(arr[sub]))} (shape {list(arr.shape)})")
        else:
            parts.append(f"{name}: shape {list(arr.shape)}, range [{fmt(float(arr.min()))}, {fmt(float(arr.max()))}]")
    return ", ".join(parts)


def _complex_text(arr: np.ndarray) -> str:
    if arr.ndim == 0:
        z = complex(arr)
        return f"{fmt(z.real)}{'-' if z.imag < 0 else '+'}{fmt(abs(z.imag))}j"
    return "[" + ", ".join(_complex_text(a) for a in arr) + "]"


def array_text(arr: np.ndarray) -> str:
    if arr.ndim == 0:
        return fmt(float(arr))
    return "[" + ", ".join(array_text(a) for a in arr) + "]"


def comparison_text(result: CaseResult, check: CheckResult, c: Comparison) -> str:
    """The fixed mismatch report of one comparison (STYLE idea 6)."""
    case = result.case
    where = f"  ({case.location})" if case is not None else ""
    head = ("FINDING" if c.unclassified else "EDGE") if result.status in (EDGE, FINDING) else "FAIL"
    lines = [f"{head} {result.name} [{c.check}] {c.label} via {c.path}{where}"]
    if result.derived:
        lines.append(f"  function: {result.derived}")
    if c.diagnosis and c.diagnosis.kind in ("shape", "transpose") and c.got_shape != c.expected_shape:
        lines.append(f"  {diagnosis_text(c.diagnosis, c)}")
        return "\n".join(lines)
    lines.append(f"  mismatched {c.mismatched} / {c.n} element(s)" + (f"; {c.kinks} at kinks" if c.kinks else ""))
    idx = "()" if c.worst == () else (str(list(c.worst)) if c.worst is not None else "-")
    src = "hand value" if c.exact_source == "hand" else "exact"
    if c.expected is not None and c.expected_hi is not None and c.expected != c.expected_hi:
        lines.append(f"  worst at index {idx}: {src} one-sided derivatives left {fmt(c.expected)}, right "
                     f"{fmt(c.expected_hi)}; got {fmt(c.got)}")
    else:
        lines.append(f"  worst at index {idx}: {src} {fmt(c.expected)}, got {fmt(c.got)}")
    ulps = f", {c.ulps:.3g} ULPs ({c.dtype})" if c.ulps is not None and math.isfinite(c.ulps) else ""
    rel = f", rel err {c.rel_err:.3g}" if c.rel_err is not None else ""
    allowed = allowed_at_worst(c)
    if c.tolerance.derived and allowed is not None:
        rule = (f"{allowed:.3g} here, derived ({c.dtype}: the rounding of the forward values and of the chain rule's "
                f"terms, {c.tolerance.rtol:g} per library function, floor {c.tolerance.atol:.3g})")
    else:
        bound = ""
        if c.slack is not None and c.worst is not None and c.slack.shape == c.expected_shape:
            bound = f" + {float(c.slack[c.worst]):.3g} (the {c.dtype} rounding bound here)"
        rule = f"{c.tolerance.atol:g} + {c.tolerance.rtol:g} * |exact|{bound}"
    lines.append(f"  abs err {fmt(c.abs_err) if c.abs_err is not None else '-'}{rel}{ulps}; allowed |err| <= {rule}")
    seed = case.seed if case is not None else 0
    if c.check == "train":
        step = f"; worst at step {c.worst[0] + 1}" if c.worst else ""
        where = f"({c.dtype}, {result.device}, seed {seed}){step}"
        lines.append(f"  starting from: {_point_text(result, check, None)} {where}")
    else:
        where = f"({c.dtype}, {result.device}, seed {seed})"
        kinds = result.point_kinds
        kind = f" ({kinds[check.point]})" if check.point < len(kinds) and kinds[check.point] else ""
        lines.append(f"  at point {check.point + 1}{kind}: {_point_text(result, check, c.worst)} {where}")
    if c.formula:
        lines.append(f"  exact derivative there: {c.formula}")
    if -1 in c.notes:  # mismatches the exact refinement did not reach
        lines.append(f"  note: {c.notes[-1]}")
    text = diagnosis_text(c.diagnosis, c)
    if text:
        lines.append(f"  diagnosis: {text}")
    if c.kink_values and c.kink_side == "outside":
        left, right, got = c.kink_values
        lines.append(f"  at the kink {list(c.kink_at or ())}: left {fmt(left)}, right {fmt(right)}, torch {fmt(got)} "
                     "(outside both)")
    return "\n".join(lines)


def fact_text(result: CaseResult, f: Fact) -> str:
    case = result.case
    where = f"  ({case.location})" if case is not None else ""
    note = f"\n  note: {f.note}" if f.note else ""
    return f"FAIL {result.name} [{f.check}] {f.label}: expected {f.expected!r}, got {f.got!r}{where}{note}"


def error_text(e: CaseError) -> str:
    return f"ERROR {e}"


def case_text(result: CaseResult, checks: set[str] | None = None, verbose: bool = False) -> str:
    """Everything wrong with one case (or with some of its checks), as the terminal and pytest show it ('' if none)."""
    if result.error is not None:
        return error_text(result.error)
    if result.timed_out is not None:
        return (f"TIMEOUT {result.name} ({result.location}): stopped after {result.timed_out:g} s "
                "(raise the limit with --timeout)")
    if result.crashed:
        return f"ERROR {result.name} ({result.location}): the verifier raised\n{result.crashed}"
    if result.user_error:
        return f"ERROR {result.name} ({result.location}): the implementation {result.case.impl if result.case else ''} " \
               f"could not be loaded\n{result.user_error}"
    if result.status == "xfail":
        return ""
    if result.status == "skip":
        return f"SKIP {result.name} ({result.location}): {result.skipped}"
    if result.status == EDGE:
        return "\n".join(edge_lines(result, limit=None if verbose else 8)) if checks is None else ""
    if result.case is not None and result.case.expect_failure and result.status == "fail" and \
            not any(c.status in ("fail", "error") for c in result.checks):
        return (f"FAIL {result.name} ({result.location}): expected a failure diagnosed "
                f"'{result.case.expect_failure}', but every check passed")
    if checks is None and result.status != FINDING:
        grouped = _root_cause_text(result)
        if grouped:
            return grouped
    blocks = []
    for check in result.checks:
        if checks is not None and check.check not in checks:
            continue
        if check.error:
            blocks.append(f"ERROR {result.name} [{check.check}] at point {check.point + 1}: torch or the reference "
                          f"raised\n{check.error.rstrip()}")
        comps, facts = check.failures()
        if result.status == FINDING:
            comps = [c for c in comps if c.unclassified]  # the edges are listed on their own
        if comps:
            text = comparison_text(result, check, comps[0])
            more = [f"  also: {mismatch_line(c)}" for c in comps[1:MAX_ALSO + 1]]
            if len(comps) > MAX_ALSO + 1:
                more.append(f"  ... and {len(comps) - MAX_ALSO - 1} more comparison(s) of this check")
            blocks.append("\n".join([text, *more]))
        blocks.extend(fact_text(result, f) for f in facts)
    if blocks and result.evaluation and result.reference != "expand":
        blocks[-1] += f"\n  reference: {result.evaluation}"
    if result.status == FINDING and checks is None:
        blocks.extend(edge_lines(result, limit=None if verbose else 8))
    return "\n\n".join(blocks)


def mismatch_line(c: Comparison) -> str:
    """One failing comparison in one line: what, which path, how many, the worst element."""
    return f"{c.label} via {c.path}: {c.mismatched}/{c.n} mismatched, worst exact {fmt(c.expected)} got {fmt(c.got)}"


def _basic(check: CheckResult, c: Comparison) -> int:
    """How basic a failing quantity is: the value, then y.backward() once (v = ones), then v^T J with other v, then
    everything that repeats or composes (retained graphs, accumulation, higher orders, forward mode)."""
    if check.check == "value":
        return 0
    if c.reverse_ones and check.check == "backward":
        return 1
    if check.check in ("vjp", "grad"):
        return 2 if c.reverse_ones or check.check == "grad" else 3
    return 4


def _root_cause_text(result: CaseResult) -> str:
    """One root cause, one block: the most basic failing quantity in full (the value, then y.backward() once, then
    v^T J, then repeats and higher orders: the catalogue's order), or a failing fact that names a cause (an in-place
    change of saved state or of grad_output) ahead of it; then one line for each other check that failed, which
    the same cause most likely explains."""
    failing = [(check, check.failures()) for check in result.checks if check.error or any(check.failures())]
    if not failing:
        return ""
    caused = [(check, f) for check, (_, facts) in failing for f in facts if f.cause]
    lead: str
    if caused:
        check, fact = caused[0]
        lead = fact_text(result, fact)
        first = check
    else:
        ranked = sorted(((_basic(check, c), k, check, c) for k, (check, (comps, _)) in enumerate(failing)
                         for c in comps), key=lambda item: item[:2])
        first, (comps, facts) = failing[0]
        if ranked and not first.error:
            _, _, first, best = ranked[0]
            lead = comparison_text(result, first, best)
        elif first.error:
            lead = (f"ERROR {result.name} [{first.check}] at point {first.point + 1}: the code under test raised\n"
                    f"{first.error.rstrip()}")
        else:
            lead = fact_text(result, facts[0])
    lines = []
    for check, (comps, facts) in failing:
        items = [mismatch_line(c) for c in comps] + [f"{f.label}: expected {f.expected!r}, got {f.got!r}" for f in facts]
        if check.error:
            items.insert(0, "raised (see above)" if check is first else "raised")
        if check is first:
            items = items[1:]
        if items:
            extra = f" (+{len(items) - 1} more)" if len(items) > 1 else ""
            lines.append(f"  also [{check.check}] at point {check.point + 1}: {items[0]}{extra}")
    text = lead
    if lines:
        shown = lines[:MAX_ALSO * 2]
        if len(lines) > len(shown):
            shown.append(f"  ... and {len(lines) - len(shown)} more failing check(s)")
        text += "\n  the same cause most likely explains:\n" + "\n".join(shown)
    if result.evaluation and result.reference != "expand":
        text += f"\n  reference: {result.evaluation}"
    return text


REVERSE_MODE = ("backward", "vjp")  # the checks whose first comparison is torch's gradient by y.backward()


def edge_points(result: CaseResult) -> list[tuple[int, Comparison, Edge]]:
    """The edge points a case met, once per (point, input element): (point number, comparison, edge), taken from
    torch's reverse mode (y.backward(), or y.backward(v) with v = ones for non-scalar outputs)."""
    out, seen = [], set()
    for check in result.checks:
        if check.check not in REVERSE_MODE:
            continue
        for c in (x for x in check.comparisons if x.reverse_ones):
            for e in c.edges:
                key = (check.point, c.wrt, e.index)
                if key not in seen:
                    seen.add(key)
                    out.append((check.point, c, e))
    return out


def edge_text(result: CaseResult, point: int, c: Comparison, e: Edge) -> str:
    """One edge point in words: where, what kind, the exact facts, torch's value and whether torch's value is one the
    facts allow."""
    values = result.points[point] if point < len(result.points) else {}
    name = c.wrt or "?"
    x = np.asarray(values.get(name, np.nan), dtype=np.float64)
    at = f"{name}{list(e.index) if e.index else ''} = {fmt(float(x[e.index]) if x.ndim and e.index else float(x))}"
    if e.kind == KINK:
        facts = f"left {fmt(e.left)}, right {fmt(e.right)}"
    elif math.isnan(e.left):
        facts = e.reason or "no exact value"
    else:
        facts = f"exact {fmt(e.left)}"
    return f"{e.kind} at {at} (point {point + 1}): {facts}; torch {fmt(e.got)} ({edge_verdict(e)})"


def edge_verdict(e: Edge) -> str:
    """Whether torch's value at an edge point is one the exact facts allow, in words."""
    if e.kind == KINK:
        return f"accepted ({e.side})" if e.accepted else "outside the one-sided derivatives"
    if e.kind == REMOVABLE:
        return "agrees with the exact derivative" if e.accepted else "differs from the exact derivative"
    return "accepted (no derivative exists)"


def edge_lines(result: CaseResult, limit: int | None = 8) -> list[str]:
    """The EDGE lines of a case: every edge point with -v (limit None), else the first few."""
    found = edge_points(result)
    shown = found if limit is None else found[:limit]
    lines = [f"EDGE {result.name}: {edge_text(result, p, c, e)}" for p, c, e in shown]
    if len(found) > len(shown):
        lines.append(f"EDGE {result.name}: ... and {len(found) - len(shown)} more edge point(s) (-v lists them)")
    return lines


WHY = {
    Why.NOT_IMPLEMENTED: "torch raised NotImplementedError",
    Why.FUNCTION_LACKS: "a custom autograd.Function lacks what this path needs",
    Why.TORCH_LACKS: "the same path fails on the case's own definition lowered to torch: torch lacks the rule",
    Why.GRAPH_BREAKS: "graph breaks: the parts between ran eagerly",
    Why.NOT_BATCHABLE: ("the code under test does not run under torch.func.vmap (several grad_outputs or tangents "
                        "at once); its one-at-a-time paths were verified"),
    Why.NOT_NESTABLE: ("torch.func does not differentiate a custom autograd.Function's jvp a second time (a probe "
                       "Function with a right jvp gets a wrong result on this path)"),
    Why.SAVED_TENSOR_HOOKS: ("the code installs saved-tensor hooks (torch.utils.checkpoint(use_reentrant=False), "
                             "save_on_cpu), which torch refuses on this path: the case's definition under such hooks "
                             "fails here too"),
    Why.REENTRANT_CHECKPOINT: ("the code runs torch.utils.checkpoint(use_reentrant=True), which supports "
                               ".backward() only: the case's definition inside it fails on this path too "
                               "(use_reentrant=False runs every reverse-mode path of autograd)"),
    Why.MUTATES_HELD: ("the code updates a tensor it holds in place (a module's buffer: BatchNorm's running "
                       "statistics and counter in train mode), which torch refuses on this path: the case's "
                       "definition doing the same fails here too (eval mode avoids it)"),
}


def unsupported_text(u: Unsupported) -> str:
    """One unsupported path in words: the path, why (the Functions and what they lack), torch's exception."""
    from ..torchside.paths import Need

    if u.why is Why.FUNCTION_LACKS:
        lacked = "; ".join(Need[n].value for n in u.needs)
        why = f"{', '.join(u.functions)} lacks {lacked}"
    elif u.why is Why.GRAPH_BREAKS:
        why = f"{u.count} graph break(s), the parts between ran eagerly"
    else:
        why = WHY[u.why]
    return f"{u.path}: {why}" + (f" ({u.error})" if u.error else "")


def notes(result: CaseResult, verbose: bool = True) -> list[str]:
    """What passed but is worth saying: undefined points and overflows; with verbose, kinks and unsupported paths."""
    out: list[str] = []
    seen: set[str] = set()
    if result.trace_note:
        out.append(f"{result.name}: {result.trace_note}")
    if verbose and result.derived:
        out.append(f"{result.name}: {result.derived}")
    if not result.limit_enforced:
        out.append(f"{result.name}: its time limit could not be enforced here (not the main thread, or no SIGALRM): "
                   "it ran without one")
    for check in result.checks:
        for u in check.unsupported if verbose else ():
            line = f"{result.name} [{check.check}]: not supported by torch here: {unsupported_text(u)}"
            if line not in seen:
                seen.add(line)
                out.append(line)
        for c in check.comparisons:
            if verbose and c.kinks and c.kink_values and c.check in ("backward", "grad"):
                left, right, got = c.kink_values
                line = (f"{result.name} [{c.check}] {c.label}: kink at {list(c.kink_at or ())}: left {fmt(left)}, "
                        f"right {fmt(right)}, torch returned {fmt(got)} ({c.kink_side})")
                if line not in seen:
                    seen.add(line)
                    out.append(line)
            for reason in [*c.undefined.values(), *c.notes.values()]:
                line = f"{result.name}: {reason}"
                if line not in seen:
                    seen.add(line)
                    out.append(line)
    return out


def header(run: RunResult | None = None, versions: dict[str, str] | None = None, seed: int = 0,
           verbose: bool = True) -> str:
    """The versions and the seed (one line); verbose: also how the reference is computed."""
    v = versions or (run.versions if run else {})
    s = run.seed if run else seed
    line = (f"gradverify {v.get('gradverify', '?')} | torch {v.get('torch', '?')} | sympy {v.get('sympy', '?')} | "
            f"python {v.get('python', '?')} | seed {s}")
    return line + (" | reference: exact sympy derivatives, mpmath 50 digits (large tensors: screened in float64, "
                   "recomputed exactly where torch disagrees)" if verbose else "")


VERDICT_ORDER = ("pass", "xfail", "edge", "finding", "skip", "fail", "error", "timeout", "invalid")
VERDICT_WORDS = {"pass": "passed", "fail": "failed", "edge": "at classified edges", "finding": "with findings",
                 "skip": "skipped"}


def counts_text(counts: dict[str, int]) -> str:
    """Counts per verdict in words, in the report's order: '12 passed, 1 xfail'."""
    return ", ".join(f"{counts[k]} {VERDICT_WORDS.get(k, k)}" for k in VERDICT_ORDER if counts.get(k))


def summary(run: RunResult) -> str:
    tail = " (interrupted: incomplete)" if run.incomplete else ""
    return f"{counts_text(run.counts()) or 'no cases'} in {run.seconds:.2f}s{tail}"

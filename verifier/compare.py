"""Compare autograd's numbers with the exact ones: where, how large (abs, rel, ULPs), and which known pattern.

Numbers only: all wording lives in :mod:`verifier.report`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .case.model import Tolerance
from .dtypes import UNIT_ROUNDOFF, ulp, ulp_of
from .values import Code, Exact, code_of


@dataclass
class Diagnosis:
    """A named pattern in the discrepancy: kind is one of accumulated, factor, sign, zero, nonfinite, transpose,
    shape, saturated, inaccurate, relative, partial."""

    kind: str
    factor: float | None = None
    count: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


# The kinds of edge point (a point where the derivative does not exist, or where torch follows a convention).
KINK, REMOVABLE, POLE, ZERO_INF, OUTSIDE, NONFINITE_INPUT = (
    "kink", "removable singularity", "pole", "0·inf", "outside the domain", "non-finite input")
MAX_EDGES = 32  # edge records kept per comparison (all are counted)
SATURATED = 16  # an error up to this many units of roundoff of 1, where the exact value is below 1: a saturated formula


@dataclass(frozen=True)
class Edge:
    """One element at an edge point: its kind, the exact facts (left and right derivatives, or why there is no
    value) and torch's value."""

    index: tuple[int, ...]
    kind: str
    left: float  # NaN where the exact derivative does not exist
    right: float
    got: float
    reason: str = ""
    tol: float = 0.0  # the comparison's allowed error at this element

    @property
    def side(self) -> str:
        """At a kink: which one-sided derivative torch returned (left, right), or between, or outside."""
        if abs(self.got - self.left) <= self.tol:
            return "left"
        if abs(self.got - self.right) <= self.tol:
            return "right"
        lo, hi = min(self.left, self.right), max(self.left, self.right)
        return "between" if lo - self.tol <= self.got <= hi + self.tol else "outside"

    @property
    def accepted(self) -> bool:
        if self.kind == REMOVABLE and math.isfinite(self.left):
            return math.isfinite(self.got) and abs(self.got - self.left) <= self.tol
        """Whether torch's value is one the exact facts allow (between the one-sided derivatives at a kink; any value
        where no derivative exists). False at a removable singularity, where torch's value is not finite."""
        if self.kind == KINK:
            return self.side != "outside"
        return True


EDGE_OF = {Code.INDETERMINATE: ZERO_INF, Code.ZERO_WEIGHT: ZERO_INF, Code.POLE: POLE, Code.OVERFLOW: POLE,
           Code.NONFINITE_INPUT: NONFINITE_INPUT}


def edge_kind(reason: str) -> str:
    """The kind of edge point a reason is, from its code (set where the reference knew why)."""
    return EDGE_OF.get(code_of(reason), OUTSIDE)


@dataclass
class Comparison:
    """One labelled numeric comparison, e.g. 'grad wrt x' via 'y.backward()'."""

    check: str
    label: str
    path: str
    wrt: str | None
    n: int
    mismatched: int
    tolerance: Tolerance
    dtype: str
    worst: tuple[int, ...] | None = None
    reverse_ones: bool = False  # torch's reverse mode with all-ones weights (y.backward(); v = ones): edges read here
    expected: float | None = None
    expected_hi: float | None = None
    got: float | None = None
    abs_err: float | None = None
    rel_err: float | None = None
    ulps: float | None = None
    diagnosis: Diagnosis | None = None
    kinks: int = 0
    kink_side: str | None = None  # at the worst kink: 'left', 'right', 'between', 'outside'
    kink_at: tuple[int, ...] | None = None
    kink_values: tuple[float, float, float] | None = None  # left, right, got
    undefined: dict[int, str] = field(default_factory=dict)
    notes: dict[int, str] = field(default_factory=dict)
    got_nonfinite_where_undefined: bool = True
    expected_shape: tuple[int, ...] = ()
    got_shape: tuple[int, ...] = ()
    formula: str | None = None
    exact_source: str = "sympy"
    edges: list[Edge] = field(default_factory=list)  # up to MAX_EDGES, kinks first
    edge_count: int = 0
    unclassified: int = 0  # mismatched elements that are not at an edge point: findings of a conformance case
    slack: np.ndarray | None = None  # the rounding bound allowed per element on top of the tolerance (half precision)

    @property
    def passed(self) -> bool:
        return self.mismatched == 0


@dataclass
class Fact:
    """One compared fact that is not a number: is_leaf, grad_fn name, an error raised, ..."""

    check: str
    label: str
    expected: Any
    got: Any
    passed: bool
    note: str | None = None
    cause: str | None = None  # a diagnosis kind this fact establishes when it fails (mutated_state, ...)


def compare(
    exact: Exact,
    got: np.ndarray | None,
    *,
    check: str,
    label: str,
    path: str,
    wrt: str | None,
    tolerance: Tolerance,
    dtype: str,
    strict: bool = False,
) -> Comparison:
    """Compare got with the exact interval [lo, hi] elementwise under |err| <= atol + rtol * |exact|."""
    lo, hi = exact.lo, exact.hi
    base = Comparison(check=check, label=label, path=path, wrt=wrt, n=int(lo.size), mismatched=0,
                      tolerance=tolerance, dtype=dtype, undefined=dict(exact.undefined), notes=dict(exact.notes),
                      expected_shape=lo.shape)
    if got is None:
        got = np.zeros_like(lo)  # .grad left None: torch's way of saying zero gradient
        base.diagnosis = Diagnosis("none")
    got = np.asarray(got, dtype=np.float64)
    base.got_shape = got.shape
    if got.shape != lo.shape:
        if got.size == lo.size and lo.ndim == 2 and got.shape == lo.shape[::-1] and np.allclose(got.T, lo, equal_nan=True):
            base.diagnosis = Diagnosis("transpose")
        else:
            base.diagnosis = Diagnosis("shape")
        base.mismatched = base.unclassified = base.n
        return base
    base.slack = exact.slack
    if not any(code_of(note) in (Code.REMOVABLE, Code.SINGULAR) for note in exact.notes.values()) and \
            _all_close(base, lo, hi, got, tolerance, dtype, exact.slack):  # removable points are edges: full path
        return base
    left, right = lo, hi  # one-sided derivatives at kinks, in either order
    lo, hi = np.fmin(left, right), np.fmax(left, right)
    undefined = np.isnan(left) | np.isnan(right)
    kinks = left != right
    kinks &= ~undefined
    allowed = tolerance.allowed(np.maximum(np.abs(np.nan_to_num(lo)), np.abs(np.nan_to_num(hi))),
                                0.0 if exact.slack is None else exact.slack)
    with np.errstate(invalid="ignore", over="ignore"):
        below = np.where(np.isfinite(lo), lo - got, np.where(got == lo, 0.0, np.inf))
        above = np.where(np.isfinite(hi), got - hi, np.where(got == hi, 0.0, np.inf))
        err = np.maximum(np.maximum(below, above), 0.0)
        err = np.where(np.isnan(got), np.inf, err)
    err = np.where(undefined, 0.0, err)
    bad = (err > allowed) | (np.isnan(got) & ~undefined)
    if strict:
        bad |= kinks
    base.mismatched = int(bad.sum())
    base.kinks = int(kinks.sum())
    # a removable singularity is an edge only where the exact expression itself is singular (its formula is
    # indeterminate here and the limit is the value): torch's NaN where the function is ordinary is a finding
    removable = np.zeros(lo.shape, dtype=bool)
    singular = np.zeros(lo.shape, dtype=bool)  # ... at a point where the function itself is singular: an edge
    for k, note in exact.notes.items():
        if k >= 0 and code_of(note) in (Code.REMOVABLE, Code.SINGULAR) and not kinks.flat[k]:
            removable.flat[k] = True
            singular.flat[k] = code_of(note) is Code.SINGULAR
    at_edge = kinks | undefined | removable
    # where the exact derivative exists as a limit of a formula that is 0·inf (the function itself is defined and
    # differentiable: 0**b along b, pow's second derivatives at base 0), torch's NaN or inf is a finding, not an edge
    base.unclassified = int((bad & ~(kinks | undefined | (removable & (np.isfinite(got) | singular)))).sum())
    base.edge_count = int(at_edge.sum())
    if base.edge_count:
        base.edges = _edges(left, right, got, kinks, undefined, removable, {**exact.notes, **exact.undefined}, allowed)
    if base.kinks:
        at = tuple(int(i) for i in np.argwhere(kinks)[0])
        a, b, g = float(lo[at]), float(hi[at]), float(got[at])
        kl, kr = float(left[at]), float(right[at])
        tol = float(allowed[at])
        side = ("left" if abs(g - kl) <= tol else "right" if abs(g - kr) <= tol
                else "between" if a - tol <= g <= b + tol else "outside")
        base.kink_side, base.kink_at, base.kink_values = side, at, (kl, kr, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(allowed > 0, err / allowed, np.where(err > 0, np.inf, 0.0))
    score = np.where(bad, np.maximum(score, 1.0) + 1.0, score)
    if lo.size and not undefined.all():
        score = np.where(undefined, -1.0, score)
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(score)), lo.shape))
        with np.errstate(invalid="ignore"):
            nearest = lo[idx] if abs(got[idx] - lo[idx]) <= abs(got[idx] - hi[idx]) else hi[idx]
        base.worst = idx
        base.expected, base.expected_hi, base.got = float(left[idx]), float(right[idx]), float(got[idx])
        base.abs_err = float(err[idx])
        base.rel_err = float(err[idx] / abs(nearest)) if nearest != 0 and np.isfinite(nearest) else None
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            base.ulps = float(err[idx] / ulp(np.array(nearest), dtype)) if np.isfinite(nearest) else None
    base.got_nonfinite_where_undefined = bool(np.all(~np.isfinite(got[undefined]))) if undefined.any() else True
    if base.mismatched and base.diagnosis is None:
        inside = (got >= lo - allowed) & (got <= hi + allowed)
        if strict and np.all(~bad | (kinks & inside)):
            base.diagnosis = Diagnosis("kink", count=int(bad.sum()))
        else:
            base.diagnosis = diagnose(lo, hi, got, bad, kinks | undefined, dtype)
    return base


def _edges(left: np.ndarray, right: np.ndarray, got: np.ndarray, kinks: np.ndarray, undefined: np.ndarray,
           removable: np.ndarray, reasons: dict[int, str], allowed: np.ndarray) -> list[Edge]:
    out: list[Edge] = []
    for mask in (kinks, undefined, removable):
        for flat in np.flatnonzero(mask.reshape(-1)):
            if len(out) >= MAX_EDGES:
                return out
            idx = tuple(int(i) for i in np.unravel_index(int(flat), left.shape))
            reason = reasons.get(int(flat), "")
            kind = KINK if kinks.flat[flat] else edge_kind(reason) if undefined.flat[flat] else REMOVABLE
            out.append(Edge(idx, kind, float(left.flat[flat]), float(right.flat[flat]), float(got.flat[flat]), reason,
                            float(np.broadcast_to(allowed, left.shape).flat[flat])))
    return out


CHUNK = 1 << 17  # elements per pass of the fast path: its temporaries stay in cache (2-3x fewer trips to memory)
SMALL = 256  # up to this many elements the fast path computes in Python floats


def _all_close(base: Comparison, lo: np.ndarray, hi: np.ndarray, got: np.ndarray, tolerance: Tolerance,
               dtype: str, slack: np.ndarray | None = None) -> bool:
    """The common case in few passes (few numpy calls on a small array, few trips to memory on a large one): no
    kinks, nothing undefined, every element within tolerance. Fills the worst element and returns True; False sends
    the comparison down the full path."""
    if not lo.size or not (lo is hi or np.array_equal(lo, hi)):  # array_equal is False on NaN: full path
        return False
    if tolerance.atol <= 0:
        return False
    flat_lo, flat_got = lo.reshape(-1), got.reshape(-1)
    flat_slack: np.ndarray | float | None = None
    if slack is not None:
        slack = np.asarray(slack)
        if slack.size == 1:
            flat_slack = float(slack.reshape(-1)[0])
        else:
            flat_slack = (slack if slack.shape == lo.shape else np.broadcast_to(slack, lo.shape)).reshape(-1)
    worst = _worst_small(flat_lo, flat_got, flat_slack, tolerance) if lo.size <= SMALL else \
        _worst_chunked(flat_lo, flat_got, flat_slack, tolerance)
    if worst is None:
        return False
    idx = tuple(int(i) for i in np.unravel_index(worst, lo.shape)) if lo.ndim > 1 else (worst,) if lo.ndim else ()
    exact = float(flat_lo[worst])
    g = float(flat_got[worst])
    e = abs(g - exact)  # finite: the worst element passed, strictly inside a finite tolerance
    base.worst, base.expected, base.expected_hi, base.got = idx, exact, exact, g
    base.abs_err = e
    base.rel_err = e / abs(exact) if exact != 0 else None
    base.ulps = e / ulp_of(exact, dtype)  # a spacing is never 0 (the smallest subnormal at 0); e / it may be inf
    return True


def _worst_chunked(lo: np.ndarray, got: np.ndarray, slack: np.ndarray | float | None, tolerance: Tolerance) -> int | None:
    """The flat index of the largest err / allowed, strictly below 1 everywhere; None otherwise (NaN, infinities,
    a mismatch, a quotient that rounded to 1). One thread: split between threads it ran 2-3x slower on 2 cores,
    beside torch's OpenMP workers that spin on after each op."""
    worst, worst_score = 0, -1.0
    score, allowed = np.empty(min(CHUNK, lo.size)), np.empty(min(CHUNK, lo.size))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for start in range(0, lo.size, CHUNK):
            g, ex = got[start:start + CHUNK], lo[start:start + CHUNK]
            sc, al = score[:g.size], allowed[:g.size]
            np.subtract(g, ex, out=sc)
            np.abs(sc, out=sc)
            np.abs(ex, out=al)
            al *= tolerance.rtol
            al += tolerance.atol
            if slack is not None:
                al += slack if isinstance(slack, float) else slack[start:start + CHUNK]
            sc /= al  # err / allowed: below 1 passes (exactly: x <= y where x / y < 1)
            k = int(np.argmax(sc))  # the first NaN if there is one
            if not sc[k] < 1.0:
                return None
            if sc[k] > worst_score:
                worst, worst_score = start + k, float(sc[k])
    return worst


def _worst_small(lo: np.ndarray, got: np.ndarray, slack: np.ndarray | float | None, tolerance: Tolerance) -> int | None:
    """_worst_chunked in Python floats (the same IEEE operations, without a numpy call's overhead per operation)."""
    rtol, atol = tolerance.rtol, tolerance.atol
    slacks = [0.0] * lo.size if slack is None else [slack] * lo.size if isinstance(slack, float) else slack.tolist()
    worst, worst_score = 0, -1.0
    for k, (ex, g, sl) in enumerate(zip(lo.tolist(), got.tolist(), slacks)):
        allowed = abs(ex) * rtol + atol + sl  # the order of Tolerance.allowed and of _worst_chunked
        if not allowed > 0:
            return None
        score = abs(g - ex) / allowed
        if not score < 1.0:
            return None
        if score > worst_score:
            worst, worst_score = k, score
    return worst


def diagnose(lo: np.ndarray, hi: np.ndarray, got: np.ndarray, bad: np.ndarray, skip: np.ndarray, dtype: str) -> Diagnosis:
    """Name the pattern: a factor k (shared by the elements), -exact, 0.5x, zero, NaN/inf, transpose, or partial."""
    ok = ~skip
    exact, g = lo[ok], got[ok]
    if (~np.isfinite(g) & np.isfinite(exact)).any():
        return Diagnosis("nonfinite", count=int((~np.isfinite(g) & np.isfinite(exact)).sum()))
    close = 1e-6 if dtype == "float64" else 1e-3
    nz = exact != 0
    if nz.any() and np.all(g[nz] == 0):
        if dtype in ("float32", "float64") and np.all(np.abs(exact[nz]) <= SATURATED * UNIT_ROUNDOFF[dtype]):
            return Diagnosis("saturated", factor=float(np.max(np.abs(exact[nz]))), count=int(nz.sum()))
        return Diagnosis("zero", count=int(nz.sum()))
    if nz.any() and np.all(np.abs(g[~nz]) <= close * np.max(np.abs(exact[nz]))):
        ratios = g[nz] / exact[nz]
        c = float(np.median(ratios))
        if np.all(np.abs(ratios - c) <= close * max(1.0, abs(c))):
            # an integer k is a wrong factor here; the checks that call backward k times without zero_() call it
            # accumulation, and only where the first call alone was right (checks.graph.check_accumulate)
            if abs(c + 1) <= close:
                return Diagnosis("sign", factor=-1.0)
            if abs(c - 0.5) <= close:
                return Diagnosis("factor", factor=0.5)
            several = int(nz.sum()) >= 2  # one number always has "a ratio": name a generic factor only when shared
            if abs(c - 1) > close and several:
                return Diagnosis("factor", factor=c)
        spread = float(np.max(np.abs(ratios - c)))
        if c != 1 and spread <= 0.01 * abs(c - 1) and int(nz.sum()) >= 2:
            return Diagnosis("relative", factor=c)
    if lo.ndim == 2 and lo.shape[0] == lo.shape[1] and not np.allclose(lo, lo.T):
        tol = close * max(1.0, float(np.max(np.abs(lo))))
        if np.allclose(got, lo.T, rtol=close, atol=tol):
            return Diagnosis("transpose")
    wrong = bad & ok  # no common factor: is it the loss of a saturated formula?
    if dtype in ("float32", "float64") and wrong.any():
        with np.errstate(invalid="ignore"):
            lost = np.abs(got[wrong] - lo[wrong])
        if np.all(np.abs(lo[wrong]) < 1) and np.all(lost <= SATURATED * UNIT_ROUNDOFF[dtype]):
            # the error is one rounding of a number of size 1: the derivative went through values of order 1 that
            # cannot resolve it (1 - y where the output y rounds to its limit)
            return Diagnosis("saturated", factor=float(np.max(np.abs(lo[wrong]))), count=int(wrong.sum()))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(got - lo) / np.abs(lo)
    rel = rel[bad & (lo != 0) & np.isfinite(rel)]
    if rel.size and float(rel.max()) < 1e-4:
        return Diagnosis("inaccurate", factor=float(rel.max()), count=int(bad.sum()))
    return Diagnosis("partial", count=int(bad.sum()))

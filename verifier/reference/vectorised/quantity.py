"""One exact quantity of the vectorised reference over a whole tensor: terms, switches at kinks, refinement in mpmath."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mpmath
import numpy as np
import sympy as sp

from ...values import Exact
from ..facts import explain_at, infinite_sides, is_real, round_mp
from ..numeric.mp import Evaluator as MpEvaluator
from ..symbols import DIGITS
from ..symfuncs import NONSMOOTH
from .arrays import aligned, unbroadcast
from .plan import REFINE_ELEMENTS, REFINE_FAN, SAMPLE_FAN, Shape

if TYPE_CHECKING:  # the point whose quantities these are (it imports this module)
    from .reference import VectorPoint


@dataclass
class Term:
    """One contribution to a quantity: ``coef * expr`` at every element of a formula's shape, summed into the
    output element each formula element maps to."""

    expr: sp.Expr
    shape: Shape  # the formula's
    coef: np.ndarray  # broadcastable to shape
    out_shape: Shape
    leaf: sp.Symbol | None = None  # kinks: one-sided in this leaf
    target: np.ndarray | None = None  # flat output index per formula element (None: broadcast reduction to out_shape)

    def fan(self, e: int) -> np.ndarray:
        """The formula elements that sum into output element e."""
        if self.target is not None:
            return np.flatnonzero(self.target == e)
        B = self.shape
        s = aligned(self.out_shape, len(B))
        mi = np.unravel_index(e, s) if s else ()
        ranges = [np.array([mi[d]]) if s[d] == B[d] and B[d] != 1 else np.arange(B[d]) for d in range(len(B))]
        if not B:
            return np.array([0])
        grid = np.meshgrid(*ranges, indexing="ij")
        return np.ravel_multi_index(tuple(g.ravel() for g in grid), B)

    def outputs(self, rs: np.ndarray) -> np.ndarray:
        """The output element each formula element maps to."""
        if self.target is not None:
            return self.target[rs]
        B = self.shape
        if not B:
            return np.zeros(len(rs), dtype=np.int64)
        s = aligned(self.out_shape, len(B))
        mi = np.unravel_index(rs, B)
        own = tuple(m if sd != 1 else np.zeros_like(m) for m, sd in zip(mi, s))
        return np.ravel_multi_index(own, s) if s else np.zeros(len(rs), dtype=np.int64)


def element_at(arr: np.ndarray, B: Shape, r: int) -> float:
    """Element r (flat, of shape B) of an array broadcast to B."""
    arr = np.asarray(arr)
    if not B:
        return float(arr.reshape(-1)[0]) if arr.size else float("nan")
    mi = np.unravel_index(r, B)
    a = arr.reshape(aligned(arr.shape, len(B)))
    return float(a[tuple(m if d != 1 else 0 for m, d in zip(mi, a.shape))])


def _switches(expr: sp.Expr) -> list[tuple[sp.Expr, sp.Expr]]:
    """(a, b) pairs whose equality is a kink or a branch boundary of the expression."""
    out = []
    for sub in sp.preorder_traversal(expr):
        if isinstance(sub, (sp.Abs, sp.sign, sp.Heaviside)):
            out.append((sub.args[0], sp.Integer(0)))
        elif isinstance(sub, (sp.Max, sp.Min)):
            out.extend(itertools.combinations(sub.args, 2))
        elif isinstance(sub, sp.core.relational.Relational):
            out.append((sub.lhs, sub.rhs))
    return out


class Quantity:
    """A list of terms summed into an output of ``shape``: float64 everywhere, exact on request."""

    def __init__(self, point: VectorPoint, terms: list[Term], shape: Shape, bracket: bool = False) -> None:
        self.point = point
        self.terms = terms
        self.shape = shape
        self.bracket = bracket  # J u: a kink contributes [min, max] of its one-sided products

    def float64(self) -> np.ndarray:
        at = self.point.at
        if len(self.terms) == 1 and self.terms[0].target is None and self.terms[0].shape == self.shape:
            t = self.terms[0]  # one formula over the output itself: no sum to form
            coef = t.coef
            if coef.ndim and not any(coef.strides):  # one number broadcast (a sum's cotangent): no array to multiply
                coef = coef.reshape(-1)[:1].reshape(())
            with np.errstate(all="ignore"):
                vals = at(t.expr, t.shape)
                return vals * coef if coef.ndim or float(coef) != 1.0 else vals
        total = np.zeros(self.shape)
        with np.errstate(all="ignore"):
            for t in self.terms:
                vals = np.broadcast_to(t.coef * at(t.expr, t.shape), t.shape)
                if t.target is not None:
                    total = total + np.bincount(t.target, vals.reshape(-1), minlength=total.size).reshape(self.shape)
                else:
                    total = total + unbroadcast(vals, self.shape)
        return total

    def exact(self) -> Exact:
        lo = self.float64()  # refinement writes into lo: a read-only view of the evaluator's values is copied
        if not (isinstance(lo, np.ndarray) and lo.flags.writeable and lo.dtype == np.float64 and lo.shape == self.shape):
            lo = np.array(lo, dtype=np.float64).reshape(self.shape)  # an ndarray even for shape ()
        ex = Exact(lo, lo, {}, np.zeros(self.shape, dtype=bool))  # hi is lo until a kink splits them
        ex.refine = lambda idx, thorough=True: self.refine(ex, idx, thorough)
        # a finite sum says every element is finite in one read pass (a NaN or inf anywhere makes the sum one;
        # an overflowing sum of finite elements only sends it to the full test)
        finite = lo.size == 0 or bool(np.isfinite(np.add.reduce(lo, axis=None)))
        suspects: set[int] = set() if finite else set(np.flatnonzero(~np.isfinite(lo)).tolist()[:REFINE_ELEMENTS])
        for t in self.terms:
            if t.expr.has(*NONSMOOTH):
                suspects |= self._near_switch(t)
        if suspects:
            self.refine(ex, np.array(sorted(suspects)[:REFINE_ELEMENTS]), True)
        return ex

    def _near_switch(self, t: Term) -> set[int]:
        at = self.point.at
        near = np.zeros(t.shape, dtype=bool)
        with np.errstate(all="ignore"):
            for a, b in _switches(t.expr):
                va, vb = at(a, t.shape), at(b, t.shape)
                close = np.abs(va - vb) <= 4 * np.finfo(np.float64).eps * np.maximum(np.abs(va), np.abs(vb))
                near |= np.broadcast_to(close, t.shape)
        rs = np.flatnonzero(near)[:REFINE_ELEMENTS]
        return set(t.outputs(rs).tolist())

    def refine(self, ex: Exact, indices: np.ndarray, thorough: bool = True) -> None:
        """Recompute these output elements exactly (in place); not thorough: skip elements that sum more than
        SAMPLE_FAN terms (and leave them for a thorough request)."""
        stats = self.point.ref.stats
        scale = None
        for e in np.unique(np.asarray(indices, dtype=np.int64)):
            e = int(e)
            if e in ex.exact_at:
                continue
            if not thorough and sum(len(t.fan(e)) for t in self.terms) > SAMPLE_FAN:
                continue
            ex.exact_at.add(e)
            result = self._element(e)
            if result is None:
                stats["unrefined"] += 1
                continue
            stats["refined"] += 1
            lo, hi, why, kink = result
            if kink and ex.hi is ex.lo:
                ex.hi = ex.lo.copy()
            flat_lo, flat_hi = ex.lo.reshape(-1), ex.hi.reshape(-1)
            if why is not None:
                flat_lo[e] = flat_hi[e] = math.nan
                ex.undefined[e] = why
                continue
            ex.undefined.pop(e, None)
            before = flat_lo[e]
            flat_lo[e], flat_hi[e] = round_mp(lo), round_mp(hi)
            if ex.kinks is not None:
                ex.kinks.reshape(-1)[e] = kink
            if not kink and math.isfinite(before) and math.isfinite(flat_lo[e]):
                scale = max(scale or 0.0, abs(flat_lo[e]))  # the largest exact value refined so far
                if scale > 0:  # in ulps of the quantity's largest element (an exact 0 has no ulp of its own)
                    stats["max_ulps"] = max(stats["max_ulps"], abs(before - flat_lo[e]) / float(np.spacing(scale)))

    def _element(self, e: int) -> tuple[Any, Any, str | None, bool] | None:
        lo = hi = mpmath.mpf(0)
        kink = False
        point = self.point
        with mpmath.workdps(DIGITS):
            for t in self.terms:
                rs = t.fan(e)
                if len(rs) > REFINE_FAN:
                    return None
                smooth = not t.expr.has(*NONSMOOTH) or t.leaf is None
                free = list(t.expr.free_symbols)
                for r in rs.tolist():
                    values = {s: point.leaf_at(s, t.shape, r) for s in free}
                    bad = point.nonfinite_reason(values, t.shape, r)
                    if bad:
                        return None, None, bad, False
                    c = mpmath.mpf(element_at(t.coef, t.shape, r))
                    if mpmath.isnan(c):
                        return None, None, point.undefined_upstream(), False
                    if c == 0:
                        continue
                    mid, why = _mp(t.expr, values)
                    if why is not None:
                        return None, None, why, False
                    if smooth:
                        lo, hi = lo + c * mid, hi + c * mid
                        continue
                    x = values[t.leaf] if t.leaf in values else None
                    sides = []
                    if x is not None:
                        delta = mpmath.mpf(10) ** (-DIGITS // 2) * max(1, abs(x))
                        for sign in (-1, 1):
                            v, w = _mp(t.expr, {**values, t.leaf: x + sign * delta})
                            sides.append(mid if w is not None else v)
                    left, right = sides if sides else (mid, mid)
                    scale = max(abs(left), abs(right), 1)
                    if abs(left - right) <= mpmath.mpf(10) ** (-DIGITS // 3) * scale:
                        left = right = mid
                    else:
                        steep = _infinite_sides(t.expr, values, t.leaf, x, delta, (left, right))
                        if steep:
                            return None, None, steep, False
                        kink = True
                    p, q = c * left, c * right
                    if self.bracket:
                        lo, hi = lo + min(p, q), hi + max(p, q)
                    else:
                        lo, hi = lo + p, hi + q
        return lo, hi, None, kink


def _infinite_sides(expr: sp.Expr, values: dict[sp.Symbol, Any], leaf: sp.Symbol, x: Any, delta: Any,
                    sides: tuple[Any, Any]) -> str | None:
    """Element expansion's rule (evaluation.infinite_sides) for one term: the reason a side is infinite, else None."""
    near = [_mp(expr, {**values, leaf: x + sign * delta * mpmath.mpf(10) ** -6})[0] for sign in (-1, 1)]
    return infinite_sides(sides, (near[0], near[1]), leaf, x)


_EXACT: dict[Any, tuple[Any, str | None]] = {}  # (formula, its arguments' values, digits) -> value: refined before
EXACT_KEPT = 65536


def _mp(expr: sp.Expr, values: dict[sp.Symbol, Any]) -> tuple[Any, str | None]:
    """A term's formula at one element, exactly (kept for the process: the seeded sample refines the same elements of
    the same formulas at every call of a repeated check)."""
    key = (expr, tuple(sorted(values.items(), key=lambda kv: kv[0].name)), mpmath.mp.dps)
    try:
        return _EXACT[key]
    except (KeyError, TypeError):
        pass
    out = _mp_now(expr, values)
    if len(_EXACT) < EXACT_KEPT:
        try:
            _EXACT[key] = out
        except TypeError:  # an unhashable value: not kept
            pass
    return out


def _mp_now(expr: sp.Expr, values: dict[sp.Symbol, Any]) -> tuple[Any, str | None]:

    try:
        v = MpEvaluator(dict(values))(expr)
    except (ZeroDivisionError, ValueError, TypeError, OverflowError, ArithmeticError) as exc:
        return None, explain_at(expr, values, exc)
    if not is_real(v) or mpmath.isinf(v):
        return None, explain_at(expr, values, v)
    return (v.real if isinstance(v, mpmath.mpc) else mpmath.mpf(v)), None

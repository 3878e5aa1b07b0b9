"""How far rounding alone can move a computation done in a low precision: a first-order running error bound.

Every operation of an expression is assumed to round its result once (relative error at most the unit roundoff u,
torch's half-precision kernels compute in float32 and round the result), the inputs are exact (the point is rounded
to the dtype before both sides see it), and errors propagate to first order (Wilkinson's running error analysis;
Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 3). For a node with value v and arguments a_i:

    R(symbol) = 0                      R(integer) = 0          R(other constant) = |v|
    R(a_1 + ... + a_k) = sum R(a_i) + ceil(log2 k) * sum |a_i|        (pairwise summation, as torch reduces)
    R(a_1 * ... * a_k) = sum_i R(a_i) * prod_{j != i} |a_j| + (k - 1) |v|   (a factor ±2**n scales exactly)
    R(f(a_1, ..., a_k)) = sum_i |df/da_i| R(a_i) + |v|               (powers, exp, log, sin, erf, ...)
    R(max/min/abs/where) = R of the argument taken                   R(sign, step) = 0

so that |computed - exact| <= R * u to first order. R is evaluated at the point from sympy's own expression of the
value or derivative (the derivative torch computes is another formula of similar length: the comparison allows a
safety factor of that). Only sympy and mpmath; never imports torch.
"""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from .dag import DagEvaluator
from .dtypes import UNIT_ROUNDOFF
from .mpeval import Evaluator

SAFETY = 1  # the allowance is SAFETY * u * R; R is already a worst-case first-order bound


class RoundingBound(DagEvaluator):
    """R(expr) at one point, in units of u; NaN where the value does not exist. Also the largest magnitude met on the
    way (an intermediate that overflows the dtype makes the computed value meaningless)."""

    def __init__(self, values: Evaluator) -> None:
        self.values = values  # the point's values of every sub-expression (shared memo)
        self.memo: dict[sp.Basic, Any] = {}
        self.peak: dict[sp.Basic, Any] = {}  # the largest |intermediate| under each node

    def bound(self, expr: sp.Basic) -> tuple[float, float]:
        """(R, the largest |intermediate value|) of expr; NaN for both where it has no value."""
        try:
            r = self(expr)
        except (ZeroDivisionError, ValueError, TypeError, OverflowError, ArithmeticError):
            return math.nan, math.nan
        return _float(r), _float(self.peak.get(expr, 0))

    def _value(self, node: sp.Basic) -> Any:
        v = self.values(node)
        if isinstance(v, mpmath.mpc):
            v = v.real if v.imag == 0 else mpmath.nan
        return v

    def _whole(self, node: sp.Basic) -> bool:
        if isinstance(node, sp.Piecewise):  # only the branch taken counts
            for branch, cond in node.args:
                if self.values(cond):
                    self.memo[node] = self(branch)
                    self.peak[node] = self.peak.get(branch, 0)
                    return True
        return False

    def _apply(self, node: sp.Basic) -> Any:
        args = node.args
        value = self._value(node) if not isinstance(node, (sp.logic.boolalg.Boolean, sp.core.relational.Relational)) \
            else 0
        self.peak[node] = max([abs(value) if _number(value) else 0] + [self.peak.get(a, 0) for a in args])
        if not args:
            if node.is_Symbol or node.is_Integer or isinstance(node, sp.logic.boolalg.BooleanAtom):
                return mpmath.mpf(0)
            return abs(value)  # a constant rounded once (1/3, pi)
        if isinstance(node, (sp.logic.boolalg.Boolean, sp.core.relational.Relational)):
            return mpmath.mpf(0)  # a condition: which branch is taken is not an error of the value
        r = [self.memo[a] for a in args]
        if isinstance(node, sp.Add):
            return mpmath.fsum(r) + math.ceil(math.log2(len(args))) * mpmath.fsum(abs(self._value(a)) for a in args)
        if isinstance(node, sp.Mul):
            mags = [abs(self._value(a)) for a in args]
            total = mpmath.mpf(0)
            for i, ri in enumerate(r):
                if ri:
                    total += ri * mpmath.fprod(m for j, m in enumerate(mags) if j != i)
            exact = sum(1 for a in args if a.is_Rational and _power_of_two(a))  # -1, 2, 1/2: exact scalings
            return total + max(len(args) - 1 - exact, 0) * abs(value)
        if isinstance(node, (sp.Max, sp.Min)):
            taken = [ri for a, ri in zip(args, r) if self._value(a) == value]
            return max(taken or r)
        if isinstance(node, sp.Abs):
            return r[0]
        if isinstance(node, (sp.sign, sp.Heaviside)):
            return mpmath.mpf(0)
        return self._propagated(node, r) + abs(value)

    def _propagated(self, node: sp.Basic, r: list[Any]) -> Any:
        """sum |d node / d arg_i| * R(arg_i): the errors of the arguments carried through the function."""
        total = mpmath.mpf(0)
        for i, ri in enumerate(r):
            if not ri:
                continue
            try:
                if isinstance(node, sp.Pow):
                    base, exp = node.args
                    d = exp * base ** (exp - 1) if i == 0 else node * sp.log(base)
                else:
                    d = node.fdiff(i + 1)
                slope = abs(self._value(d))
            except (ValueError, TypeError, ZeroDivisionError, ArithmeticError, NotImplementedError, AttributeError):
                slope = mpmath.mpf(1)  # no derivative to carry the error by: assume it passes through unchanged
            if not _number(slope):
                slope = mpmath.mpf(1)
            total += slope * ri
        return total


def normwise_slack(exact: np.ndarray, dtype: str, operations: int) -> np.ndarray:
    """Where no per-element bound is known (the large-tensor references): every element may carry the rounding of
    `operations` operations on the largest magnitude of the quantity (a norm-wise bound, as for matrix products)."""
    finite = np.abs(exact[np.isfinite(exact)])
    scale = float(finite.max()) if finite.size else 0.0
    return np.full(exact.shape, SAFETY * UNIT_ROUNDOFF[dtype] * operations * scale)


def summed_slack(weights: np.ndarray, slack: np.ndarray, magnitude: np.ndarray, dtype: str | None) -> np.ndarray:
    """The slack of sum_i w_i e_i over axis 0 of e (weights |w|, slack and |e| given): each term's slack weighted,
    plus the rounding of the products and of the sum (pairwise: ceil(log2 k) levels of at most sum |w_i e_i| each),
    by the rule above."""
    terms = weights[:, None] * magnitude
    levels = 1 + math.ceil(math.log2(max(len(weights), 1)))
    return weights @ slack + SAFETY * UNIT_ROUNDOFF[dtype or "float64"] * levels * terms.sum(axis=0)


def _power_of_two(r: sp.Rational) -> bool:
    p, q = abs(int(r.p)), int(r.q)
    return p & (p - 1) == 0 and q & (q - 1) == 0 and p > 0


def _number(v: Any) -> bool:
    return isinstance(v, (mpmath.mpf, int, float)) and mpmath.isfinite(v)


def _float(v: Any) -> float:
    try:
        out = float(v)
    except (TypeError, ValueError):
        return math.nan
    except OverflowError:
        return math.inf
    return out

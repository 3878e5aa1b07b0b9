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
from collections.abc import Sequence
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from ..dtypes import HALF, LARGEST, UNIT_ROUNDOFF
from ..values import Code, Exact, Reason
from .chainbound import ChainBound
from .numeric.dag import DagEvaluator
from .numeric.mp import Evaluator

SAFETY = 1  # the allowance is SAFETY * u * R; R is already a worst-case first-order bound
# float32 and float64 (the derived tolerance): every operation may be off by KAPPA units of roundoff (2 ulps: torch's
# vectorised elementary functions are within 1 ulp), a library function's derivative value by the dtype's rtol
KAPPA = 4


class RoundingBound(DagEvaluator):
    """R(expr) at one point, in units of u; NaN where the value does not exist. Also the largest magnitude met on the
    way (an intermediate that overflows the dtype makes the computed value meaningless)."""

    def __init__(self, values: Evaluator, stable: bool = False) -> None:
        self.values = values  # the point's values of every sub-expression (shared memo)
        # stable: a library function may be evaluated at its argument rounded once more (torch's sinc computes
        # sin(pi x) from the rounded pi x): |a f'(a)| more per argument (the mixed forward-backward error model)
        self.stable = stable
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
        if self.stable and not isinstance(node, sp.Pow):
            r = [ri + abs(self._value(a)) for ri, a in zip(r, args)]
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


class RoundingSlack:
    """The half-precision slack of an exact reference at one point (mixed into evaluation.PointReference, which
    gives ref, args, rounding and _cache)."""

    ref: Any
    args: list[Any]
    rounding: str | None
    _cache: dict[str, Any]

    def _slack(self, exprs: Sequence[sp.Expr]) -> tuple[np.ndarray, dict[int, str]] | None:
        """The absolute error rounding in self.rounding can do to each expression's value (SAFETY * u * R), and the
        elements whose computation overflows the dtype on the way, with the reason; None at full precision."""
        if self.rounding is None:
            return None
        with mpmath.workdps(30):
            bound = RoundingBound(self._at_point(), stable=self.rounding not in HALF)
            found = [bound.bound(e) for e in exprs]
        scale = (SAFETY if self.rounding in HALF else KAPPA) * UNIT_ROUNDOFF[self.rounding]
        slack = np.array([scale * r if math.isfinite(r) else 0.0 for r, _ in found])
        largest = LARGEST[self.rounding]
        over: dict[int, str] = {k: Reason(f"the exact value or an intermediate of its formula reaches {peak:.4g}, beyond "
                          f"{self.rounding}'s largest finite value {largest:g}: the dtype cannot carry this computation",
                          Code.BEYOND_RANGE)
                for k, (_, peak) in enumerate(found) if peak > largest}
        return slack, over

    def _at_point(self) -> Evaluator:
        """One evaluator of sub-expression values at the point, shared by every bound (its memo is the point's)."""
        if "rounding_at" not in self._cache:
            self._cache["rounding_at"] = Evaluator(dict(zip(self.ref.args, self.args)))
        return self._cache["rounding_at"]

    def _jacobian_slack(self) -> tuple[np.ndarray, dict[int, str]] | None:
        """The rounding slack of every Jacobian entry, shape (out, wrt), and the entries that overflow (which the
        Jacobian then leaves out, as a pole: everything built from it sees them undefined)."""
        if self.rounding is None:
            return None
        if "jac_slack" not in self._cache and self.rounding not in HALF:
            with mpmath.workdps(30):
                chain = self._chain(1)
                rows = [chain.first(e)[1] for e in self.ref.flat_out]
            slack = np.array(rows, dtype=float).reshape(len(rows), len(self.ref.wrt)) * chain.unit
            self._cache["jac_slack"] = _known(slack, self.rounding), {}
        if "jac_slack" not in self._cache:
            jac = self.ref.jacobian()
            slack, over = self._slack([e for row in jac for e in row])  # type: ignore[misc]  # not None: the rounding dtype is set here
            slack = slack.reshape(len(jac), len(self.ref.wrt)) + self._forward_rounding(jac)
            self._cache["jac_slack"] = slack, over
        return self._cache["jac_slack"]

    def _chain(self, order: int) -> Any:
        """The chain-rule running bound of this point (float32 and float64; :mod:`verifier.reference.chainbound`)."""
        from ..case.model import DEFAULT_TOLERANCES

        key = f"chain{order}"
        if key not in self._cache:
            dtype = self.rounding or "float64"
            unit = KAPPA * UNIT_ROUNDOFF[dtype]
            self._cache[key] = ChainBound(self._at_point(), RoundingBound(self._at_point(), stable=True), self.ref.wrt, order,
                                          library=DEFAULT_TOLERANCES[dtype].rtol / unit, unit=unit, kappa=KAPPA)
        return self._cache[key]

    def _hessian_slack(self, scalar: sp.Expr) -> np.ndarray:
        """float32 / float64: the chain-rule bound of every second derivative of a scalar expression, (n, n)."""
        with mpmath.workdps(30):
            chain = self._chain(2)
            f = chain.second(scalar)[1]
        return _known(np.asarray(f, dtype=float) * chain.unit, self.rounding)

    def _forward_rounding(self, jac: list[list[sp.Expr]]) -> np.ndarray:
        """What rounding the forward value does to a backward formula that reads it (torch's sigmoid backward is
        y (1 - y) from the rounded y, tanh's 1 - y², exp's y): a value y_i rounded by u |y_i| is the value at an input
        moved by u |y_i| / |dy_i/dx_j|, where the derivative is off by |d²y_i/dx_j²| times that. Per Jacobian entry."""
        out = np.zeros((len(jac), len(self.ref.wrt)))
        for i, row in enumerate(jac):
            for j, d in enumerate(row):
                out[i, j] = self._shift(i, d, d, j)  # the slope dy_i/dx_j is the entry itself
        return out

    def _forward_rounding_higher(self, keys: list[tuple[int, ...]], exprs: list[sp.Expr]) -> np.ndarray:
        """The same for the entries of an order-k derivative of a scalar output: along each input j it differentiates
        by, the shift u |y| / |dy/dx_j| times the entry's own derivative along x_j."""
        first = self.ref.jacobian()[0]
        return np.array([sum(self._shift(0, first[j], e, j) for j in set(k)) for k, e in zip(keys, exprs)])

    def _shift(self, i: int, slope: sp.Expr, entry: sp.Expr, j: int) -> float:
        """u |y_i| / |dy_i/dx_j| (the input shift a rounded y_i stands for) times |d entry / dx_j|; 0 where either
        derivative is 0 or has no value."""
        s = self.ref.wrt[j]
        if entry == 0 or s not in entry.free_symbols:
            return 0.0
        at = self._at_point()
        with mpmath.workdps(30):
            y, dy, curve = (_safe(at, e) for e in (self.ref.flat_out[i], slope, sp.diff(entry, s)))
        if not all(isinstance(v, mpmath.mpf) and mpmath.isfinite(v) for v in (y, dy, curve)) or dy == 0:
            return 0.0
        return float(UNIT_ROUNDOFF[self.rounding or "float64"] * abs(curve) * abs(y) / abs(dy))

    def _with_slack(self, ex: Exact, exprs: Sequence[sp.Expr]) -> Exact:
        """ex with the rounding slack of its expressions (in order of ex's flat elements)."""
        found = self._slack(exprs)
        return ex if found is None else set_slack(ex, *found)


def set_slack(ex: Exact, slack: np.ndarray, over: dict[int, str] | None = None) -> Exact:
    """ex (in place) with a slack per element, and the elements whose computation overflows the dtype undefined."""
    ex.slack = slack.reshape(ex.lo.shape)
    for k, why in (over or {}).items():
        if k not in ex.undefined:
            ex.lo.flat[k] = ex.hi.flat[k] = math.nan
            ex.undefined[k] = why
    return ex


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


def _known(slack: np.ndarray, dtype: str | None) -> np.ndarray:
    """A chain-rule bound with the entries it could not derive (a partial sympy cannot evaluate) at the fixed
    table's atol instead."""
    from ..case.model import DEFAULT_TOLERANCES

    return np.where(np.isfinite(slack), slack, DEFAULT_TOLERANCES[dtype or "float64"].atol)


def _power_of_two(r: sp.Rational) -> bool:
    p, q = abs(int(r.p)), int(r.q)
    return p & (p - 1) == 0 and q & (q - 1) == 0 and p > 0


def _safe(at: Evaluator, e: sp.Expr) -> Any:
    """The value of e, or None where it has none."""
    try:
        return at(e)
    except (ZeroDivisionError, ValueError, TypeError, OverflowError, ArithmeticError):
        return None


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

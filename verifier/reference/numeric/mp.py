"""Evaluate sympy expressions in mpmath by walking the expression DAG (shared sub-expressions evaluated once).

No code is generated or executed (unlike sympy's lambdify), and the cost is linear in the size of the DAG.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Callable

import mpmath
import numpy as np
import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair

from ..symfuncs import LogAbsGamma, Ndtr, Sinc, SincDerivative, StopGrad, XLogY
from .dag import DagEvaluator


def _heaviside(x: Any, h0: Any = None) -> Any:
    return mpmath.mpf(0) if x < 0 else mpmath.mpf(1) if x > 0 else (mpmath.mpf(h0) if h0 is not None else mpmath.mpf(0.5))


def _sign(x: Any) -> Any:
    return mpmath.mpf(mpmath.sign(x))


def sinc(x: Any) -> Any:
    return mpmath.mpf(1) if x == 0 else mpmath.sin(mpmath.pi * x) / (mpmath.pi * x)


def sinc_derivative(n: Any, x: Any) -> Any:
    """d^n/dx^n sin(pi x)/(pi x): its Taylor series for |x| <= 1 (no 0/0 at 0), Leibniz's rule beyond."""
    n = int(n)
    pi = mpmath.pi
    if abs(x) <= 1:
        total, k = mpmath.mpf(0), (n + 1) // 2
        eps = mpmath.mpf(2) ** (-mpmath.mp.prec - 10)
        while True:  # (-1)^k (pi x)^(2k) / (2k+1)!, differentiated n times
            term = (-1) ** k * pi ** (2 * k) * mpmath.power(x, 2 * k - n) / ((2 * k + 1) * mpmath.factorial(2 * k - n))
            total += term
            if 2 * k - n > 4 and abs(term) < eps * max(abs(total), eps):
                return total
            k += 1
    return mpmath.fsum(mpmath.binomial(n, j) * pi ** j * mpmath.sin(pi * x + j * pi / 2)
                       * (-1) ** (n - j) * mpmath.factorial(n - j) / (pi * mpmath.power(x, n - j + 1))
                       for j in range(n + 1))


def xlogy(x: Any, y: Any) -> Any:
    return mpmath.mpf(0) if x == 0 else x * mpmath.log(y)


FUNCTIONS: dict[type, Callable[..., Any]] = {
    sp.exp: mpmath.exp, sp.log: lambda x, b=None: mpmath.log(x) if b is None else mpmath.log(x, b),
    sp.sin: mpmath.sin, sp.cos: mpmath.cos, sp.tan: mpmath.tan, sp.asin: mpmath.asin, sp.acos: mpmath.acos,
    sp.atan: mpmath.atan, sp.sinh: mpmath.sinh, sp.cosh: mpmath.cosh, sp.tanh: mpmath.tanh, sp.asinh: mpmath.asinh,
    sp.acosh: mpmath.acosh, sp.atanh: mpmath.atanh, sp.atan2: mpmath.atan2, sp.erf: mpmath.erf,
    sp.erfc: mpmath.erfc, sp.erfinv: mpmath.erfinv, sp.Abs: abs, sp.sign: _sign, sp.Heaviside: _heaviside,
    sp.DiracDelta: lambda *a: mpmath.mpf(0), sp.polygamma: mpmath.polygamma, sp.gamma: mpmath.gamma,
    sp.loggamma: mpmath.loggamma, sp.sec: mpmath.sec, sp.csc: mpmath.csc, sp.cot: mpmath.cot,
    sp.sech: mpmath.sech, sp.csch: mpmath.csch, sp.coth: mpmath.coth,
    StopGrad: lambda x: x, LogAbsGamma: lambda x: mpmath.log(abs(mpmath.gamma(x))),
    sp.besseli: mpmath.besseli, Sinc: sinc, SincDerivative: sinc_derivative, XLogY: xlogy, Ndtr: mpmath.ncdf,
}
_RELATIONS: dict[type, Callable[[Any, Any], bool]] = {
    sp.StrictLessThan: lambda a, b: a < b, sp.LessThan: lambda a, b: a <= b,
    sp.StrictGreaterThan: lambda a, b: a > b, sp.GreaterThan: lambda a, b: a >= b,
    sp.Equality: lambda a, b: a == b, sp.Unequality: lambda a, b: a != b,
}


class Evaluator(DagEvaluator):
    """Values of sympy expressions at one point; the memo is shared by every expression evaluated with it."""

    def __init__(self, values: dict[sp.Symbol, Any]) -> None:
        self.memo: dict[sp.Basic, Any] = dict(values)

    def _whole(self, node: sp.Basic) -> bool:
        if isinstance(node, sp.Piecewise):  # only the branch taken: the others may be undefined here
            self.memo[node] = self._piecewise(node)
            return True
        return False

    def _piecewise(self, node: sp.Piecewise) -> Any:
        for branch, cond in node.args:
            if self(cond):
                return self(branch)
        raise ValueError("no branch of a where() applies")

    def _apply(self, node: sp.Basic) -> Any:
        memo = self.memo
        if node.is_Integer:
            return mpmath.mpf(int(node))
        if node.is_Rational:
            return mpmath.mpf(int(node.p)) / int(node.q)
        if node.is_Float:
            return mpmath.mpf(node._mpf_)
        if node is sp.pi:
            return +mpmath.pi
        if node is sp.E:
            return mpmath.e + 0
        if node is sp.true or node is sp.false:
            return bool(node)
        if node in (sp.oo, sp.zoo):
            return mpmath.inf
        if node is sp.S.NegativeInfinity:
            return -mpmath.inf
        if node is sp.nan:
            return mpmath.nan
        args = [memo[a] for a in node.args]
        if isinstance(node, sp.Add):
            return mpmath.fsum(args)
        if isinstance(node, sp.Mul):
            return functools.reduce(operator.mul, args)
        if isinstance(node, sp.Pow):
            base, exp = args
            if node.args[1].is_Integer:
                return mpmath.power(base, int(node.args[1]))
            return mpmath.power(base, exp)
        if isinstance(node, (sp.Max, sp.Min)):
            return max(args) if isinstance(node, sp.Max) else min(args)
        rel = _RELATIONS.get(type(node))
        if rel is not None:
            return rel(*args)
        if isinstance(node, sp.And):
            return all(args)
        if isinstance(node, sp.Or):
            return any(args)
        if isinstance(node, sp.Not):
            return not args[0]
        fn = FUNCTIONS.get(type(node))
        if fn is None:
            raise TypeError(f"no mpmath evaluation for {type(node).__name__}")
        return fn(*args)


def _safe(fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn, with NaN where it has no value (a pole, outside its domain)."""

    def call(*args: Any) -> Any:
        try:
            v = fn(*args)
        except (ZeroDivisionError, ValueError, TypeError, OverflowError, ArithmeticError):
            return mpmath.nan
        if isinstance(v, mpmath.mpc):
            return v.real if v.imag == 0 else mpmath.nan
        return v

    return call


class ArrayEvaluator(Evaluator):
    """Values of sympy expressions at many points at once: symbols map to object arrays of mpf (one per point) and
    each DAG node is applied element-wise. Where a value does not exist it is NaN (no reasons: the sweep counts
    them). Every branch of a where() is evaluated and the taken one selected."""

    def __init__(self, values: dict[sp.Symbol, Any], size: int) -> None:
        super().__init__(values)
        self.size = size
        self._ufuncs: dict[Any, Any] = {}

    def _whole(self, node: sp.Basic) -> bool:
        return False

    def _ufunc(self, fn: Callable[..., Any], nargs: int) -> Any:
        key = (fn, nargs)
        if key not in self._ufuncs:
            self._ufuncs[key] = np.frompyfunc(_safe(fn), nargs, 1)
        return self._ufuncs[key]

    def _apply(self, node: sp.Basic) -> Any:
        if not node.args:
            return super()._apply(node)
        args = [self.memo[a] for a in node.args]
        if isinstance(node, sp.Piecewise):
            out = np.full(self.size, mpmath.nan, dtype=object)
            taken = np.zeros(self.size, dtype=bool)
            for value, cond in args:  # each argument is an (expression, condition) pair
                c = np.broadcast_to(np.asarray(cond, dtype=bool), (self.size,)) & ~taken
                column = np.empty(self.size, dtype=object)
                column[:] = value if isinstance(value, np.ndarray) else [value] * self.size
                out = np.where(c, column, out)
                taken |= c
            return out
        if isinstance(node, ExprCondPair):
            return args
        if isinstance(node, sp.Add):
            return self._ufunc(lambda *a: mpmath.fsum(a), len(args))(*args)
        if isinstance(node, sp.Mul):
            return self._ufunc(lambda *a: functools.reduce(operator.mul, a), len(args))(*args)
        if isinstance(node, sp.Pow):
            return self._ufunc(mpmath.power, 2)(*args)
        if isinstance(node, (sp.Max, sp.Min)):
            return self._ufunc(max if isinstance(node, sp.Max) else min, len(args))(*args)
        rel = _RELATIONS.get(type(node))
        if rel is not None:
            return self._ufunc(rel, 2)(*args).astype(bool)
        if isinstance(node, (sp.And, sp.Or)):
            arrays = [np.broadcast_to(np.asarray(a, dtype=bool), (self.size,)) for a in args]
            return functools.reduce(np.logical_and if isinstance(node, sp.And) else np.logical_or, arrays)
        if isinstance(node, sp.Not):
            return ~np.asarray(args[0], dtype=bool)
        fn = FUNCTIONS.get(type(node))
        if fn is None:
            raise TypeError(f"no mpmath evaluation for {type(node).__name__}")
        return self._ufunc(fn, len(args))(*args)

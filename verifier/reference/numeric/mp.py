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

from .dag import DagEvaluator
from .table import RELATIONS, TABLE

FUNCTIONS: dict[type, Callable[..., Any]] = {f: row.mp for f, row in TABLE.items()}
_RELATIONS: dict[type, Callable[[Any, Any], bool]] = {r: fns[0] for r, fns in RELATIONS.items()}


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

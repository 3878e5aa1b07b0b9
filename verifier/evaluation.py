"""The exact reference at one point: sympy's derivative expressions evaluated at 50 digits, one-sided at kinks,
with a reason wherever a value does not exist."""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

import mpmath
import numpy as np
import sympy as sp

from .expr import Node
from .mpeval import Evaluator
from .symbolic import DIGITS, Reference, _basic, display, evaluate
from .values import Exact


def _to_mp(values: np.ndarray) -> list[Any]:
    return [mpmath.mpf(float(v)) for v in values.reshape(-1)]


class PointReference:
    """Exact values of one case at one point."""

    def __init__(self, ref: Reference, point: Mapping[str, np.ndarray]) -> None:
        self.ref = ref
        self.point = point
        self.args = [a for i in ref.case.inputs for a in _to_mp(point[i.name])]
        self._cache: dict[str, Any] = {}

    def _eval(self, key: str, exprs: Sequence[sp.Expr], args: list[Any] | None = None) -> tuple[list[Any], dict[int, str]]:
        """Evaluate expressions in DIGITS digits; elements that do not exist come back None with a reason."""
        args = self.args if args is None else args
        out: list[Any] = []
        bad: dict[int, str] = {}
        nonfinite = {s for s, a in zip(self.ref.args, args) if not mpmath.isfinite(a)}
        with mpmath.workdps(DIGITS):
            evaluate_at = Evaluator(dict(zip(self.ref.args, args)))
            for k, e in enumerate(exprs):
                if nonfinite and e.free_symbols & nonfinite:  # the point is not in R^n: nothing is defined there
                    bad[k] = self.explain(e, None)
                    out.append(None)
                    continue
                try:
                    v = evaluate_at(e)
                except (ZeroDivisionError, ValueError, TypeError, OverflowError, ArithmeticError) as exc:
                    v = exc
                if isinstance(v, Exception) or not _is_real(v) or mpmath.isinf(v):  # an infinite value is a pole
                    bad[k] = self.explain(e, v)
                    out.append(None)
                else:
                    out.append(v if isinstance(v, mpmath.mpf) else mpmath.mpf(v))
        return out, bad

    def explain(self, expr: sp.Expr, value: Any) -> str:
        """Why an expression has no real value here: a non-finite input, or the first sub-expression outside its
        domain."""
        return explain_at(expr, dict(zip(self.ref.args, self.args)), value)

    def nonfinite_wrt(self) -> dict[int, str]:
        """Differentiable input elements that are NaN or infinite, by position in wrt, with the reason."""
        values = dict(zip(self.ref.args, self.args))
        return {j: f"the input {display(s)} = {float(values[s])} is not a finite number"
                for j, s in enumerate(self.ref.wrt) if not mpmath.isfinite(values[s])}

    def value(self) -> Exact:
        vals, bad = self._eval("value", self.ref.flat_out)
        return _exact(vals, bad, self.ref.output.shape)

    def _jacobian_mp(self) -> tuple[np.ndarray, np.ndarray, dict[int, str], np.ndarray]:
        """(lo, hi, undefined, kink mask) of the Jacobian as mp object arrays, shape (out, wrt)."""
        if "jac" in self._cache:
            return self._cache["jac"]
        jac = self.ref.jacobian()
        m, n = len(jac), len(self.ref.wrt)
        flat = [e for row in jac for e in row]
        vals, bad = self._eval("jac", flat)
        _, value_bad = self._eval("value", self.ref.flat_out)
        for i, why in value_bad.items():  # no derivative where the function itself does not exist
            for j in range(n):
                vals[i * n + j] = None
                bad[i * n + j] = why
        for j, why in self.nonfinite_wrt().items():  # nor with respect to an input that is not a number
            for i in range(m):
                vals[i * n + j] = None
                bad[i * n + j] = why
        # Where one partial does not exist (a pole), the whole row and column are out: reverse mode multiplies the
        # pole by the zero weights of the other outputs, forward mode by the zero tangents of the other inputs,
        # and IEEE says 0 * inf is NaN. Neither is a gradient bug; both are outside the domain.
        for hole, why in list(bad.items()):
            i0, j0 = divmod(hole, n)
            for k in [i0 * n + j for j in range(n)] + [i * n + j0 for i in range(m)]:
                vals[k] = None
                bad.setdefault(k, why)
        lo = np.array(vals, dtype=object).reshape(m, n)
        hi = lo.copy()
        kinks = np.zeros((m, n), dtype=bool)
        if not self.ref.smooth:
            positions = {id(s): k for k, s in enumerate(self.ref.args)}
            for j, s in enumerate(self.ref.wrt):
                k = positions[id(s)]
                x = self.args[k]
                delta = mpmath.mpf(10) ** (-DIGITS // 2) * max(1, abs(x))
                sides = []
                for sign in (-1, 1):
                    args = list(self.args)
                    args[k] = x + sign * delta
                    col, _ = self._eval("jac", flat, args)
                    sides.append(np.array(col, dtype=object).reshape(m, n)[:, j])
                for i in range(m):
                    left, right = sides[0][i], sides[1][i]
                    if left is None or right is None:
                        continue
                    scale = max(abs(left), abs(right), 1)
                    if abs(left - right) > mpmath.mpf(10) ** (-DIGITS // 3) * scale:
                        lo[i, j], hi[i, j] = left, right
                        kinks[i, j] = True
                        bad.pop(i * n + j, None)
        result = (lo, hi, bad, kinks)
        self._cache["jac"] = result
        return result

    def jacobian(self, name: str) -> Exact:
        """d out / d input, shaped out_shape + input_shape."""
        lo, hi, bad, kinks = self._jacobian_mp()
        sl = self.ref.slices[name]
        n = lo.shape[1]
        shape = self.ref.output.shape + self.ref.case.shapes[name]
        sub_bad = {}
        width = sl.stop - sl.start
        for flat, why in bad.items():
            i, j = divmod(flat, n)
            if sl.start <= j < sl.stop:
                sub_bad[i * width + (j - sl.start)] = why
        ex = _exact(list(lo[:, sl].reshape(-1)), sub_bad, shape, list(hi[:, sl].reshape(-1)))
        ex.kinks = kinks[:, sl].reshape(shape)
        return ex

    def vjp(self, weights: np.ndarray, name: str) -> Exact:
        """sum_m weights[m] * d out[m] / d input; at kinks the left and right derivatives of that sum."""
        lo, hi, bad, kinks = self._jacobian_mp()
        sl = self.ref.slices[name]
        w = _to_mp(weights)
        width = sl.stop - sl.start
        out_lo, out_hi, out_bad = [], [], {}
        for j in range(sl.start, sl.stop):
            a = b = mpmath.mpf(0)
            for i, wi in enumerate(w):
                if wi == 0:
                    continue
                if lo[i, j] is None:
                    out_bad[j - sl.start] = bad.get(i * lo.shape[1] + j, "undefined")
                    break
                a, b = a + wi * lo[i, j], b + wi * hi[i, j]  # the one-sided derivative of sum(w f) is sum(w f')
            out_lo.append(None if j - sl.start in out_bad else a)
            out_hi.append(None if j - sl.start in out_bad else b)
        ex = _exact(out_lo, out_bad, self.ref.case.shapes[name], out_hi)
        ex.kinks = np.array([kinks[:, j].any() for j in range(sl.start, sl.stop)], dtype=bool).reshape(
            self.ref.case.shapes[name]) if width else None
        return ex

    def jvp(self, tangents: Mapping[str, np.ndarray]) -> Exact:
        """sum_n d out / d input[n] * tangent[n] over every differentiable input."""
        lo, hi, bad, kinks = self._jacobian_mp()
        u = [t for i in self.ref.case.differentiable for t in _to_mp(tangents[i.name])]
        out_lo, out_hi, out_bad = [], [], {}
        for i in range(lo.shape[0]):
            a = b = mpmath.mpf(0)
            for j, uj in enumerate(u):
                if uj == 0:
                    continue
                if lo[i, j] is None:
                    out_bad[i] = bad.get(i * lo.shape[1] + j, "undefined")
                    break
                p, q = uj * lo[i, j], uj * hi[i, j]
                a, b = a + min(p, q), b + max(p, q)
            out_lo.append(None if i in out_bad else a)
            out_hi.append(None if i in out_bad else b)
        ex = _exact(out_lo, out_bad, self.ref.output.shape, out_hi)
        ex.kinks = kinks.any(axis=1).reshape(self.ref.output.shape) if kinks.size else None
        return ex

    def derivative(self, order: int) -> Exact:
        """The order-k derivative tensor of a scalar output, shape (n,) * k over all differentiable elements."""
        if order == 1:
            lo, hi, bad, _ = self._jacobian_mp()
            return _exact(list(lo.reshape(-1)), bad, (len(self.ref.wrt),), list(hi.reshape(-1)))
        table = self.ref.derivatives(order)
        keys = list(table)
        vals, bad = self._eval(f"d{order}", [table[k] for k in keys])
        n = len(self.ref.wrt)
        full = np.empty((n,) * order, dtype=object)
        full_bad: dict[int, str] = {}
        nonfinite = self.nonfinite_wrt()
        for number, (k, v) in enumerate(zip(keys, vals)):
            why = next((nonfinite[j] for j in k if j in nonfinite), None)
            if why is not None:
                v, bad[number] = None, why
            for perm in set(itertools.permutations(k)):
                full[perm] = v
                if v is None:
                    full_bad[int(np.ravel_multi_index(perm, full.shape))] = bad[number]
        return _exact(list(full.reshape(-1)), full_bad, full.shape)

    def expression(self, node: Node, shape: tuple[int, ...]) -> Exact:
        """The exact value of another case-language expression (a hand-derived formula) at this point."""
        env = {**self.ref.symbols, **self.ref.nodes}
        values = np.broadcast_to(evaluate(node, env), shape)
        exprs = [_basic(e) for e in values.reshape(-1)]
        vals, bad = self._eval(f"expr:{id(node)}", exprs)
        return _exact(vals, bad, shape)

    def node_gradient(self, node: str, weights: np.ndarray) -> Exact:
        exprs = self.ref.node_gradient(node, weights)
        vals, bad = self._eval(f"node:{node}", exprs)
        return _exact(vals, bad, self.ref.case.shapes[node])


def explain_at(expr: sp.Expr, values: dict[sp.Symbol, Any], value: Any) -> str:
    """Why an expression has no real value at these symbol values: a non-finite input, or the first sub-expression
    outside its domain."""
    for symbol, a in values.items():
        if symbol in expr.free_symbols and not mpmath.isfinite(a):
            return f"the input {display(symbol)} = {float(a)} is not a finite number"
    for sub in sp.preorder_traversal(expr):
        if not isinstance(sub, sp.Basic) or not sub.args:
            continue
        reason = _domain_problem(sub, values)
        if reason:
            return reason
    if isinstance(value, Exception):
        return f"{type(value).__name__}: {value}"
    return "the value is not a real number here"


def _is_real(v: Any) -> bool:
    if isinstance(v, mpmath.mpc):
        return v.imag == 0 and mpmath.isfinite(v.real) or (v.imag == 0 and mpmath.isinf(v.real))
    if isinstance(v, (mpmath.mpf, int, float)):
        return not mpmath.isnan(v)
    if isinstance(v, (bool, np.bool_)):
        return True
    return False


def _exact(lo: list[Any], bad: dict[int, str], shape: tuple[int, ...], hi: list[Any] | None = None) -> Exact:
    def rounded(vals: list[Any]) -> np.ndarray:
        return np.array([math.nan if v is None else _round(v) for v in vals], dtype=np.float64).reshape(shape)

    low = rounded(lo)
    notes = {k: f"the exact value {mpmath.nstr(v, 6)} overflows float64" for k, v in enumerate(lo)
             if v is not None and mpmath.isfinite(v) and not math.isfinite(low.reshape(-1)[k])}
    return Exact(low, rounded(hi) if hi is not None else low.copy(), dict(bad), notes=notes)


def _round(v: Any) -> float:
    if isinstance(v, mpmath.mpc):
        v = v.real
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf


def _domain_problem(sub: sp.Basic, values: dict[sp.Symbol, Any]) -> str | None:
    """A reason when this function application is evaluated outside its domain (None if fine)."""

    def num(e: sp.Expr) -> float | None:
        try:  # our evaluator, not evalf with subs: evalf leaves noise like 1e-160 where the value is exactly 0
            with mpmath.workdps(DIGITS):
                v = Evaluator(dict(values))(e)
            v = complex(v)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError, ArithmeticError):
            return None
        return v.real if v.imag == 0 else None

    where = ", ".join(f"{display(s)} = {float(v):.17g}" for s, v in values.items() if s in sub.free_symbols)
    at = f" at {where}" if where else ""
    if isinstance(sub, sp.log):
        v = num(sub.args[0])
        if v is not None and v == 0:
            return f"the function has a pole{at}: log of zero"
        if v is not None and v < 0:
            return f"the function is undefined{at}: log of a negative number ({v:.6g})"
    if isinstance(sub, sp.Pow):
        base, exp = sub.args
        v, e = num(base), num(exp)
        if v is not None and e is not None:
            if v == 0 and e < 0:
                return f"the function has a pole{at}: division by zero ({display(base)} = 0)"
            if v < 0 and not float(e).is_integer():
                what = "square root" if e in (0.5, -0.5) else "fractional power"
                return f"the function is undefined{at}: {what} of a negative number ({v:.6g})"
    if isinstance(sub, (sp.asin, sp.acos)):
        v = num(sub.args[0])
        if v is not None and abs(v) > 1:
            return f"the function is undefined{at}: {type(sub).__name__} of {v:.6g}, outside [-1, 1]"
    if isinstance(sub, sp.acosh):
        v = num(sub.args[0])
        if v is not None and v < 1:
            return f"the function is undefined{at}: acosh of {v:.6g}, below 1"
    if isinstance(sub, sp.atanh):
        v = num(sub.args[0])
        if v is not None and abs(v) >= 1:
            return f"the function is undefined{at}: atanh of {v:.6g}, outside (-1, 1)"
    if isinstance(sub, (sp.polygamma, sp.gamma)) or type(sub).__name__ == "LogAbsGamma":
        v = num(sub.args[-1])
        if v is not None and v <= 0 and float(v).is_integer():
            name = "lgamma" if type(sub).__name__ == "LogAbsGamma" else type(sub).__name__
            return f"the function has a pole{at}: {name} at the non-positive integer {v:g}"
    return None

"""Why an exact value does not exist at a point (poles, domains, non-finite inputs), and the rounding of exact values
to floats."""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from ..values import Code, Exact, Reason
from .numeric.mp import Evaluator
from .symbols import DIGITS, display


def infinite_sides(far: tuple[Any, Any], near: tuple[Any, Any], symbol: sp.Symbol, x: Any) -> str | None:
    """One-sided derivatives taken at a step and at a million times closer (left, right): a side that grows without
    bound towards the point (sqrt's at 0, a where() boundary next to a pole) is infinite, a pole and not a kink. The
    reason, else None."""
    steep = [name for name, f, c in zip(("left", "right"), far, near)
             if c is not None and abs(c) > 1e6 and abs(c) > 100 * abs(f)]
    if not steep:
        return None
    return Reason(f"the function has a pole at {display(symbol)} = {float(x):.17g}: the {' and '.join(steep)} "
                  "derivative is infinite", Code.POLE)


def finite_magnitudes(values: np.ndarray) -> np.ndarray:
    """An object array of mp values (None where undefined) as float magnitudes, 0 where undefined."""
    return np.array([abs(float(v)) if v is not None and mpmath.isfinite(v) else 0.0 for v in values.reshape(-1)],
                    dtype=np.float64).reshape(values.shape)


def value_or_reason(evaluate_at: Evaluator, e: sp.Expr) -> Any:
    """The value of e, or the exception that says it has none."""
    try:
        return evaluate_at(e)
    except (ZeroDivisionError, ValueError, TypeError, OverflowError, ArithmeticError) as exc:
        return exc


def explain_at(expr: sp.Expr, values: dict[sp.Symbol, Any], value: Any) -> str:
    """Why an expression has no real value at these symbol values: a non-finite input, or the first sub-expression
    outside its domain."""
    for symbol, a in values.items():
        if symbol in expr.free_symbols and not mpmath.isfinite(a):
            return Reason(f"the input {display(symbol)} = {float(a)} is not a finite number", Code.NONFINITE_INPUT)
    for sub in sp.preorder_traversal(expr):
        if not isinstance(sub, sp.Basic) or not sub.args:
            continue
        reason = _domain_problem(sub, values)
        if reason:
            return reason
    if isinstance(value, Exception):
        return Reason(f"{type(value).__name__}: {value}", Code.OUTSIDE)
    return Reason("the value is not a real number here", Code.OUTSIDE)


def real_mp(v: Any) -> Any:
    """A real value (is_real) as an mpf: a complex number with a zero imaginary part (the derivative of acosh left of
    its domain, 1/sqrt(x**2 - 1)) is its real part."""
    if isinstance(v, mpmath.mpc):
        return v.real
    return v if isinstance(v, mpmath.mpf) else mpmath.mpf(v)


def is_real(v: Any) -> bool:
    if isinstance(v, mpmath.mpc):
        return v.imag == 0 and mpmath.isfinite(v.real) or (v.imag == 0 and mpmath.isinf(v.real))
    if isinstance(v, (mpmath.mpf, int, float)):
        return not mpmath.isnan(v)
    if isinstance(v, (bool, np.bool_)):
        return True
    return False


def exact_from_mp(lo: list[Any], bad: dict[int, str], shape: tuple[int, ...], hi: list[Any] | None = None) -> Exact:
    def rounded(vals: list[Any]) -> np.ndarray:
        return np.array([math.nan if v is None else round_mp(v) for v in vals], dtype=np.float64).reshape(shape)

    low = rounded(lo)
    notes: dict[int, str] = {k: Reason(f"the exact value {mpmath.nstr(v, 6)} overflows float64", Code.OVERFLOW)
             for k, v in enumerate(lo) if v is not None and mpmath.isfinite(v) and not math.isfinite(low.reshape(-1)[k])}
    return Exact(low, rounded(hi) if hi is not None else low.copy(), dict(bad), notes=notes)


def round_mp(v: Any) -> float:
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
            if v == 0:  # or cancellation at 50 digits: confirm with more
                with mpmath.workdps(DIGITS * 6):
                    v = Evaluator(dict(values))(e)
            v = complex(v)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError, ArithmeticError):
            return None
        return v.real if v.imag == 0 else None

    where = ", ".join(f"{display(s)} = {float(v):.17g}" for s, v in values.items() if s in sub.free_symbols)
    at = f" at {where}" if where else ""
    if isinstance(sub, sp.Mul):
        factors = [num(f) for f in sub.args]
        infinite = [v is None or not math.isfinite(v) for v in factors]
        if any(f == 0 for f in factors) and any(infinite):
            pole = next(display(f) for f, inf in zip(sub.args, infinite) if inf)
            zero = next(display(f) for f, v in zip(sub.args, factors) if v == 0)
            return Reason(f"the formula is indeterminate{at}: 0·inf ({zero} = 0 times {pole}, which has no finite "
                          "value)", Code.INDETERMINATE)
    if isinstance(sub, sp.log):
        v = num(sub.args[0])
        if v is not None and v == 0:
            return Reason(f"the function has a pole{at}: log of zero", Code.POLE)
        if v is not None and v < 0:
            return Reason(f"the function is undefined{at}: log of a negative number ({v:.6g})", Code.OUTSIDE)
    if isinstance(sub, sp.Pow):
        base, exp = sub.args
        v, e = num(base), num(exp)
        if v is not None and e is not None:
            if v == 0 and e < 0:
                return Reason(f"the function has a pole{at}: division by zero ({display(base)} = 0)", Code.POLE)
            if v < 0 and not float(e).is_integer():
                what = "square root" if e in (0.5, -0.5) else "fractional power"
                return Reason(f"the function is undefined{at}: {what} of a negative number ({v:.6g})", Code.OUTSIDE)
    if isinstance(sub, (sp.asin, sp.acos)):
        v = num(sub.args[0])
        if v is not None and abs(v) > 1:
            return Reason(f"the function is undefined{at}: {type(sub).__name__} of {v:.6g}, outside [-1, 1]", Code.OUTSIDE)
    if isinstance(sub, sp.acosh):
        v = num(sub.args[0])
        if v is not None and v < 1:
            return Reason(f"the function is undefined{at}: acosh of {v:.6g}, below 1", Code.OUTSIDE)
    if isinstance(sub, (sp.atanh, sp.erfinv)):
        v = num(sub.args[0])
        name = type(sub).__name__
        if v is not None and abs(v) == 1:
            return Reason(f"the function has a pole{at}: {name} of {v:g}", Code.POLE)
        if v is not None and abs(v) > 1:
            return Reason(f"the function is undefined{at}: {name} of {v:.6g}, outside [-1, 1]", Code.OUTSIDE)
    if isinstance(sub, (sp.polygamma, sp.gamma)) or type(sub).__name__ == "LogAbsGamma":
        v = num(sub.args[-1])
        if v is not None and v <= 0 and float(v).is_integer():
            name = "lgamma" if type(sub).__name__ == "LogAbsGamma" else type(sub).__name__
            return Reason(f"the function has a pole{at}: {name} at the non-positive integer {v:g}", Code.POLE)
    return None

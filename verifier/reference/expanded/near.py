"""Values near a point, at DIGITS digits: a tiny value confirmed at more digits, one-sided limits along a line,
one-sided derivatives from difference quotients (the exact reference where a formula cannot be evaluated as it
stands)."""

from __future__ import annotations

from typing import Any

import mpmath
import sympy as sp

from ..facts import is_real, real_mp, value_or_reason
from ..numeric.mp import Evaluator
from ..symbols import DIGITS

TINY = mpmath.mpf(10) ** (-DIGITS // 2)  # a value this small may be what cancellation left at DIGITS digits


def confirmed_tiny(e: sp.Expr, v: Any, args: list[Any], symbols: list[sp.Symbol]) -> Any:
    """A tiny value confirmed at more digits: terms of size 1 that cancel leave noise of 10^-DIGITS at DIGITS digits
    (softmax's vector-Jacobian product with v = 1 at [800, 0, 1], whose exact value is 0 to 300 digits). The value at
    two, then six times the digits; where they disagree it is below what six times the digits resolve: 0."""
    if v == 0 or abs(v) >= TINY:
        return v
    last = v
    for digits in (DIGITS * 2, DIGITS * 6):
        with mpmath.workdps(digits):
            again = value_or_reason(Evaluator(dict(zip(symbols, args))), e)
        if isinstance(again, Exception) or not is_real(again):
            return v
        again = real_mp(again)
        if abs(again - last) <= mpmath.mpf(10) ** -10 * abs(again):
            return again
        last = again
    return mpmath.mpf(0)


def approach(expr: sp.Expr, s: sp.Symbol, at: sp.Expr, sign: int) -> Any:
    """The limit of expr (of s alone) as s approaches at from one side, at DIGITS digits, two distances agreeing."""
    tol = mpmath.mpf(10) ** (-DIGITS // 3)
    with mpmath.workdps(DIGITS):
        x = mpmath.mpf(sp.Rational(at).p) / sp.Rational(at).q
        values = []
        for step in (mpmath.mpf(10) ** (-DIGITS // 2), mpmath.mpf(10) ** (-DIGITS // 2 - 6)):
            v = value_or_reason(Evaluator({s: x + sign * step}), expr)
            if not (is_real(v) and mpmath.isfinite(v)):
                return None
            values.append(real_mp(v))
    return values[1] if abs(values[0] - values[1]) <= tol * max(1, abs(values[1])) else None


def quotients(value: sp.Expr, s: sp.Symbol, at: sp.Expr) -> tuple[Any, Any] | None:
    """The one-sided derivatives of value (a function of s alone) at `at` from difference quotients at DIGITS
    digits, two step sizes agreeing (a converged limit), the function continuous there; None otherwise."""
    tol = mpmath.mpf(10) ** (-DIGITS // 3)
    with mpmath.workdps(DIGITS):
        x = mpmath.mpf(sp.Rational(at).p) / sp.Rational(at).q
        f = lambda t: value_or_reason(Evaluator({s: t}), value)  # noqa: E731 - one line function of the step
        centre = f(x)
        if not (is_real(centre) and mpmath.isfinite(centre)):
            return None
        out = []
        for sign in (-1, 1):
            found = []
            for step in (mpmath.mpf(10) ** (-DIGITS // 2), mpmath.mpf(10) ** (-DIGITS // 2 - 6)):
                moved = f(x + sign * step)
                if not (is_real(moved) and mpmath.isfinite(moved)) or abs(moved - centre) > tol * max(1, abs(centre)):
                    return None  # not continuous along the line: no derivative
                found.append((moved - centre) / (sign * step))
            if abs(found[0] - found[1]) > tol * max(1, abs(found[1])):
                return None
            out.append(real_mp(found[1]))
    return out[0], out[1]

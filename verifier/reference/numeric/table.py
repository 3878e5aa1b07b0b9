"""THE table of sympy function -> number: each function's mpmath evaluation (exact, at any precision), its numpy /
scipy evaluation (float64 arrays) and its torch math kernel (float64, no autograd), in one row, so the three
evaluators never disagree about which functions they know. A function sympy lacks is a class in symfuncs.py and a
row here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from ..symfuncs import Ceil, Floor, LogAbsGamma, Ndtr, Round, Sinc, SincDerivative, StopGrad, Trunc, XLogY, Zeta, ZetaDerivative


class _SciPySpecial:
    """scipy.special, imported at the first array evaluation that calls one of its functions: the exact evaluation
    (mpmath) needs none of it, and its import is a tenth of a second of every run's start."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            import scipy.special

            return getattr(scipy.special, name)(*args)

        call.__name__ = call.__qualname__ = f"scipy.special.{name}"
        return call


sc = _SciPySpecial()


@dataclass(frozen=True)
class Numeric:
    """One function's evaluations: mp(*mpf), np(*float64 arrays), torch(T) -> a function of float64 tensors (None:
    numpy's evaluation, through a conversion)."""

    mp: Callable[..., Any]
    np: Callable[..., Any]
    torch: Callable[[Any], Callable[..., Any]] | None = None


def mp_heaviside(x: Any, h0: Any = None) -> Any:
    return mpmath.mpf(0) if x < 0 else mpmath.mpf(1) if x > 0 else (mpmath.mpf(h0) if h0 is not None else mpmath.mpf(0.5))


def mp_zeta(s: Any, q: Any, derivative: int) -> Any:
    """Hurwitz zeta (or its derivative in s) where torch.special.zeta defines it (s > 1, q > 0: the series
    converges); elsewhere no value (mpmath's continuation there is slow and torch returns NaN)."""
    if not (s > 1 and q > 0):
        raise ValueError(f"zeta(s, q) is defined here for s > 1 and q > 0, got s = {mpmath.nstr(s, 8)}, "
                         f"q = {mpmath.nstr(q, 8)}")
    try:
        return mpmath.zeta(s, q, derivative)
    except mpmath.libmp.NoConvergence:
        raise ValueError(f"zeta({mpmath.nstr(s, 8)}, {mpmath.nstr(q, 8)}) does not converge") from None


def mp_sign(x: Any) -> Any:
    return mpmath.mpf(mpmath.sign(x))


def mp_sinc(x: Any) -> Any:
    return mpmath.mpf(1) if x == 0 else mpmath.sin(mpmath.pi * x) / (mpmath.pi * x)


def mp_sinc_derivative(n: Any, x: Any) -> Any:
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


def mp_xlogy(x: Any, y: Any) -> Any:
    return mpmath.mpf(0) if x == 0 else x * mpmath.log(y)


def np_polygamma(n: Any, x: Any) -> Any:
    n = np.asarray(n)
    return sc.polygamma(n.astype(np.int64), x) if n.ndim else (sc.psi(x) if int(n) == 0 else sc.polygamma(int(n), x))


def np_sinc_derivative(n: Any, x: Any) -> Any:
    """d^n/dx^n sin(pi x)/(pi x) in float64: its Taylor series for |x| <= 1/2, Leibniz's rule beyond (the twin of
    mp_sinc_derivative)."""
    n = int(n)
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    small = np.abs(x) <= 0.5
    xs, total = x[small], np.zeros(int(small.sum()))
    for k in range((n + 1) // 2, (n + 1) // 2 + 40):
        total += (-1) ** k * np.pi ** (2 * k) * xs ** (2 * k - n) / ((2 * k + 1) * math.factorial(2 * k - n))
    out[small] = total
    xl = x[~small]
    out[~small] = sum(math.comb(n, j) * np.pi ** j * np.sin(np.pi * xl + j * np.pi / 2) * (-1) ** (n - j)
                      * math.factorial(n - j) / (np.pi * xl ** (n - j + 1)) for j in range(n + 1))
    return out


def np_heaviside(x: Any, h0: Any = 0.5) -> Any:
    return np.heaviside(x, h0)


def _torch_log(T: Any) -> Callable[..., Any]:
    return lambda x, b=None: T.log(x) if b is None else T.log(x) / float(np.log(float(b)))


def _torch_polygamma(T: Any) -> Callable[..., Any]:
    return lambda n, x: T.special.digamma(x) if int(n) == 0 else T.special.polygamma(int(n), x)


def _torch_heaviside(T: Any) -> Callable[..., Any]:
    return lambda x, h0=0.5: T.heaviside(x, T.tensor(float(h0), dtype=T.float64))


def _reciprocal(fn: str) -> Numeric:
    """sec csc cot sech csch coth: 1 / cos sin tan cosh sinh tanh."""
    m = {"cos": "sec", "sin": "csc", "tan": "cot", "cosh": "sech", "sinh": "csch", "tanh": "coth"}[fn]
    f = getattr(np, fn)
    return Numeric(getattr(mpmath, m), lambda x: 1 / f(x), lambda T: (lambda x: 1 / getattr(T, fn)(x)))


TABLE: dict[type, Numeric] = {
    sp.exp: Numeric(mpmath.exp, np.exp, lambda T: T.exp),
    sp.log: Numeric(lambda x, b=None: mpmath.log(x) if b is None else mpmath.log(x, b),
                    lambda x, b=None: np.log(x) if b is None else np.log(x) / np.log(b), _torch_log),
    sp.sin: Numeric(mpmath.sin, np.sin, lambda T: T.sin),
    sp.cos: Numeric(mpmath.cos, np.cos, lambda T: T.cos),
    sp.tan: Numeric(mpmath.tan, np.tan, lambda T: T.tan),
    sp.asin: Numeric(mpmath.asin, np.arcsin, lambda T: T.asin),
    sp.acos: Numeric(mpmath.acos, np.arccos, lambda T: T.acos),
    sp.atan: Numeric(mpmath.atan, np.arctan, lambda T: T.atan),
    sp.sinh: Numeric(mpmath.sinh, np.sinh, lambda T: T.sinh),
    sp.cosh: Numeric(mpmath.cosh, np.cosh, lambda T: T.cosh),
    sp.tanh: Numeric(mpmath.tanh, np.tanh, lambda T: T.tanh),
    sp.asinh: Numeric(mpmath.asinh, np.arcsinh, lambda T: T.asinh),
    sp.acosh: Numeric(mpmath.acosh, np.arccosh, lambda T: T.acosh),
    sp.atanh: Numeric(mpmath.atanh, np.arctanh, lambda T: T.atanh),
    sp.atan2: Numeric(mpmath.atan2, np.arctan2, lambda T: T.atan2),
    sp.erf: Numeric(mpmath.erf, sc.erf, lambda T: T.special.erf),
    sp.erfc: Numeric(mpmath.erfc, sc.erfc, lambda T: T.special.erfc),
    sp.erfinv: Numeric(mpmath.erfinv, sc.erfinv, lambda T: T.special.erfinv),
    sp.Abs: Numeric(abs, np.abs, lambda T: T.abs),
    sp.sign: Numeric(mp_sign, np.sign, lambda T: T.sign),
    sp.Heaviside: Numeric(mp_heaviside, np_heaviside, _torch_heaviside),
    sp.DiracDelta: Numeric(lambda *a: mpmath.mpf(0), lambda *a: np.zeros_like(a[0]), lambda T: (lambda *a: T.zeros_like(a[0]))),
    sp.polygamma: Numeric(mpmath.polygamma, np_polygamma, _torch_polygamma),
    sp.gamma: Numeric(mpmath.gamma, sc.gamma),
    sp.loggamma: Numeric(mpmath.loggamma, sc.gammaln, lambda T: T.lgamma),
    sp.sec: _reciprocal("cos"), sp.csc: _reciprocal("sin"), sp.cot: _reciprocal("tan"),
    sp.sech: _reciprocal("cosh"), sp.csch: _reciprocal("sinh"), sp.coth: _reciprocal("tanh"),
    StopGrad: Numeric(lambda x: x, lambda x: x, lambda T: (lambda x: x)),
    LogAbsGamma: Numeric(lambda x: mpmath.log(abs(mpmath.gamma(x))), sc.gammaln, lambda T: T.lgamma),
    sp.besseli: Numeric(mpmath.besseli, sc.iv),
    Sinc: Numeric(mp_sinc, np.sinc, lambda T: T.sinc),
    SincDerivative: Numeric(mp_sinc_derivative, np_sinc_derivative),
    XLogY: Numeric(mp_xlogy, sc.xlogy, lambda T: T.special.xlogy),
    Ndtr: Numeric(mpmath.ncdf, sc.ndtr, lambda T: T.special.ndtr),
    Floor: Numeric(mpmath.floor, np.floor, lambda T: T.floor),
    Ceil: Numeric(mpmath.ceil, np.ceil, lambda T: T.ceil),
    Trunc: Numeric(lambda x: mpmath.sign(x) * mpmath.floor(abs(x)), np.trunc, lambda T: T.trunc),
    Round: Numeric(mpmath.nint, np.rint, lambda T: T.round),  # halves to even, all three
    # inverse reciprocal functions (sympy's principal branches: acot(x) = atan(1/x))
    sp.acot: Numeric(mpmath.acot, lambda x: np.arctan(1 / x)),
    sp.asec: Numeric(mpmath.asec, lambda x: np.arccos(1 / x)),
    sp.acsc: Numeric(mpmath.acsc, lambda x: np.arcsin(1 / x)),
    sp.acoth: Numeric(mpmath.acoth, lambda x: np.arctanh(1 / x)),
    sp.asech: Numeric(mpmath.asech, lambda x: np.arccosh(1 / x)),
    sp.acsch: Numeric(mpmath.acsch, lambda x: np.arcsinh(1 / x)),
    sp.erfcinv: Numeric(lambda x: mpmath.erfinv(1 - x), sc.erfcinv),
    sp.erf2: Numeric(lambda x, y: mpmath.erf(y) - mpmath.erf(x), lambda x, y: sc.erf(y) - sc.erf(x)),
    sp.lowergamma: Numeric(lambda a, x: mpmath.gammainc(a, 0, x), lambda a, x: sc.gammainc(a, x) * sc.gamma(a)),
    sp.uppergamma: Numeric(lambda a, x: mpmath.gammainc(a, x), lambda a, x: sc.gammaincc(a, x) * sc.gamma(a)),
    sp.besselj: Numeric(mpmath.besselj, sc.jv),
    sp.bessely: Numeric(mpmath.bessely, sc.yv),
    sp.besselk: Numeric(mpmath.besselk, sc.kv),
    sp.airyai: Numeric(mpmath.airyai, lambda x: sc.airy(x)[0]),
    sp.airyaiprime: Numeric(lambda x: mpmath.airyai(x, derivative=1), lambda x: sc.airy(x)[1]),
    Zeta: Numeric(lambda s_, q: mp_zeta(s_, q, 0), lambda s_, q: np.where((s_ > 1) & (q > 0), sc.zeta(s_, q), np.nan)),
    sp.zeta: Numeric(lambda s_, q=1: mpmath.zeta(s_, q), lambda s_, q=1: sc.zeta(s_, q)),  # sympy's own (printed)
    sp.floor: Numeric(mpmath.floor, np.floor, lambda T: T.floor),
    sp.ceiling: Numeric(mpmath.ceil, np.ceil, lambda T: T.ceil),
    sp.frac: Numeric(mpmath.frac, lambda x: x - np.floor(x)),
    ZetaDerivative: Numeric(lambda n, s, q: mp_zeta(s, q, int(n)), lambda n, s, q: np.full(np.shape(s), np.nan)),
}

# relations: mpmath and numpy take Python's operators and numpy's ufuncs; torch its own comparison kernels
RELATIONS: dict[type, tuple[Callable[[Any, Any], Any], Callable[[Any, Any], Any], str]] = {
    sp.StrictLessThan: (lambda a, b: a < b, np.less, "lt"), sp.LessThan: (lambda a, b: a <= b, np.less_equal, "le"),
    sp.StrictGreaterThan: (lambda a, b: a > b, np.greater, "gt"),
    sp.GreaterThan: (lambda a, b: a >= b, np.greater_equal, "ge"),
    sp.Equality: (lambda a, b: a == b, np.equal, "eq"), sp.Unequality: (lambda a, b: a != b, np.not_equal, "ne"),
}

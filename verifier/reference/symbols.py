"""The exact reference: the case's function expanded into sympy expressions, differentiated exactly, evaluated in
high precision (mpmath). Never imports torch; never routes through autograd.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np
import sympy as sp
from sympy.printing.str import StrPrinter

from ..language.nodes import Bin, Call, Cmp, Const, Index, Name, Neg, Node, Num
from ..language.ops import ELEMENTWISE, OPS
from ..language.shapes import kept_shape
from ..values import Exact  # noqa: F401 - re-exported
from .symfuncs import S

DIGITS = 50  # working precision of every evaluation
COMPARISONS = {"<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge, "==": sp.Eq, "!=": sp.Ne}


def object_array(x: Any) -> np.ndarray:
    """Keep every intermediate an object ndarray (numpy collapses 0-d results to bare objects)."""
    if isinstance(x, np.ndarray):
        return x
    out = np.empty((), dtype=object)
    out[()] = x
    return out


def constant_of(node: Num | Const) -> sp.Expr:
    if isinstance(node, Const):
        return {"pi": sp.pi, "E": sp.E, "inf": sp.oo}[node.name]
    frac = node.value
    return sp.Rational(frac.numerator, frac.denominator)


def evaluate(node: Node, env: Mapping[str, np.ndarray]) -> np.ndarray:
    """The value of a case-language node as an object array of sympy expressions."""
    if isinstance(node, (Num, Const)):
        return object_array(constant_of(node))
    if isinstance(node, Name):
        return env[node.id]
    if isinstance(node, Neg):
        return object_array(-evaluate(node.operand, env))
    if isinstance(node, Bin):
        a, b = evaluate(node.left, env), evaluate(node.right, env)
        if node.op == "@":
            return object_array(OPS["matmul"].sympy(S, a, b))
        if node.op == "**":
            return object_array(np.frompyfunc(lambda p, q: p**q, 2, 1)(a, b))
        return object_array({"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide}[node.op](a, b))
    if isinstance(node, Cmp):
        return object_array(np.frompyfunc(COMPARISONS[node.op], 2, 1)(evaluate(node.left, env), evaluate(node.right, env)))
    if isinstance(node, Index):
        return object_array(evaluate(node.base, env)[node.index])
    assert isinstance(node, Call)
    op = OPS[node.func]
    args = [evaluate(a, env) for a in node.args]
    kw = node.keywords()
    if op.kind == ELEMENTWISE:
        return object_array(np.frompyfunc(lambda *xs: op.sympy(S, *xs, **kw), len(args), 1)(*args))
    keep = kw.pop("keepdim", False)
    out = object_array(op.sympy(S, *args, **kw))
    return out.reshape(kept_shape(args[0].shape, kw.get("axis"))) if keep else out


_A, _B = sp.Dummy("a", real=True), sp.Dummy("b", real=True)


def _split(e: sp.Expr, memo: dict[sp.Expr, tuple[sp.Expr, sp.Expr]]) -> tuple[sp.Expr, sp.Expr]:
    """(real part, imaginary part) of an expression of real symbols and I, built bottom-up so that no re(), im(),
    arg() or I is left: products by (a+ib)(c+id), powers in polar form (principal branch, as torch), a function by
    sympy's own real/imaginary form of f(a + ib) for real a, b."""
    if e in memo:
        return memo[e]
    zero = sp.Integer(0)
    if e is sp.I:
        out: tuple[sp.Expr, sp.Expr] = (zero, sp.Integer(1))
    elif e.is_Symbol or e.is_Number or e.is_NumberSymbol:
        out = (e, zero)
    elif isinstance(e, sp.Add):
        parts = [_split(a, memo) for a in e.args]
        out = (sp.Add(*[p[0] for p in parts]), sp.Add(*[p[1] for p in parts]))
    elif isinstance(e, sp.Mul):
        re, im = sp.Integer(1), zero
        for a in e.args:
            c, d = _split(a, memo)
            re, im = re * c - im * d, re * d + im * c
        out = (re, im)
    elif isinstance(e, sp.Pow):
        (a, b), p = _split(e.args[0], memo), e.args[1]
        if b == 0 and p.is_real and (p.is_integer or a.is_nonnegative):
            out = (a**p, zero)
        elif p.is_Integer and abs(int(p)) <= 8:
            if p < 0:
                norm = a**2 + b**2
                a, b, p = a / norm, -b / norm, -p
            re, im = sp.Integer(1), zero
            for _ in range(int(p)):
                re, im = re * a - im * b, re * b + im * a
            out = (re, im)
        else:
            if not p.is_real:
                raise ValueError("a complex exponent is not supported")
            r, t = sp.sqrt(a**2 + b**2) ** p, p * sp.atan2(b, a)
            out = (r * sp.cos(t), r * sp.sin(t))
    elif isinstance(e, sp.Abs):
        a, b = _split(e.args[0], memo)
        out = (sp.sqrt(a**2 + b**2) if b != 0 else sp.Abs(a), zero)
    elif isinstance(e, (sp.re, sp.im, sp.conjugate)):
        a, b = _split(e.args[0], memo)
        out = (a, zero) if isinstance(e, sp.re) else (b, zero) if isinstance(e, sp.im) else (a, -b)
    elif len(e.args) == 1:
        a, b = _split(e.args[0], memo)
        if b == 0:
            out = (e.func(a), zero)
        else:
            re, im = e.func(_A + sp.I * _B).as_real_imag()
            swap = {_A: a, _B: b}
            out = tuple(p.replace(sp.arg, lambda u: sp.atan2(*reversed(u.as_real_imag()))).xreplace(swap)
                        for p in (re, im))
    else:
        raise ValueError(f"{type(e).__name__} has no complex form here")
    memo[e] = out
    return out


def real_parts(out: np.ndarray, pairs: bool) -> np.ndarray:
    """Each element's real and imaginary parts (x, y real): stacked as pairs when the output is complex, else the
    real part alone (its imaginary part is identically 0)."""
    memo: dict[sp.Expr, tuple[sp.Expr, sp.Expr]] = {}
    flat = [_split(as_basic(e), memo) for e in np.asarray(out, dtype=object).reshape(-1)]
    shape = np.shape(out)
    result = np.empty((len(flat), 2), dtype=object)
    for k, (real, imag) in enumerate(flat):
        result[k, 0], result[k, 1] = real, imag
    return result.reshape(shape + (2,)) if pairs else object_array(result[:, 0].reshape(shape))


def as_basic(e: Any) -> sp.Basic:
    """numpy reductions over object arrays can leave plain Python numbers (an empty sum is 0)."""
    if isinstance(e, sp.Basic):
        return e
    if isinstance(e, (bool, np.bool_)):
        return sp.true if e else sp.false
    if isinstance(e, (int, np.integer)):
        return sp.Integer(int(e))
    raise TypeError(f"unexpected value {e!r} in a symbolic array")


def without_deltas(expr: sp.Expr) -> sp.Expr:
    """Derivatives of steps are zero almost everywhere; kinks are handled by one-sided evaluation instead."""
    if expr.has(sp.DiracDelta):
        expr = expr.replace(sp.DiracDelta, lambda *a: sp.Integer(0))
    return expr


_ELEMENT = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*?)__(\d+(?:_\d+)*)\b")
class _Printer(StrPrinter):
    def _print_Float(self, expr: sp.Float) -> str:
        return repr(float(expr))


def _binary(r: sp.Rational) -> bool:
    q = int(r.q)
    return q >= 1 << 16 and q & (q - 1) == 0


def display(expr: sp.Basic, limit: int = 240) -> str:
    """sympy text with element symbols shown as x[0,1]; a rational whose denominator is a large power of two (a binary
    float: a constant traced from users' code) is shown as that float."""
    if isinstance(expr, sp.Basic):
        binary = {r: sp.Float(float(r), 17) for r in expr.atoms(sp.Rational) if _binary(r)}
        expr = expr.xreplace(binary) if binary else expr
    text = _Printer().doprint(expr)
    text = _ELEMENT.sub(lambda m: f"{m[1]}[{m[2].replace('_', ',')}]", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."

"""The exact reference: the case's function expanded into sympy expressions, differentiated exactly, evaluated in
high precision (mpmath). Never imports torch; never routes through autograd.
"""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction
from typing import Any, Mapping

import numpy as np
import sympy as sp

from .cache import case_key, memo
from .case import Case
from .errors import LimitError
from .expr import Bin, Call, Cmp, Const, Index, Name, Neg, Node, Num
from .limits import LIMITS, flag
from .ops import ELEMENTWISE, OPS
from .symfuncs import NONSMOOTH, S
from .values import Exact  # noqa: F401 - re-exported

DIGITS = 50  # working precision of every evaluation
_CMP = {"<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge, "==": sp.Eq, "!=": sp.Ne}


def _arr(x: Any) -> np.ndarray:
    """Keep every intermediate an object ndarray (numpy collapses 0-d results to bare objects)."""
    if isinstance(x, np.ndarray):
        return x
    out = np.empty((), dtype=object)
    out[()] = x
    return out


def _const(node: Num | Const) -> sp.Expr:
    if isinstance(node, Const):
        return sp.pi if node.name == "pi" else sp.E
    frac = Fraction(node.text)
    return sp.Rational(frac.numerator, frac.denominator)


def evaluate(node: Node, env: Mapping[str, np.ndarray]) -> np.ndarray:
    """The value of a case-language node as an object array of sympy expressions."""
    if isinstance(node, (Num, Const)):
        return _arr(_const(node))
    if isinstance(node, Name):
        return env[node.id]
    if isinstance(node, Neg):
        return _arr(-evaluate(node.operand, env))
    if isinstance(node, Bin):
        a, b = evaluate(node.left, env), evaluate(node.right, env)
        if node.op == "@":
            return _arr(OPS["matmul"].sympy(S, a, b))
        if node.op == "**":
            return _arr(np.frompyfunc(lambda p, q: p**q, 2, 1)(a, b))
        return _arr({"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide}[node.op](a, b))
    if isinstance(node, Cmp):
        return _arr(np.frompyfunc(_CMP[node.op], 2, 1)(evaluate(node.left, env), evaluate(node.right, env)))
    if isinstance(node, Index):
        return _arr(evaluate(node.base, env)[node.index])
    assert isinstance(node, Call)
    op = OPS[node.func]
    args = [evaluate(a, env) for a in node.args]
    if op.kind == ELEMENTWISE:
        return _arr(np.frompyfunc(lambda *xs: op.sympy(S, *xs), len(args), 1)(*args))
    kw = {} if node.axis is None else {"axis": node.axis}
    return _arr(op.sympy(S, *args, **kw))


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
                        for p in (re, im))  # type: ignore[assignment]
    else:
        raise ValueError(f"{type(e).__name__} has no complex form here")
    memo[e] = out
    return out


def _real_parts(out: np.ndarray, pairs: bool) -> np.ndarray:
    """Each element's real and imaginary parts (x, y real): stacked as pairs when the output is complex, else the
    real part alone (its imaginary part is identically 0)."""
    memo: dict[sp.Expr, tuple[sp.Expr, sp.Expr]] = {}
    flat = [_split(_basic(e), memo) for e in np.asarray(out, dtype=object).reshape(-1)]
    shape = np.shape(out)
    result = np.empty((len(flat), 2), dtype=object)
    for k, (real, imag) in enumerate(flat):
        result[k, 0], result[k, 1] = real, imag
    return result.reshape(shape + (2,)) if pairs else _arr(result[:, 0].reshape(shape))


def _basic(e: Any) -> sp.Basic:
    """numpy reductions over object arrays can leave plain Python numbers (an empty sum is 0)."""
    if isinstance(e, sp.Basic):
        return e
    if isinstance(e, (bool, np.bool_)):
        return sp.true if e else sp.false
    if isinstance(e, (int, np.integer)):
        return sp.Integer(int(e))
    raise TypeError(f"unexpected value {e!r} in a symbolic array")


def _clean(expr: sp.Expr) -> sp.Expr:
    """Derivatives of steps are zero almost everywhere; kinks are handled by one-sided evaluation instead."""
    if expr.has(sp.DiracDelta):
        expr = expr.replace(sp.DiracDelta, lambda *a: sp.Integer(0))
    return expr


class Reference:
    """The symbolic side of one case: sympy expressions for the value and every derivative asked for."""

    def __init__(self, case: Case) -> None:
        max_symbols = LIMITS.symbols
        total = sum(i.value.size for i in case.inputs)
        if total > max_symbols:
            raise LimitError(f"the inputs have {total} elements; element-wise expansion is limited to {max_symbols} "
                             f"(raise it with {flag('symbols')})")
        self.case = case
        self.key = case_key(case)
        self.symbols: dict[str, np.ndarray] = {i.name: self._symbols(i.name, i.shape) for i in case.inputs}
        self.nodes, out = memo("expansion", self.key, self._expand)
        if out.size > max_symbols:
            raise LimitError(f"the output has {out.size} elements; the limit is {max_symbols} "
                             f"(raise it with {flag('symbols')})")
        self.output = out
        self.flat_out = [_basic(e) for e in out.reshape(-1)]
        self.args = [s for i in case.inputs for s in self.symbols[i.name].reshape(-1)]
        self.wrt = [s for i in case.differentiable for s in self.symbols[i.name].reshape(-1)]
        self.slices: dict[str, slice] = {}
        start = 0
        for i in case.differentiable:
            self.slices[i.name] = slice(start, start + i.value.size)
            start += i.value.size
        self.smooth = not any(e.has(*NONSMOOTH) for e in self.flat_out)
        self._jac: list[list[sp.Expr]] | None = None
        self._derivs: dict[int, dict[tuple[int, ...], sp.Expr]] = {}

    def _expand(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The defines and the function as object arrays of sympy expressions of the element symbols."""
        env = dict(self.symbols)
        for name in self.case.complex_inputs:  # real pairs -> x + I y, element by element
            pairs = self.symbols[name]
            env[name] = _arr(pairs[..., 0] + sp.I * pairs[..., 1])
        nodes: dict[str, np.ndarray] = {}
        for d in self.case.defines:
            env[d.name] = nodes[d.name] = evaluate(d.node, env)
        out = evaluate(self.case.function, env)
        if self.case.complex_inputs:  # every value in real coordinates: a complex output as (real, imaginary) pairs
            out = _real_parts(out, self.case.complex_output)
        return nodes, out

    @staticmethod
    def _symbols(name: str, shape: tuple[int, ...]) -> np.ndarray:
        """One real symbol per element, named x__0_1 for x[0, 1] (user names may not contain '__', so element
        symbols never collide with inputs); shown as x[0,1] by :func:`display`."""
        out = np.empty(shape, dtype=object)
        for idx in np.ndindex(*shape):
            label = name if not shape else f"{name}__{'_'.join(map(str, idx))}"
            out[idx] = sp.Symbol(label, real=True)
        return out

    # --- expressions ---------------------------------------------------------------------------------------------

    def jacobian(self) -> list[list[sp.Expr]]:
        """d out[m] / d wrt[n] for every output element m and differentiable input element n."""
        if self._jac is None:
            if len(self.flat_out) * len(self.wrt) > LIMITS.derivatives * 10:
                raise LimitError(f"the Jacobian has {len(self.flat_out) * len(self.wrt)} entries; the limit is "
                                 f"{LIMITS.derivatives * 10} (raise it with {flag('derivatives')})")
            self._jac = memo("jacobian", self.key, self._differentiate)
        return self._jac

    def _differentiate(self) -> list[list[sp.Expr]]:
        rows = []
        for e in self.flat_out:
            free = e.free_symbols
            rows.append([_clean(sp.diff(e, s)) if s in free else sp.Integer(0) for s in self.wrt])
        return rows

    def derivatives(self, order: int) -> dict[tuple[int, ...], sp.Expr]:
        """The distinct order-k partial derivatives of a scalar output, keyed by sorted index tuples."""
        if order in self._derivs:
            return self._derivs[order]
        if order == 1:
            out = {(j,): e for j, e in enumerate(self.jacobian()[0])}
        else:
            n = len(self.wrt)
            if math.comb(n + order - 1, order) > LIMITS.derivatives:
                raise LimitError(f"order-{order} derivatives of {n} variables need {math.comb(n + order - 1, order)} "
                                 f"expressions; the limit is {LIMITS.derivatives} (lower `order`, or raise it with "
                                 f"{flag('derivatives')})")
            prev = self.derivatives(order - 1)
            out = memo(f"derivatives{order}", self.key, lambda: self._next_order(prev, order))
        self._derivs[order] = out
        return out

    def _next_order(self, prev: dict[tuple[int, ...], sp.Expr], order: int) -> dict[tuple[int, ...], sp.Expr]:
        out = {}
        for idx in itertools.combinations_with_replacement(range(len(self.wrt)), order):
            base = prev[idx[:-1]]
            s = self.wrt[idx[-1]]
            out[idx] = _clean(sp.diff(base, s)) if s in base.free_symbols else sp.Integer(0)
        return out

    def node_gradient(self, node: str, weights: np.ndarray) -> list[sp.Expr]:
        """d(sum(weights * out)) / d node, with the node cut out of the graph as a variable of its own."""
        case = self.case
        shape = case.shapes[node]
        cut = self._symbols(f"cut__{node}", shape)
        env: dict[str, np.ndarray] = dict(self.symbols)
        after = False
        for d in case.defines:
            if d.name == node:
                env[d.name] = cut
                after = True
            elif after:
                env[d.name] = evaluate(d.node, env)
            else:
                env[d.name] = self.nodes[d.name]
        out = evaluate(case.function, env).reshape(-1)
        total = sum((sp.Rational(Fraction(float(w))) * e for w, e in zip(weights.reshape(-1), out)), sp.Integer(0))
        back = dict(zip(cut.reshape(-1), self.nodes[node].reshape(-1)))
        return [_clean(sp.diff(total, c)).xreplace(back) for c in cut.reshape(-1)]

    def column_formula(self, wrt: str, k: int, most: int = 3) -> str:
        """The non-zero partials d out[m] / d wrt[k], as text (what a gradient or v^T J element is made of)."""
        j = self.slices[wrt].start + k
        shape = self.output.shape
        terms = []
        for m, row in enumerate(self.jacobian()):
            if row[j] != 0:
                where = f"[{','.join(map(str, np.unravel_index(m, shape)))}]" if shape else ""
                terms.append(f"d out{where}/d {display(self.wrt[j])} = {display(row[j], 160)}")
        if not terms:
            return f"every d out/d {display(self.wrt[j])} is 0"
        more = f" (and {len(terms) - most} more)" if len(terms) > most else ""
        return "; ".join(terms[:most]) + more

    def value_formula(self, index: int) -> str:
        """Readable text of one output element's expression."""
        return display(self.flat_out[index])

    # --- evaluation ----------------------------------------------------------------------------------------------

    def at(self, point: Mapping[str, np.ndarray]) -> Any:
        """The exact quantities at one point (values already rounded to the case's dtype)."""
        from .evaluation import PointReference

        return PointReference(self, point)



_ELEMENT = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*?)__(\d+(?:_\d+)*)\b")


def display(expr: sp.Basic, limit: int = 240) -> str:
    """sympy text with element symbols shown as x[0,1]."""
    text = _ELEMENT.sub(lambda m: f"{m[1]}[{m[2].replace('_', ',')}]", sp.sstr(expr))
    return text if len(text) <= limit else text[: limit - 3] + "..."

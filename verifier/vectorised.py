"""The vectorised reference: element-wise formulas differentiated once by sympy, evaluated over whole tensors in O(n).

A case built from element-wise operations, broadcasting and reductions (``sum mean prod logsumexp norm``; ``softmax``
and ``log_softmax`` through ``logsumexp``) is cut at its reductions into element-wise *formulas*: sympy expressions
in one symbol per tensor (an input, or a reduction's result), whatever the tensor's size. sympy differentiates each
formula once (the derivation is cached on disk); the chain rule through a reduction is that reduction's exact
derivative rule. Every element is evaluated in float64 (numpy, scipy.special); the elements that matter are
evaluated exactly (mpmath, 50 digits): each one torch disagrees with, each kink, each non-finite value, and a seeded
sample. Reduction results and the cotangents between formulas are carried in float64.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import mpmath
import numpy as np
import scipy.special as sc
import sympy as sp

from .cache import case_key, memo
from .case import Case
from .errors import LimitError
from .evaluation import ZERO_INF_RULE, _is_real, _round, explain_at, infinite_sides
from .expr import Bin, Call, Cmp, Const, Index, Name, Neg, Node, Num, unparse
from .limits import LIMITS
from .mpeval import Evaluator as MpEvaluator
from .npeval import Evaluator, Parallel
from .ops import ELEMENTWISE, OPS, broadcast_shapes, normalize_axis, reduced_shape
from .symbolic import _CMP, DIGITS, _clean, _const, display
from .symfuncs import NONSMOOTH, S
from .values import Exact

Shape = tuple[int, ...]
REDUCTIONS = ("sum", "mean", "prod", "logsumexp", "norm")
REFINE_ELEMENTS = 2_000  # elements recomputed exactly per round (the worst first)
REFINE_SECONDS = 30.0  # rounds continue while disagreements remain and this budget lasts
REFINE_FAN = 20_000  # formula elements summed into one refined element (a broadcast scalar's gradient sums them all)
SAMPLE_FAN = 256  # the same for the seeded sample (a self-check of the screen, not a verdict)
THREADS = max(1, min(8, os.cpu_count() or 1))  # slabs of one large evaluation computed in parallel
ROWS_UP_TO = 256  # outputs up to which J u is summed from the rows of J
SAMPLE = 3  # seeded elements of every compared quantity recomputed exactly


NUMERIC = ("torch", "numpy")


def numeric_backend() -> Any:
    """The array library of the float64 screen: $GRADVERIFY_NUMERIC (``torch``, the default: its math kernels, no
    autograd; or ``numpy``: numpy and scipy.special, independent of torch). Verdicts at disagreements always come from
    mpmath."""
    from .npeval import backend

    name = os.environ.get("GRADVERIFY_NUMERIC", "torch")
    try:
        return backend(name if name in NUMERIC else "torch")
    except ImportError:
        return backend("numpy")


class NotVectorisable(Exception):
    """The case uses something the vectorised reference does not cover; the reason says what."""


@dataclass
class Formula:
    """An element-wise sympy expression over leaf symbols, broadcast to ``shape``."""

    expr: sp.Expr
    shape: Shape


@dataclass
class Reduction:
    symbol: sp.Symbol
    op: str
    axes: tuple[int, ...] | None  # of the argument; None: all
    keepdims: bool
    arg: Formula
    shape: Shape


@dataclass
class Linear:
    """A matrix product, a transpose or an inner product of formulas (at most 2-D): a leaf whose derivative rule is
    the product rule of linear algebra (for a @ b: ct @ b^T and a^T @ ct)."""

    symbol: sp.Symbol
    op: str  # matmul | transpose | dot
    args: tuple[Formula, ...]
    shape: Shape


@dataclass
class Plan:
    """The symbolic part (cached): formulas, reductions in evaluation order, and first partials of every formula."""

    symbols: dict[str, sp.Symbol]
    shapes: dict[str, Shape]
    differentiable: tuple[str, ...]
    reductions: list[Any]  # Reduction | Linear, in evaluation order
    defines: dict[str, Formula]
    out: Formula
    partials: dict[sp.Expr, dict[sp.Symbol, sp.Expr]] = field(default_factory=dict)
    active: set[sp.Symbol] = field(default_factory=set)

    def formulas(self) -> list[Formula]:
        return [self.out] + [a for r in self.reductions for a in _args(r)]


class _Builder:
    """Case-language AST -> formulas; reductions become leaf symbols named by their text."""

    def __init__(self, shapes: Mapping[str, Shape], reductions: list[Reduction]) -> None:
        self.shapes = shapes
        self.reductions = reductions
        self.by_name = {r.symbol.name: r for r in reductions}

    def build(self, node: Node, env: Mapping[str, Formula]) -> Formula:
        if isinstance(node, (Num, Const)):
            return Formula(_const(node), ())
        if isinstance(node, Name):
            return env[node.id]
        if isinstance(node, Neg):
            a = self.build(node.operand, env)
            return Formula(-a.expr, a.shape)
        if isinstance(node, (Bin, Cmp)):
            if isinstance(node, Bin) and node.op == "@":
                return self.linear("matmul", [self.build(node.left, env), self.build(node.right, env)], unparse(node))
            a, b = self.build(node.left, env), self.build(node.right, env)
            shape = broadcast_shapes(a.shape, b.shape)
            if isinstance(node, Cmp):
                return Formula(_CMP[node.op](a.expr, b.expr), shape)
            fn = {"+": lambda p, q: p + q, "-": lambda p, q: p - q, "*": lambda p, q: p * q,
                  "/": lambda p, q: p / q, "**": lambda p, q: p**q}[node.op]
            return Formula(fn(a.expr, b.expr), shape)
        if isinstance(node, Index):
            raise NotVectorisable("indexing picks single elements; the element-wise reference handles it")
        assert isinstance(node, Call)
        op = OPS[node.func]
        args = [self.build(a, env) for a in node.args]
        if op.kind == ELEMENTWISE or (node.func in ("max", "min") and len(args) == 2):
            if node.func in ("max", "min"):
                expr = (sp.Max if node.func == "max" else sp.Min)(args[0].expr, args[1].expr)
            else:
                expr = op.sympy(S, *(a.expr for a in args))
            return Formula(expr, broadcast_shapes(*(a.shape for a in args)))
        if node.func in ("matmul", "transpose", "dot"):
            return self.linear(node.func, args, unparse(node))
        if node.func in REDUCTIONS and op.kind == "reduction":
            return self.reduce(node.func, args[0], node.axis, False, unparse(node))
        if node.func in ("softmax", "log_softmax"):
            a = args[0]
            if not a.shape:
                return Formula(sp.Integer(1 if node.func == "softmax" else 0), ())
            axis = -1 if node.axis is None else node.axis
            lse = self.reduce("logsumexp", a, axis, True, f"logsumexp({unparse(node.args[0])}, axis={axis}, keepdim)")
            expr = sp.exp(a.expr - lse.expr) if node.func == "softmax" else a.expr - lse.expr
            return Formula(expr, a.shape)
        raise NotVectorisable(f"{node.func}() is not an element-wise operation or a supported reduction "
                              f"({', '.join(REDUCTIONS)}, softmax, log_softmax)")

    def linear(self, op: str, args: list[Formula], text: str) -> Formula:
        if any(len(a.shape) > 2 for a in args):
            raise NotVectorisable(f"{op} of tensors with more than 2 dimensions")
        shape = OPS[op].shape(*(a.shape for a in args))
        if op == "transpose" and len(args[0].shape) < 2:
            return args[0]
        name = "{" + text + "}"
        if name not in self.by_name:
            node = Linear(sp.Symbol(name, real=True), op, tuple(args), shape)
            self.reductions.append(node)
            self.by_name[name] = node
        node = self.by_name[name]
        return Formula(node.symbol, node.shape)

    def reduce(self, op: str, arg: Formula, axis: Any, keepdims: bool, text: str) -> Formula:
        axes = normalize_axis(axis, len(arg.shape))
        shape = reduced_shape(arg.shape, axis)
        if keepdims:
            shape = tuple(1 if axes is None or i in axes else d for i, d in enumerate(arg.shape))
        name = "{" + text + "}"
        if name not in self.by_name:
            r = Reduction(sp.Symbol(name, real=True), op, axes, keepdims, arg, shape)
            self.reductions.append(r)
            self.by_name[name] = r
        r = self.by_name[name]
        return Formula(r.symbol, r.shape)


def build_plan(case: Case, cut: str | None = None) -> Plan:
    """The formulas of a case (raises NotVectorisable), with the first partials of each; cached on disk."""
    if case.complex_inputs:
        raise NotVectorisable("complex inputs are expanded element by element (in real and imaginary parts)")

    def build() -> Plan:
        symbols = {i.name: sp.Symbol(i.name, real=True) for i in case.inputs}
        shapes = {i.name: i.shape for i in case.inputs}
        differentiable = tuple(i.name for i in case.differentiable)
        env = {n: Formula(s, shapes[n]) for n, s in symbols.items()}
        builder = _Builder(shapes, [])
        defines = {}
        for d in case.defines:
            if d.name == cut:
                symbols[d.name] = sp.Symbol(d.name, real=True)
                shapes[d.name] = case.shapes[d.name]
                differentiable = (d.name,)
                env[d.name] = Formula(symbols[d.name], shapes[d.name])
                continue
            env[d.name] = defines[d.name] = builder.build(d.node, env)
        out = builder.build(case.function, env)
        plan = Plan(symbols, shapes, differentiable, builder.reductions, defines, out)
        active = {symbols[n] for n in differentiable}
        for r in plan.reductions:
            if any(a.expr.free_symbols & active for a in _args(r)):
                active.add(r.symbol)
        plan.active = active
        for f in plan.formulas():
            plan.partials[f.expr] = {s: _clean(sp.diff(f.expr, s)) for s in f.expr.free_symbols & active}
        return plan

    return memo("vectorised", case_key(case) + [cut], build)


def vectorisable(case: Case) -> str | None:
    """None when the vectorised reference covers the case, else the reason it does not."""
    try:
        build_plan(case)
    except NotVectorisable as exc:
        return str(exc)
    return None


# --- numbers ---------------------------------------------------------------------------------------------------------


def _aligned(shape: Shape, ndim: int) -> Shape:
    return (1,) * (ndim - len(shape)) + tuple(shape)


def unbroadcast(a: np.ndarray, shape: Shape) -> np.ndarray:
    """Sum a broadcast array back to ``shape`` (numpy's pairwise summation)."""
    a = np.asarray(a)
    lead = a.ndim - len(shape)
    if lead > 0:
        a = a.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, (d, s) in enumerate(zip(a.shape, shape)) if s == 1 and d != 1)
    if axes:
        a = a.sum(axis=axes, keepdims=True)
    return a.reshape(shape)


def _expand(ct: np.ndarray, r: Reduction) -> np.ndarray:
    """A reduction's cotangent (or value) broadcast back over its argument's shape."""
    ct = np.asarray(ct)
    if not r.keepdims:
        axes = range(len(r.arg.shape)) if r.axes is None else r.axes
        for ax in sorted(axes):
            ct = np.expand_dims(ct, ax)
    return np.broadcast_to(ct, r.arg.shape)


def _others(a: np.ndarray, axes: tuple[int, ...] | None) -> np.ndarray:
    """Product of every other element of each reduced group (no division: exact with zeros)."""
    axes = tuple(range(a.ndim)) if axes is None else axes
    keep = [i for i in range(a.ndim) if i not in axes]
    moved = np.transpose(a, keep + list(axes))
    lead = moved.shape[: len(keep)]
    flat = moved.reshape(lead + (-1,))
    ones = np.ones(lead + (1,))
    left = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    right = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    out = (left * right).reshape(moved.shape)
    return np.transpose(out, np.argsort(keep + list(axes)))


def _forward_reduce(r: Reduction, a: np.ndarray) -> np.ndarray:
    axis = r.axes
    with np.errstate(all="ignore"):
        if r.op == "sum":
            return np.sum(a, axis=axis, keepdims=r.keepdims)
        if r.op == "mean":
            return np.mean(a, axis=axis, keepdims=r.keepdims)
        if r.op == "prod":
            return np.prod(a, axis=axis, keepdims=r.keepdims)
        if r.op == "logsumexp":
            return np.asarray(sc.logsumexp(a, axis=axis, keepdims=r.keepdims))
        return np.sqrt(np.sum(a * a, axis=axis, keepdims=r.keepdims))


def _args(r: Any) -> tuple[Formula, ...]:
    return r.args if isinstance(r, Linear) else (r.arg,)


def _as2d(a: np.ndarray, first: bool) -> np.ndarray:
    """A 1-D operand of matmul as torch reads it: a row on the left, a column on the right."""
    if a.ndim == 1:
        return a[None, :] if first else a[:, None]
    return a


def _linear_forward(r: Linear, vals: list[np.ndarray]) -> np.ndarray:
    if r.op == "transpose":
        return np.swapaxes(vals[0], -1, -2)
    if r.op == "dot":
        return np.asarray(np.dot(vals[0], vals[1]))
    return np.asarray(np.matmul(vals[0], vals[1]))


def _linear_vjp(r: Linear, ct: np.ndarray, vals: list[np.ndarray]) -> list[np.ndarray]:
    """Cotangents of the arguments (shapes of the arguments)."""
    if r.op == "transpose":
        return [np.swapaxes(ct, -1, -2)]
    a, b = vals
    if r.op == "dot":
        return [ct * b, ct * a]
    a2, b2 = _as2d(a, True), _as2d(b, False)
    c2 = np.reshape(ct, (a2.shape[0], b2.shape[1]))
    return [(c2 @ b2.T).reshape(a.shape), (a2.T @ c2).reshape(b.shape)]


def _linear_jvp(r: Linear, vals: list[np.ndarray], tans: list[np.ndarray]) -> np.ndarray:
    if r.op == "transpose":
        return np.swapaxes(tans[0], -1, -2)
    (a, b), (ta, tb) = vals, tans
    fn = np.dot if r.op == "dot" else np.matmul
    return np.asarray(fn(ta, b) + fn(a, tb))


def _count(r: Reduction) -> int:
    axes = range(len(r.arg.shape)) if r.axes is None else r.axes
    return math.prod(r.arg.shape[i] for i in axes)


def _local(r: Reduction, a: np.ndarray, value: np.ndarray) -> np.ndarray:
    """d reduction / d each argument element."""
    with np.errstate(all="ignore"):
        if r.op == "sum":
            return np.ones_like(a)
        if r.op == "mean":
            return np.full_like(a, 1.0 / _count(r))
        if r.op == "prod":
            return _others(a, r.axes)
        if r.op == "logsumexp":
            return np.exp(a - _expand(value, r))
        return a / _expand(value, r)


@dataclass
class Term:
    """One contribution to a quantity: ``coef * expr`` at every element of a formula's shape, summed into the
    output element each formula element maps to."""

    expr: sp.Expr
    shape: Shape  # the formula's
    coef: np.ndarray  # broadcastable to shape
    out_shape: Shape
    leaf: sp.Symbol | None = None  # kinks: one-sided in this leaf
    target: np.ndarray | None = None  # flat output index per formula element (None: broadcast reduction to out_shape)

    def fan(self, e: int) -> np.ndarray:
        """The formula elements that sum into output element e."""
        if self.target is not None:
            return np.flatnonzero(self.target == e)
        B = self.shape
        s = _aligned(self.out_shape, len(B))
        mi = np.unravel_index(e, s) if s else ()
        ranges = [np.array([mi[d]]) if s[d] == B[d] and B[d] != 1 else np.arange(B[d]) for d in range(len(B))]
        if not B:
            return np.array([0])
        grid = np.meshgrid(*ranges, indexing="ij")
        return np.ravel_multi_index(tuple(g.ravel() for g in grid), B)

    def outputs(self, rs: np.ndarray) -> np.ndarray:
        """The output element each formula element maps to."""
        if self.target is not None:
            return self.target[rs]
        B = self.shape
        if not B:
            return np.zeros(len(rs), dtype=np.int64)
        s = _aligned(self.out_shape, len(B))
        mi = np.unravel_index(rs, B)
        own = tuple(m if sd != 1 else np.zeros_like(m) for m, sd in zip(mi, s))
        return np.ravel_multi_index(own, s) if s else np.zeros(len(rs), dtype=np.int64)


def _at(arr: np.ndarray, B: Shape, r: int) -> float:
    """Element r (flat, of shape B) of an array broadcast to B."""
    arr = np.asarray(arr)
    if not B:
        return float(arr.reshape(-1)[0]) if arr.size else float("nan")
    mi = np.unravel_index(r, B)
    a = arr.reshape(_aligned(arr.shape, len(B)))
    return float(a[tuple(m if d != 1 else 0 for m, d in zip(mi, a.shape))])


def _switches(expr: sp.Expr) -> list[tuple[sp.Expr, sp.Expr]]:
    """(a, b) pairs whose equality is a kink or a branch boundary of the expression."""
    out = []
    for sub in sp.preorder_traversal(expr):
        if isinstance(sub, (sp.Abs, sp.sign, sp.Heaviside)):
            out.append((sub.args[0], sp.Integer(0)))
        elif isinstance(sub, (sp.Max, sp.Min)):
            out.extend(itertools.combinations(sub.args, 2))
        elif isinstance(sub, sp.core.relational.Relational):
            out.append((sub.lhs, sub.rhs))
    return out


class Quantity:
    """A list of terms summed into an output of ``shape``: float64 everywhere, exact on request."""

    def __init__(self, point: VectorPoint, terms: list[Term], shape: Shape, bracket: bool = False) -> None:
        self.point = point
        self.terms = terms
        self.shape = shape
        self.bracket = bracket  # J u: a kink contributes [min, max] of its one-sided products

    def float64(self) -> np.ndarray:
        at = self.point.at
        if len(self.terms) == 1 and self.terms[0].target is None and self.terms[0].shape == self.shape:
            t = self.terms[0]  # one formula over the output itself: no sum to form
            with np.errstate(all="ignore"):
                vals = at(t.expr, t.shape)
                return vals * t.coef if t.coef.ndim or float(t.coef) != 1.0 else vals
        total = np.zeros(self.shape)
        with np.errstate(all="ignore"):
            for t in self.terms:
                vals = np.broadcast_to(t.coef * at(t.expr, t.shape), t.shape)
                if t.target is not None:
                    total = total + np.bincount(t.target, vals.reshape(-1), minlength=total.size).reshape(self.shape)
                else:
                    total = total + unbroadcast(vals, self.shape)
        return total

    def exact(self) -> Exact:
        lo = np.array(self.float64(), dtype=np.float64).reshape(self.shape)  # an ndarray even for shape (): views
        ex = Exact(lo, lo, {}, np.zeros(self.shape, dtype=bool))  # hi is lo until a kink splits them
        ex.refine = lambda idx, thorough=True: self.refine(ex, idx, thorough)
        suspects = set(np.flatnonzero(~np.isfinite(lo)).tolist()[:REFINE_ELEMENTS])
        for t in self.terms:
            if t.expr.has(*NONSMOOTH):
                suspects |= self._near_switch(t)
        if suspects:
            self.refine(ex, np.array(sorted(suspects)[:REFINE_ELEMENTS]), True)
        return ex

    def _near_switch(self, t: Term) -> set[int]:
        at = self.point.at
        near = np.zeros(t.shape, dtype=bool)
        with np.errstate(all="ignore"):
            for a, b in _switches(t.expr):
                va, vb = at(a, t.shape), at(b, t.shape)
                close = np.abs(va - vb) <= 4 * np.finfo(np.float64).eps * np.maximum(np.abs(va), np.abs(vb))
                near |= np.broadcast_to(close, t.shape)
        rs = np.flatnonzero(near)[:REFINE_ELEMENTS]
        return set(t.outputs(rs).tolist())

    def refine(self, ex: Exact, indices: np.ndarray, thorough: bool = True) -> None:
        """Recompute these output elements exactly (in place); not thorough: skip elements that sum more than
        SAMPLE_FAN terms (and leave them for a thorough request)."""
        stats = self.point.ref.stats
        scale = None
        for e in np.unique(np.asarray(indices, dtype=np.int64)):
            e = int(e)
            if e in ex.exact_at:
                continue
            if not thorough and sum(len(t.fan(e)) for t in self.terms) > SAMPLE_FAN:
                continue
            ex.exact_at.add(e)
            result = self._element(e)
            if result is None:
                stats["unrefined"] += 1
                continue
            stats["refined"] += 1
            lo, hi, why, kink = result
            if kink and ex.hi is ex.lo:
                ex.hi = ex.lo.copy()
            flat_lo, flat_hi = ex.lo.reshape(-1), ex.hi.reshape(-1)
            if why is not None:
                flat_lo[e] = flat_hi[e] = math.nan
                ex.undefined[e] = why
                continue
            ex.undefined.pop(e, None)
            before = flat_lo[e]
            flat_lo[e], flat_hi[e] = _round(lo), _round(hi)
            if ex.kinks is not None:
                ex.kinks.reshape(-1)[e] = kink
            if not kink and math.isfinite(before) and math.isfinite(flat_lo[e]):
                scale = max(scale or 0.0, abs(flat_lo[e]))  # the largest exact value refined so far
                if scale > 0:  # in ulps of the quantity's largest element (an exact 0 has no ulp of its own)
                    stats["max_ulps"] = max(stats["max_ulps"], abs(before - flat_lo[e]) / float(np.spacing(scale)))

    def _element(self, e: int) -> tuple[Any, Any, str | None, bool] | None:
        lo = hi = mpmath.mpf(0)
        kink = False
        point = self.point
        with mpmath.workdps(DIGITS):
            for t in self.terms:
                rs = t.fan(e)
                if len(rs) > REFINE_FAN:
                    return None
                smooth = not t.expr.has(*NONSMOOTH) or t.leaf is None
                free = list(t.expr.free_symbols)
                for r in rs.tolist():
                    values = {s: point.leaf_at(s, t.shape, r) for s in free}
                    bad = point.nonfinite_reason(values, t.shape, r)
                    if bad:
                        return None, None, bad, False
                    c = mpmath.mpf(_at(t.coef, t.shape, r))
                    if mpmath.isnan(c):
                        return None, None, point.undefined_upstream(), False
                    if c == 0:
                        continue
                    mid, why = _mp(t.expr, values)
                    if why is not None:
                        return None, None, why, False
                    if smooth:
                        lo, hi = lo + c * mid, hi + c * mid
                        continue
                    x = values[t.leaf] if t.leaf in values else None
                    sides = []
                    if x is not None:
                        delta = mpmath.mpf(10) ** (-DIGITS // 2) * max(1, abs(x))
                        for sign in (-1, 1):
                            v, w = _mp(t.expr, {**values, t.leaf: x + sign * delta})
                            sides.append(mid if w is not None else v)
                    left, right = sides if sides else (mid, mid)
                    scale = max(abs(left), abs(right), 1)
                    if abs(left - right) <= mpmath.mpf(10) ** (-DIGITS // 3) * scale:
                        left = right = mid
                    else:
                        steep = _infinite_sides(t.expr, values, t.leaf, x, delta, (left, right))
                        if steep:
                            return None, None, steep, False
                        kink = True
                    p, q = c * left, c * right
                    if self.bracket:
                        lo, hi = lo + min(p, q), hi + max(p, q)
                    else:
                        lo, hi = lo + p, hi + q
        return lo, hi, None, kink


def _infinite_sides(expr: sp.Expr, values: dict[sp.Symbol, Any], leaf: sp.Symbol, x: Any, delta: Any,
                    sides: tuple[Any, Any]) -> str | None:
    """Element expansion's rule (evaluation.infinite_sides) for one term: the reason a side is infinite, else None."""
    near = [_mp(expr, {**values, leaf: x + sign * delta * mpmath.mpf(10) ** -6})[0] for sign in (-1, 1)]
    return infinite_sides(sides, (near[0], near[1]), leaf, x)


def _mp(expr: sp.Expr, values: dict[sp.Symbol, Any]) -> tuple[Any, str | None]:

    try:
        v = MpEvaluator(dict(values))(expr)
    except (ZeroDivisionError, ValueError, TypeError, OverflowError, ArithmeticError) as exc:
        return None, explain_at(expr, values, exc)
    if not _is_real(v) or mpmath.isinf(v):
        return None, explain_at(expr, values, v)
    return (v.real if isinstance(v, mpmath.mpc) else mpmath.mpf(v)), None


class VectorReference:
    """The vectorised counterpart of :class:`verifier.symbolic.Reference` (same interface for the checks)."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.plan = build_plan(case)
        self.stats = {"refined": 0, "unrefined": 0, "max_ulps": 0.0}
        lib = numeric_backend()
        self.numeric = "torch math kernels, no autograd" if lib.name == "torch" else "numpy, scipy.special"
        self._fallback: Any = None

    def at(self, point: Mapping[str, np.ndarray]) -> VectorPoint:
        return VectorPoint(self, point)

    def describe(self) -> str:
        s = self.stats
        n = sum(i.value.size for i in self.case.inputs)
        text = (f"vectorised: sympy derivatives of {len(self.plan.formulas())} element-wise formula(s) over {n} input "
                f"element(s), in float64 everywhere ({self.numeric}); exact (mpmath, {DIGITS} digits) at "
                f"{s['refined']} element(s): every disagreement with torch, kink and non-finite value, and a seeded "
                f"sample (the screen was off there by up to {s['max_ulps']:.3g} ulp of the largest value refined; "
                "the verdicts use the exact values)")
        if s["unrefined"]:
            text += f"; {s['unrefined']} element(s) sum over more than {REFINE_FAN} terms and stayed float64"
        if self._fallback is not None:
            text += "; higher orders by element expansion"
        return text

    def value_formula(self, index: int) -> str:
        return display(self.plan.out.expr) + self._legend(self.plan.out.expr)

    def column_formula(self, wrt: str, k: int, most: int = 3) -> str:
        s = self.plan.symbols[wrt]
        terms = []
        for f in self.plan.formulas():
            d = self.plan.partials.get(f.expr, {}).get(s)
            if d is not None and d != 0:
                head = "d out" if f is self.plan.out else f"d {_reduction_of(self.plan, f)}"
                terms.append(f"{head}/d {wrt} = {display(d, 160)}{self._legend(d)}")
        where = f" (element-wise, at {wrt}[{','.join(map(str, np.unravel_index(k, self.case.shapes[wrt])))}])" \
            if self.case.shapes[wrt] else ""
        return ("; ".join(terms[:most]) or f"every d out/d {wrt} is 0") + where

    def _legend(self, expr: sp.Expr) -> str:
        names = sorted(s.name for s in expr.free_symbols if s.name.startswith("{"))
        return f" (with {', '.join(names)} evaluated in float64)" if names else ""

    def fallback(self) -> Any:
        """The element-expanded reference, for what the vectorised one does not cover (higher orders of nested
        reductions)."""
        if self._fallback is None:
            from .symbolic import Reference

            self._fallback = Reference(self.case)
        return self._fallback


def _reduction_of(plan: Plan, f: Formula) -> str:
    for r in plan.reductions:
        if any(a is f for a in _args(r)):
            return r.symbol.name
    return "out"


class VectorPoint:
    """The vectorised reference at one point: every quantity the checks ask for."""

    def __init__(self, ref: VectorReference, point: Mapping[str, np.ndarray]) -> None:
        self.ref = ref
        self.plan = ref.plan
        self.point = point
        values = {self.plan.symbols[n]: np.asarray(point[n], dtype=np.float64).reshape(self.plan.shapes[n])
                  for n in self.plan.shapes if n in point}
        self.leaves: dict[sp.Symbol, np.ndarray] = dict(values)
        lib = numeric_backend()
        self.ev = Evaluator(values, lib)
        self.at = Parallel(self.ev, THREADS)
        self.args: dict[sp.Symbol, list[np.ndarray]] = {}
        for r in self.plan.reductions:
            self._forward(r)
        self.names = {s: n for n, s in self.plan.symbols.items()}

    def _forward(self, r: Any) -> None:
        vals = [np.asarray(self.at(a.expr, a.shape)) for a in _args(r)]
        self.args[r.symbol] = vals
        self._set(r.symbol, _linear_forward(r, vals) if isinstance(r, Linear) else _forward_reduce(r, vals[0]))

    def _set(self, symbol: sp.Symbol, value: np.ndarray) -> None:
        self.leaves[symbol] = value
        self.ev.set(symbol, value)

    # element access for exact refinement
    def leaf_at(self, s: sp.Symbol, B: Shape, r: int) -> Any:
        return mpmath.mpf(_at(self.leaves[s], B, r))

    def nonfinite_reason(self, values: dict[sp.Symbol, Any], B: Shape, r: int) -> str | None:
        for s, v in values.items():
            if not mpmath.isfinite(v):
                if s in self.names:
                    shape = self.plan.shapes[self.names[s]]
                    arr = np.arange(math.prod(shape)).reshape(shape) if shape else np.array(0)
                    k = int(_at(arr, B, r))
                    where = f"[{','.join(map(str, np.unravel_index(k, shape)))}]" if shape else ""
                    return f"the input {s.name}{where} = {float(v)} is not a finite number"
                return f"the intermediate {s.name} = {float(v)} is not a finite number"
        return None

    # --- quantities -------------------------------------------------------------------------------------------

    def value(self) -> Exact:
        if "_value" not in self.__dict__:
            out = self.plan.out
            self._value = Quantity(self, [Term(out.expr, out.shape, np.ones(()), out.shape)], out.shape).exact()
        return self._value

    def _reverse(self, weights: np.ndarray) -> dict[sp.Symbol, list[Term]]:
        """Cotangents from the output back to the inputs; the terms each input's gradient is made of."""
        plan = self.plan
        ct: dict[sp.Symbol, np.ndarray] = {}
        terms: dict[sp.Symbol, list[Term]] = {}
        shapes = {r.symbol: r.shape for r in plan.reductions}

        def visit(f: Formula, cot: np.ndarray) -> None:
            for s, d in plan.partials[f.expr].items():
                if s in self.names:
                    shape = plan.shapes[self.names[s]]
                    terms.setdefault(s, []).append(Term(d, f.shape, cot, shape, leaf=s))
                else:
                    with np.errstate(all="ignore"):
                        contrib = unbroadcast(np.broadcast_to(cot * self.at(d, f.shape), f.shape), shapes[s])
                    ct[s] = ct[s] + contrib if s in ct else contrib

        seed = np.array(weights, dtype=np.float64).reshape(plan.out.shape)
        missing = [i for i in self.value().undefined if seed.reshape(-1)[i] != 0]
        if missing:  # no derivative where the function itself does not exist: NaN flows to what those outputs feed
            seed.reshape(-1)[missing] = math.nan
        visit(plan.out, seed)
        for r in reversed(plan.reductions):
            if r.symbol not in ct:
                continue
            with np.errstate(all="ignore"):
                if isinstance(r, Linear):
                    cots = _linear_vjp(r, np.broadcast_to(ct[r.symbol], r.shape), self.args[r.symbol])
                else:
                    cots = [_expand(ct[r.symbol], r) * _local(r, self.args[r.symbol][0], self.leaves[r.symbol])]
            for arg, cot in zip(_args(r), cots):
                visit(arg, cot)
        return terms

    def vjp(self, weights: np.ndarray, name: str) -> Exact:
        key = ("vjp", name, np.asarray(weights, dtype=np.float64).tobytes())
        cache = self.__dict__.setdefault("_memo", {})
        if key not in cache:
            s = self.plan.symbols[name]
            terms = self._reverse(weights).get(s, [])
            cache[key] = Quantity(self, terms, self.plan.shapes[name]).exact()
        return cache[key]

    def jacobian(self, name: str) -> Exact:
        out_shape = self.plan.out.shape
        shape = out_shape + self.plan.shapes[name]
        if not out_shape:
            ex = self.vjp(np.ones(()), name)
            return ex
        rows = self._rows(name)
        lo = np.stack([r.lo.reshape(-1) for r in rows]).reshape(shape)
        hi = np.stack([r.hi.reshape(-1) for r in rows]).reshape(shape)
        width = max(1, math.prod(self.plan.shapes[name]))
        undefined = {i * width + k: why for i, r in enumerate(rows) for k, why in r.undefined.items()}
        # As in the expanded reference: where one partial does not exist (a pole), its whole row and column are out
        # (reverse mode multiplies the pole by the other outputs' zero weights, forward mode by the other inputs'
        # zero tangents: IEEE's 0 * inf is NaN, which is not a gradient bug).
        for flat, why in list(undefined.items()):
            i0, k0 = divmod(flat, width)
            for k in [i0 * width + k for k in range(width)] + [i * width + k0 for i in range(len(rows))]:
                undefined.setdefault(k, why)
        # ... and a row is out for every input when the value, or a partial wrt any other input, does not exist there
        for i, why in self._bad_rows().items():
            for k in range(width):
                undefined.setdefault(i * width + k, why)
        for flat in undefined:
            lo.reshape(-1)[flat] = hi.reshape(-1)[flat] = math.nan
        kinks = np.stack([r.kinks.reshape(-1) for r in rows]).reshape(shape)
        ex = Exact(lo, hi, undefined, kinks)

        def refine(idx: np.ndarray, thorough: bool = True) -> None:
            for flat in np.asarray(idx, dtype=np.int64).tolist():
                ex.exact_at.add(flat)
                i, k = divmod(flat, width)
                row = rows[i]
                if row.refine is not None:
                    row.refine(np.array([k]), thorough)
                ex.lo.reshape(-1)[flat], ex.hi.reshape(-1)[flat] = row.lo.reshape(-1)[k], row.hi.reshape(-1)[k]
                ex.kinks.reshape(-1)[flat] = row.kinks.reshape(-1)[k]
                if flat in undefined:
                    ex.lo.reshape(-1)[flat] = ex.hi.reshape(-1)[flat] = math.nan
                if k in row.undefined:
                    ex.undefined[flat] = row.undefined[k]

        ex.refine = refine
        return ex

    def undefined_upstream(self) -> str:
        """Why an element whose cotangent is NaN has no derivative: an output it feeds does not exist."""
        reasons = self.value().undefined
        first = next(iter(reasons.values()), "a value on the way does not exist")
        return f"no derivative where the function does not exist: an output this element feeds is undefined ({first})"

    def _rows(self, name: str) -> list[Exact]:
        """v^T J for each unit v: the rows of the Jacobian wrt one input (cached by vjp)."""
        out_shape = self.plan.out.shape
        rows = []
        for i in range(math.prod(out_shape)):
            unit = np.zeros(out_shape)
            unit.reshape(-1)[i] = 1.0
            rows.append(self.vjp(unit, name))
        return rows

    def _bad_rows(self) -> dict[int, str]:
        """Output elements whose value, or some partial wrt some differentiable input, does not exist."""
        if "_bad" not in self.__dict__:
            bad = dict(self.value().undefined)
            for n in self.plan.differentiable:
                for i, row in enumerate(self._rows(n)):
                    if row.undefined and i not in bad:
                        bad[i] = next(iter(row.undefined.values()))
            self._bad = bad
        return self._bad

    def jvp(self, tangents: Mapping[str, np.ndarray]) -> Exact:
        """J u. Small outputs: from the rows of J, so that kinks anywhere (also inside a reduction) give the bracket
        [min, max] of the one-sided products. Large outputs: forward through the formulas (kinks of the output's own
        formula only)."""
        plan = self.plan
        u = {n: np.asarray(tangents[n], dtype=np.float64).reshape(plan.shapes[n]) for n in plan.differentiable
             if n in tangents}
        if math.prod(plan.out.shape) <= ROWS_UP_TO:
            return self._jvp_rows(u)
        tan: dict[sp.Symbol, np.ndarray] = {plan.symbols[n]: t for n, t in u.items()}
        with np.errstate(all="ignore"):
            for r in plan.reductions:
                if r.symbol not in plan.active:
                    continue
                t_args = [sum((np.broadcast_to(self.at(d, a.shape) * tan[s], a.shape)
                               for s, d in plan.partials[a.expr].items() if s in tan), np.zeros(a.shape))
                          for a in _args(r)]
                if isinstance(r, Linear):
                    tan[r.symbol] = _linear_jvp(r, self.args[r.symbol], t_args)
                    continue
                local = _local(r, self.args[r.symbol][0], self.leaves[r.symbol])
                tan[r.symbol] = np.sum(local * t_args[0], axis=r.axes, keepdims=r.keepdims)
        out = plan.out
        terms = [Term(d, out.shape, tan[s], out.shape, leaf=s if s in self.names else None)
                 for s, d in plan.partials[out.expr].items() if s in tan]
        return Quantity(self, terms, out.shape, bracket=True).exact()

    def _jvp_rows(self, u: dict[str, np.ndarray]) -> Exact:
        shape = self.plan.out.shape
        m = max(1, math.prod(shape))
        jac = {n: self.jacobian(n) for n in u}
        ex = Exact(np.zeros(shape), np.zeros(shape), {}, np.zeros(shape, dtype=bool))

        def fill(refine: bool) -> None:
            for i in range(m):
                lo_terms, hi_terms, why, kink = [], [], None, False
                for n, j in jac.items():
                    t = u[n].reshape(-1)
                    width = t.size
                    if refine and j.refine is not None:
                        j.refine(np.arange(i * width, (i + 1) * width))
                    nz = np.flatnonzero(t)
                    bad = [k for k in nz.tolist() if i * width + k in j.undefined] if j.undefined else []
                    if bad:
                        why = j.undefined[i * width + bad[0]]
                        break
                    p, q = t[nz] * j.lo.reshape(m, width)[i, nz], t[nz] * j.hi.reshape(m, width)[i, nz]
                    lo_terms.append(np.minimum(p, q))
                    hi_terms.append(np.maximum(p, q))
                    kink = kink or bool(j.kinks is not None and j.kinks.reshape(m, width)[i, nz].any())
                if why is not None:
                    ex.lo.reshape(-1)[i] = ex.hi.reshape(-1)[i] = math.nan
                    ex.undefined[i] = why
                else:  # correctly rounded sums of the products
                    ex.lo.reshape(-1)[i] = math.fsum(np.concatenate(lo_terms)) if lo_terms else 0.0
                    ex.hi.reshape(-1)[i] = math.fsum(np.concatenate(hi_terms)) if hi_terms else 0.0
                ex.kinks.reshape(-1)[i] = kink

        fill(False)

        def refine(idx: np.ndarray, thorough: bool = True) -> None:
            if thorough and not ex.exact_at and sum(t.size for t in u.values()) <= REFINE_ELEMENTS:
                fill(True)
            ex.exact_at.update(range(m))

        ex.refine = refine
        return ex

    def derivative(self, order: int) -> Exact:
        """The order-k derivative tensor of a scalar output over all differentiable elements."""
        if order == 1:
            parts = [self.vjp(np.ones(()), n) for n in self.plan.differentiable]
            lo = np.concatenate([p.lo.reshape(-1) for p in parts])
            hi = np.concatenate([p.hi.reshape(-1) for p in parts])
            offsets = np.cumsum([0] + [p.lo.size for p in parts])
            undefined = {int(offsets[i]) + k: w for i, p in enumerate(parts) for k, w in p.undefined.items()}
            return Exact(lo, hi, undefined)
        ex = self._higher(order)
        holes = self.derivative(1).undefined  # as for element expansion: through a pole, torch's products are 0 x inf
        if holes:
            mask = np.zeros(ex.lo.shape, dtype=bool)
            for j in holes:
                for axis in range(order):
                    mask[(slice(None),) * axis + (j,)] = True
            mask &= ~np.isnan(ex.lo)
            ex.lo, ex.hi = np.where(mask, np.nan, ex.lo), np.where(mask, np.nan, ex.hi)
            masked = set()
            for flat in np.flatnonzero(mask):
                idx = np.unravel_index(int(flat), mask.shape)
                ex.undefined[int(flat)] = f"{ZERO_INF_RULE}{holes[next(int(i) for i in idx if int(i) in holes)]}"
                masked.add(int(flat))
            ex.exact_at |= masked
            if ex.refine is not None:  # refinement must not bring the masked entries back
                inner = ex.refine

                def refine(picks: Any, thorough: bool = False) -> None:
                    kept = np.array([p for p in picks if int(p) not in masked], dtype=np.int64)
                    if kept.size:
                        inner(kept, thorough)

                ex.refine = refine
        return ex

    def _higher(self, order: int) -> Exact:
        """Sum (or mean) of one element-wise formula of the inputs: scatter its k-th partials; otherwise expand."""
        plan = self.plan
        out = plan.out
        inner = out
        scale = 1.0
        if out.expr in {r.symbol for r in plan.reductions}:
            r = next(r for r in plan.reductions if r.symbol == out.expr)
            if isinstance(r, Linear) or r.op not in ("sum", "mean") or r.arg.expr.free_symbols - set(self.names):
                return self._expanded(order)
            inner, scale = r.arg, (1.0 / _count(r) if r.op == "mean" else 1.0)
        elif out.expr.free_symbols - set(self.names) or out.shape:
            return self._expanded(order)
        if inner.expr.has(*NONSMOOTH) and sum(i.value.size for i in self.ref.case.inputs) <= LIMITS.symbols:
            return self._expanded(order)  # one-sided higher derivatives at kinks: element expansion computes them
        diff_syms = [plan.symbols[n] for n in plan.differentiable]
        sizes = [max(1, math.prod(plan.shapes[n])) for n in plan.differentiable]
        offsets = dict(zip(diff_syms, np.cumsum([0] + sizes[:-1]).tolist()))
        n = sum(sizes)
        if n**order > LIMITS.derivatives * 10:
            raise LimitError(f"the order-{order} derivative has {n**order} entries")
        B = inner.shape
        size = max(1, math.prod(B))
        present = [s for s in diff_syms if s in inner.expr.free_symbols]
        own = {s: Term(sp.Integer(0), B, np.ones(()), plan.shapes[self.names[s]]).outputs(np.arange(size))
               for s in present}
        terms = []
        for combo in itertools.combinations_with_replacement(present, order):
            expr = memo(f"vectorised-d{order}", [case_key(self.ref.case), str(inner.expr), [c.name for c in combo]],
                        lambda combo=combo: _clean(sp.diff(inner.expr, *combo)))
            if expr == 0:
                continue
            for perm in set(itertools.permutations(combo)):
                target = np.ravel_multi_index(tuple(offsets[s] + own[s] for s in perm), (n,) * order)
                terms.append(Term(expr, B, np.full((), scale), (n,) * order, target=target))
        return Quantity(self, terms, (n,) * order).exact()

    def _expanded(self, order: int) -> Exact:
        total = sum(i.value.size for i in self.ref.case.inputs)
        if total > LIMITS.symbols:
            raise NotVectorisable(f"order-{order} derivatives through nested reductions need element expansion, "
                                  f"limited to {LIMITS.symbols} elements (this case has {total})")
        return self.ref.fallback().at(self.point).derivative(order)

    def expression(self, node: Node, shape: Shape) -> Exact:
        """The value of another case-language expression (a hand-derived formula) here."""
        plan = self.plan
        env = {n: Formula(s, plan.shapes[n]) for n, s in plan.symbols.items()}
        env.update(plan.defines)
        reductions = list(plan.reductions)
        f = _Builder(plan.shapes, reductions).build(node, env)
        for r in reductions[len(plan.reductions):]:
            self._forward(r)
        return Quantity(self, [Term(f.expr, shape, np.ones(()), shape)], shape).exact()

    def node_gradient(self, node: str, weights: np.ndarray) -> Exact:
        cut = VectorReference.__new__(VectorReference)
        cut.case, cut.stats, cut._fallback = self.ref.case, self.ref.stats, None
        cut.plan = build_plan(self.ref.case, cut=node)
        value = self.at(self.plan.defines[node].expr, self.ref.case.shapes[node])
        return VectorPoint(cut, {**self.point, node: np.array(value)}).vjp(weights, node)

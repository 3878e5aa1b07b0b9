"""The vectorised reference's plan: a case cut at its reductions into element-wise formulas in one symbol per tensor."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import sympy as sp

from ...case.model import Case
from ...language.nodes import Bin, Call, Cmp, Const, Index, Name, Neg, Node, Num, unparse
from ...language.ops import ELEMENTWISE, OPS
from ...language.shapes import broadcast_shapes, normalize_axis, reduced_shape
from ..base import NotVectorisable
from ..cache import case_key, memo
from ..symbols import COMPARISONS, constant_of, without_deltas
from ..symfuncs import S

Shape = tuple[int, ...]
REDUCTIONS = ("sum", "mean", "prod", "logsumexp", "norm")


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
        return [self.out] + [a for r in self.reductions for a in reduction_args(r)]


class PlanBuilder:
    """Case-language AST -> formulas; reductions become leaf symbols named by their text."""

    def __init__(self, shapes: Mapping[str, Shape], reductions: list[Any]) -> None:
        self.shapes = shapes
        self.reductions = reductions
        self.by_name: dict[str, Any] = {r.symbol.name: r for r in reductions}  # Reduction | Linear

    def build(self, node: Node, env: Mapping[str, Formula]) -> Formula:
        if isinstance(node, (Num, Const)):
            return Formula(constant_of(node), ())
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
                return Formula(COMPARISONS[node.op](a.expr, b.expr), shape)
            fn = {"+": lambda p, q: p + q, "-": lambda p, q: p - q, "*": lambda p, q: p * q,
                  "/": lambda p, q: p / q, "**": lambda p, q: p**q}[node.op]
            return Formula(fn(a.expr, b.expr), shape)
        if isinstance(node, Index):
            raise NotVectorisable("indexing picks single elements; the element-wise reference handles it")
        assert isinstance(node, Call)
        if node.params and node.func != "elements":
            raise NotVectorisable(f"{node.func}() with keyword parameters: the element-wise reference handles it")
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
        rule = OPS[op].shape
        assert rule is not None  # the linear ops (matmul, transpose, dot) all have a shape rule
        shape = rule(*(a.shape for a in args))
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
        builder = PlanBuilder(shapes, [])
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
            if any(a.expr.free_symbols & active for a in reduction_args(r)):
                active.add(r.symbol)
        plan.active = active
        for f in plan.formulas():
            plan.partials[f.expr] = {s: without_deltas(sp.diff(f.expr, s)) for s in f.expr.free_symbols & active}
        return plan

    return memo("vectorised", case_key(case) + [cut], build)


def vectorisable(case: Case) -> str | None:
    """None when the vectorised reference covers the case, else the reason it does not."""
    try:
        build_plan(case)
    except NotVectorisable as exc:
        return str(exc)
    return None


def reduction_args(r: Any) -> tuple[Formula, ...]:
    return r.args if isinstance(r, Linear) else (r.arg,)


REFINE_ELEMENTS = 2_000  # elements recomputed exactly per round (the worst first)


REFINE_SECONDS = 30.0  # rounds continue while disagreements remain and this budget lasts


REFINE_FAN = 20_000  # formula elements summed into one refined element (a broadcast scalar's gradient sums them all)


SAMPLE_FAN = 256  # the same for the seeded sample (a self-check of the screen, not a verdict)


THREADS = max(1, min(8, os.cpu_count() or 1))  # slabs of one large evaluation computed in parallel


ROWS_UP_TO = 256  # outputs up to which J u is summed from the rows of J


SAMPLE = 3  # seeded elements of every compared quantity recomputed exactly


NUMERIC = ("torch", "numpy")

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

import functools
import itertools
import math
import os
from typing import Any, Mapping

import mpmath
import numpy as np
import sympy as sp

from ...case.model import Case
from ...errors import LimitError
from ...language.nodes import Node
from ...limits import LIMITS
from ...values import Code, Exact, Reason, code_of
from ..base import NotVectorisable, ReferenceKind
from ..cache import case_key, memo
from ..expanded.point import ZERO_INF_RULE
from ..numeric.arrays import Evaluator, Parallel
from ..symbols import DIGITS, display, without_deltas
from ..symfuncs import NONSMOOTH
from .arrays import (
    expand_back,
    forward_reduce,
    linear_forward,
    linear_jvp,
    linear_vjp,
    local_derivative,
    reduced_count,
    unbroadcast,
)
from .plan import (
    NUMERIC,
    REFINE_ELEMENTS,
    REFINE_FAN,
    ROWS_UP_TO,
    THREADS,
    Formula,
    Linear,
    Plan,
    PlanBuilder,
    Shape,
    build_plan,
    reduction_args,
)
from .quantity import Quantity, Term, element_at


def numeric_backend() -> Any:
    """The array library of the float64 screen: $GRADVERIFY_NUMERIC (``torch``, the default: its math kernels, no
    autograd; or ``numpy``: numpy and scipy.special, independent of torch). Verdicts at disagreements always come from
    mpmath."""
    from ..numeric.arrays import backend

    name = os.environ.get("GRADVERIFY_NUMERIC", "torch")
    try:
        return backend(name if name in NUMERIC else "torch")
    except ImportError:
        return backend("numpy")


class VectorReference:
    """The vectorised reference (reference.base.ExactReference): element-wise formulas over whole tensors."""

    kind = ReferenceKind.VECTORISED

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
            from ..expanded.reference import Reference

            self._fallback = Reference(self.case)
        return self._fallback


def _reduction_of(plan: Plan, f: Formula) -> str:
    for r in plan.reductions:
        if any(a is f for a in reduction_args(r)):
            return r.symbol.name
    return "out"


class VectorPoint:
    """The vectorised reference at one point: every quantity the checks ask for (reference.base.PointQuantities)."""

    per_element_bounds = False  # float64 screens: the checks apply the norm-wise rounding bound

    def __init__(self, ref: VectorReference, point: Mapping[str, np.ndarray]) -> None:
        self.ref = ref
        self.plan = ref.plan
        self.point = point
        self.rounding: str | None = None
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
        vals = [np.asarray(self.at(a.expr, a.shape)) for a in reduction_args(r)]
        self.args[r.symbol] = vals
        self._set(r.symbol, linear_forward(r, vals) if isinstance(r, Linear) else forward_reduce(r, vals[0]))

    def _set(self, symbol: sp.Symbol, value: np.ndarray) -> None:
        self.leaves[symbol] = value
        self.ev.set(symbol, value)

    # element access for exact refinement
    def leaf_at(self, s: sp.Symbol, B: Shape, r: int) -> Any:
        return mpmath.mpf(element_at(self.leaves[s], B, r))

    def nonfinite_reason(self, values: dict[sp.Symbol, Any], B: Shape, r: int) -> str | None:
        for s, v in values.items():
            if not mpmath.isfinite(v):
                if s in self.names:
                    shape = self.plan.shapes[self.names[s]]
                    arr = np.arange(math.prod(shape)).reshape(shape) if shape else np.array(0)
                    k = int(element_at(arr, B, r))
                    where = f"[{','.join(map(str, np.unravel_index(k, shape)))}]" if shape else ""
                    return Reason(f"the input {s.name}{where} = {float(v)} is not a finite number", Code.NONFINITE_INPUT)
                return Reason(f"the intermediate {s.name} = {float(v)} is not a finite number", Code.NONFINITE_INPUT)
        return None

    # --- quantities -------------------------------------------------------------------------------------------

    def value(self) -> Exact:
        if "value_or_reason" not in self.__dict__:
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
                    cots = linear_vjp(r, np.broadcast_to(ct[r.symbol], r.shape), self.args[r.symbol])
                elif r.op in ("sum", "mean"):  # a constant local derivative: the cotangent, scaled, broadcast back
                    scale = 1.0 if r.op == "sum" else 1.0 / reduced_count(r)
                    cots = [expand_back(ct[r.symbol] * scale if scale != 1.0 else ct[r.symbol], r)]
                else:
                    cots = [expand_back(ct[r.symbol], r) * local_derivative(r, self.args[r.symbol][0], self.leaves[r.symbol])]
            for arg, cot in zip(reduction_args(r), cots):
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
        kinks = np.stack([r.kink_mask().reshape(-1) for r in rows]).reshape(shape)
        ex = Exact(lo, hi, undefined, kinks)

        def refine(idx: np.ndarray, thorough: bool = True) -> None:
            for flat in np.asarray(idx, dtype=np.int64).tolist():
                ex.exact_at.add(flat)
                i, k = divmod(flat, width)
                row = rows[i]
                if row.refine is not None:
                    row.refine(np.array([k]), thorough)
                ex.lo.reshape(-1)[flat], ex.hi.reshape(-1)[flat] = row.lo.reshape(-1)[k], row.hi.reshape(-1)[k]
                kinks.reshape(-1)[flat] = row.kink_mask().reshape(-1)[k]
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
        # the edge's kind is its cause's
        return Reason(f"no derivative where the function does not exist: an output this element feeds is undefined "
                      f"({first})", code_of(first))

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
                          for a in reduction_args(r)]
                if isinstance(r, Linear):
                    tan[r.symbol] = linear_jvp(r, self.args[r.symbol], t_args)
                    continue
                local = local_derivative(r, self.args[r.symbol][0], self.leaves[r.symbol])
                tan[r.symbol] = np.sum(local * t_args[0], axis=r.axes, keepdims=r.keepdims)
        out = plan.out
        terms = [Term(d, out.shape, tan[s], out.shape, leaf=s if s in self.names else None)
                 for s, d in plan.partials[out.expr].items() if s in tan]
        return Quantity(self, terms, out.shape, bracket=True).exact()

    def _jvp_rows(self, u: dict[str, np.ndarray]) -> Exact:
        shape = self.plan.out.shape
        m = max(1, math.prod(shape))
        jac = {n: self.jacobian(n) for n in u}
        kinks = np.zeros(shape, dtype=bool)
        ex = Exact(np.zeros(shape), np.zeros(shape), {}, kinks)

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
                kinks.reshape(-1)[i] = kink

        fill(False)

        def refine(idx: np.ndarray, thorough: bool = True) -> None:
            if thorough and not ex.exact_at and sum(t.size for t in u.values()) <= REFINE_ELEMENTS:
                fill(True)
            ex.exact_at.update(range(m))

        ex.refine = refine
        return ex

    def derivative(self, order: int, weights: np.ndarray | None = None) -> Exact:
        """The order-k derivative tensor of a scalar output (of sum(weights * out): by element expansion) over all
        differentiable elements."""
        if weights is not None:
            return self._expanded(order, weights)
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
                ex.undefined[int(flat)] = Reason(f"{ZERO_INF_RULE}{holes[next(int(i) for i in idx if int(i) in holes)]}",
                                                Code.ZERO_WEIGHT)
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
            inner, scale = r.arg, (1.0 / reduced_count(r) if r.op == "mean" else 1.0)
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
                        functools.partial(lambda c: without_deltas(sp.diff(inner.expr, *c)), combo))
            if expr == 0:
                continue
            for perm in set(itertools.permutations(combo)):
                target = np.ravel_multi_index(tuple(offsets[s] + own[s] for s in perm), (n,) * order)
                terms.append(Term(expr, B, np.full((), scale), (n,) * order, target=target))
        return Quantity(self, terms, (n,) * order).exact()

    def _expanded(self, order: int, weights: np.ndarray | None = None) -> Exact:
        total = sum(i.value.size for i in self.ref.case.inputs)
        if total > LIMITS.symbols:
            raise NotVectorisable(f"order-{order} derivatives through nested reductions need element expansion, "
                                  f"limited to {LIMITS.symbols} elements (this case has {total})")
        return self.ref.fallback().at(self.point).derivative(order, weights)

    def expression(self, node: Node, shape: Shape) -> Exact:
        """The value of another case-language expression (a hand-derived formula) here."""
        plan = self.plan
        env = {n: Formula(s, plan.shapes[n]) for n, s in plan.symbols.items()}
        env.update(plan.defines)
        reductions = list(plan.reductions)
        f = PlanBuilder(plan.shapes, reductions).build(node, env)
        for r in reductions[len(plan.reductions):]:
            self._forward(r)
        return Quantity(self, [Term(f.expr, shape, np.ones(()), shape)], shape).exact()

    def node_gradient(self, node: str, weights: np.ndarray) -> Exact:
        cut = VectorReference.__new__(VectorReference)
        cut.case, cut.stats, cut._fallback = self.ref.case, self.ref.stats, None
        cut.plan = build_plan(self.ref.case, cut=node)
        value = self.at(self.plan.defines[node].expr, self.ref.case.shapes[node])
        return VectorPoint(cut, {**self.point, node: np.array(value)}).vjp(weights, node)

"""Points chosen to expose bugs (``points: auto``; the default of conformance cases): both sides of every kink and
boundary and exactly on it, the ends of the sampled domain, exact zeros in products and scans, the saturated tails,
and a dense non-symmetric matrix for linear algebra. Each point comes with the words that say what kind it is.

The kinks and boundaries are read off the case's own exact expression (the switching quantity of every where, max,
min, abs, sign and step), solved for the element it depends on; nothing is listed by hand per op.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import sympy as sp

from ..case.model import Case
from ..language.nodes import Bin, Call
from .symbols import display

MAX_AUTO = 10  # points added per case
TAILS = (-40.0, -20.0, 20.0, 40.0)
SIDE = 2.0**-10  # the step to either side of a boundary (exact in every float format; ~1e-3 relative)
PRODUCTS = ("prod", "cumprod")
MATRICES = ("det", "inv", "solve", "slogdet", "logdet", "matmul", "trace")


def switches(expr: sp.Expr) -> list[sp.Expr]:
    """The quantities whose sign switches a branch of expr (zero at a kink or a jump)."""
    out: list[sp.Expr] = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Piecewise):
            for _, cond in node.args:
                if isinstance(cond, sp.core.relational.Relational):
                    out.append(cond.lhs - cond.rhs)
        elif isinstance(node, (sp.Max, sp.Min)) and len(node.args) == 2:
            out.append(node.args[0] - node.args[1])
        elif isinstance(node, (sp.Abs, sp.sign, sp.Heaviside)):
            out.append(node.args[0])
    return out


def boundaries(expr: sp.Expr, symbol: sp.Symbol, bounds: tuple[float, float] | None) -> list[float]:
    """The real values of symbol at which a switch of expr (depending on symbol alone) is zero."""
    found: set[float] = set()
    for s in switches(expr):
        if s.free_symbols != {symbol}:
            continue
        try:
            roots = sp.solveset(s, symbol, sp.S.Reals)
        except Exception:  # noqa: BLE001 - sympy cannot solve it: no boundary from this switch
            continue
        if not isinstance(roots, sp.FiniteSet):
            continue
        for r in roots:
            try:
                v = float(r)
            except (TypeError, ValueError):
                continue
            if math.isfinite(v) and (bounds is None or bounds[0] <= v <= bounds[1]):
                found.add(v)
    return sorted(found)


def auto_points(case: Case, flat_out: list[sp.Expr], symbols: Mapping[str, np.ndarray],
                base: Mapping[str, np.ndarray]) -> list[tuple[dict[str, np.ndarray], str]]:
    """The extra points of a case, each with its kind in words, at most MAX_AUTO."""
    out: list[tuple[dict[str, np.ndarray], str]] = []
    bounds = {**case.domain, **case.sweep}
    diff = [i for i in case.inputs if i.requires_grad and not i.integer]

    def add(changes: Mapping[str, np.ndarray], kind: str) -> None:
        point = {n: np.array(v, copy=True) for n, v in base.items()}
        point.update({n: np.asarray(v, dtype=np.float64) for n, v in changes.items()})
        if not any(all(np.array_equal(point[n], p[n], equal_nan=True) for n in point) for p, _ in out):
            out.append((point, kind))

    # 1. both sides of every kink and boundary, and on it: one element moved, the others as they are
    for i in diff if symbols else ():  # (the large-tensor references have no element symbols: no boundaries)
        for flat, sym in enumerate(np.asarray(symbols[i.name]).reshape(-1)):
            exprs = [e for e in flat_out if sym in e.free_symbols]
            roots = sorted({r for e in exprs for r in boundaries(e, sym, bounds.get(i.name))})
            for r in roots[:3]:
                step = SIDE * max(1.0, abs(r))
                for v, where in ((r - step, "just below"), (r, "at"), (r + step, "just above")):
                    value = np.array(base[i.name], dtype=np.float64, copy=True).reshape(-1)
                    value[flat] = v
                    label = display(sym)
                    add({i.name: value.reshape(i.shape)}, f"{where} the boundary {label} = {r:g}")
            if roots:
                break  # one element's boundaries stand for its equals (an element-wise op treats each alike)
    # 2. the ends of each sampled domain
    for name, (lo, hi) in bounds.items():
        shape = np.shape(base[name])
        add({name: np.full(shape, lo)}, f"at the lower end {name} = {lo:g} of its domain")
        add({name: np.full(shape, hi)}, f"at the upper end {name} = {hi:g} of its domain")
    nodes = case.nodes()
    calls = {n.func for n in nodes if isinstance(n, Call)} | {"matmul" for n in nodes if isinstance(n, Bin) and n.op == "@"}
    # 3. exact zeros in products and scans: one zero, and two
    if calls & set(PRODUCTS):
        for i in diff:
            if np.size(base[i.name]) >= 2:
                one = np.array(base[i.name], dtype=np.float64, copy=True).reshape(-1)
                one[0] = 0.0
                add({i.name: one.reshape(i.shape)}, f"with one exact zero in {i.name}")
                if one.size >= 3:
                    two = one.copy()
                    two[-1] = 0.0
                    add({i.name: two.reshape(i.shape)}, f"with two exact zeros in {i.name}")
    # 4. a dense random non-symmetric matrix, far from diagonal
    if calls & set(MATRICES):
        rng = np.random.default_rng([case.seed, 4099])
        for i in diff:
            if len(i.shape) == 2 and i.shape[0] == i.shape[1] and i.shape[0] > 1:
                dense = rng.standard_normal(i.shape) + 0.5
                add({i.name: dense}, f"at a dense random non-symmetric {i.name}")
    # 5. the saturated tails (an element-wise function of one input): where outputs round to their limits
    if len(diff) == 1 and case.output_shape == diff[0].shape:
        name = diff[0].name
        lo, hi = bounds.get(name, (-math.inf, math.inf))
        for t in TAILS:
            if lo <= t <= hi:
                add({name: np.full(np.shape(base[name]), t)}, f"in the tail {name} = {t:g}")
    return out[:MAX_AUTO]

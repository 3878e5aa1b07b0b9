"""The rounding bound of a derivative as the chain rule computes it: a running error analysis of forward-mode
differentiation over the case's own expression DAG (first and second order).

Every autodiff path computes a derivative as sums of products of the local derivatives of the function's operations
(whatever the order of the products, reverse or forward mode): d c = sum_k s_k d a_k, with s_k = dc/da_k evaluated at
the forward values of the arguments. A good implementation incurs, to first order, in units of the error e allowed to
one operation:

    E(c) = sum_k |s_k| E(a_k)                                   (the arguments' derivatives carried)
         + sum_k (2 |s_k| + sum_m |d s_k / d a_m| R(a_m)) |D(a_k)|  (the slope and the product rounded; the slope read
                                                                  at rounded arguments, R the forward bound)
         + ceil(log2 K) sum_k |s_k D(a_k)|                          (the sum of the terms)

with D the exact derivative and R the forward value's running bound (:mod:`verifier.reference.rounding`, which
builds this bound). The terms'
magnitudes, not the derivative's, set the bound: cancellation widens it exactly as much as the chain rule cancels
(sin(x)² + cos(x)², whose derivative sympy writes as 0, still allows torch's 1e-17), and a derivative that is small
because every term is small (sigmoid's at x = 40) gets a bound as small, so 0 is a finding there. The slope is taken at
the arguments, never at the node's own rounded output: a formula that reads its output (tanh's 1 - y²) loses digits
where the output saturates, and that loss is the implementation's, not a rounding every implementation must make.

The second order (Hessian entries) is the same analysis of D²c = sum_k s_k D²a_k + sum_km h_km D a_k D a_mᵀ.
Only sympy and mpmath; never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from .numeric.dag import DagEvaluator
from .numeric.mp import Evaluator

WIDE = np.longdouble  # x86's 80-bit extended format: float64's digits, exponents to 4932


class Node:
    """Of one sub-expression, each (n,): D the exact derivative, E its bound, G the exact second derivative along each
    input (diagonal), O the error of reading rounded outputs; at order 2, H and F (n, n): the Hessian and its bound."""

    __slots__ = ("d", "e", "g", "o", "h", "f")

    def __init__(self, d: np.ndarray, e: np.ndarray, g: np.ndarray, o: np.ndarray, h: np.ndarray | None = None,
                 f: np.ndarray | None = None) -> None:
        self.d, self.e, self.g, self.o, self.h, self.f = d, e, g, o, h, f


class ChainBound(DagEvaluator):
    """The chain-rule running bounds of expressions at one point, w.r.t. the symbols wrt (shared memo).

    library: the error allowed to evaluating one library function's derivative, in units of e; unit: e itself (the
    absolute error per unit of relative error: kappa times the unit roundoff); kappa: e / u.
    """

    def __init__(self, values: Evaluator, forward: Any, wrt: Sequence[sp.Symbol], order: int = 1,
                 library: float = 1.0, unit: float = 1.0, kappa: float = 1.0) -> None:
        self.values = values
        self.library = library
        self.unit, self.kappa = unit, kappa
        self.forward = forward  # R of every sub-expression: a rounding.RoundingBound (its own memo)
        self.index = {s: j for j, s in enumerate(wrt)}
        self.n = len(wrt)
        self.order = order
        self.memo: dict[sp.Basic, Node] = {}
        self._args: dict[sp.Basic, tuple[sp.Basic, ...] | None] = {}
        self._partials: dict[tuple[Any, ...], tuple[list[int], list[sp.Symbol], dict[tuple[int, ...], sp.Expr]]] = {}

    def first(self, expr: sp.Basic) -> tuple[np.ndarray, np.ndarray]:
        """(|D|, bound) of expr, each (n,), NaN where unknown. The bound is E plus the error of reading rounded
        outputs (a backward formula that computes from its output: tanh's 1 - y², sigmoid's y (1 - y)), the latter at
        most half the derivative: where reading the output would take more, the output has saturated, a formula that
        reads it keeps no correct digit, and that is a finding (sigmoid's 0 at x = 40 where the exact value is 4e-18)."""
        node = self(expr)
        mag = np.abs(node.d)
        return mag, node.e + np.minimum(node.o, 0.5 * mag / self.unit)

    def second(self, expr: sp.Basic) -> tuple[np.ndarray, np.ndarray]:
        """(|H|, bound) of expr, each (n, n). Reading rounded outputs moves a second derivative by about the relative
        amount it moves the first along the same inputs (again at most half of it)."""
        node = self(expr)
        assert node.h is not None and node.f is not None
        mag = np.abs(node.h)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.nan_to_num(node.o / np.abs(node.d), nan=0.0, posinf=0.0)
        return mag, node.f + np.minimum(mag * np.maximum.outer(rel, rel), 0.5 * mag / self.unit)

    def _arguments(self, node: sp.Basic) -> tuple[sp.Basic, ...]:
        """The walk (numeric.dag) visits only the arguments whose derivatives flow into the node; a node whose
        branch cannot be decided gets no bound (its entries fall back to the fixed table's atol)."""
        if node not in self._args:
            try:
                self._args[node] = self._children(node)
            except (ZeroDivisionError, ValueError, TypeError, OverflowError, ArithmeticError, KeyError):
                self._args[node] = None
        return self._args[node] or ()

    def _apply(self, node: sp.Basic) -> Node:
        args = self._args.pop(node, ())
        if args is None:
            return self._filled(np.nan)
        try:
            return self._node(node, args)
        except (ZeroDivisionError, ValueError, TypeError, OverflowError, ArithmeticError, KeyError):
            return self._filled(np.nan)  # no bound derived here: the fixed table's atol stands in

    def _filled(self, v: float) -> Node:
        z = np.full(self.n, v, dtype=WIDE)
        sq = np.full((self.n, self.n), v, dtype=WIDE) if self.order > 1 else None
        return Node(z, z, z, z, sq, sq)

    def _children(self, node: sp.Basic) -> tuple[sp.Basic, ...]:
        """The arguments whose derivatives flow into the node (only the taken branch of a where or max)."""
        if not node.args or isinstance(node, (sp.sign, sp.Heaviside, sp.floor, sp.ceiling)):
            return ()
        if isinstance(node, sp.Piecewise):
            for branch, cond in node.args:
                if self.values(cond):
                    return (branch,)
            return ()
        if isinstance(node, (sp.Max, sp.Min)):
            value = self.values(node)
            taken = [a for a in node.args if self.values(a) == value]
            return (taken[0],) if taken else ()
        if isinstance(node, (sp.logic.boolalg.Boolean, sp.core.relational.Relational)):
            return ()
        return tuple(node.args)

    def _node(self, node: sp.Basic, args: tuple[sp.Basic, ...]) -> Node:
        if node.is_Symbol and node in self.index:
            out = self._filled(0.0)
            out.d = np.zeros(self.n, dtype=WIDE)
            out.d[self.index[node]] = 1.0
            return out
        if not args:
            return self._filled(0.0)  # a constant, a step function (derivative 0 away from its jumps), a condition
        if isinstance(node, (sp.Piecewise, sp.Max, sp.Min)):
            return self.memo[args[0]]  # the branch taken, carried unchanged
        kids = [self.memo[a] for a in args]
        if isinstance(node, sp.Abs):
            sign = 1.0 if _wide(self.values(args[0])) >= 0 else -1.0
            k = kids[0]
            return Node(sign * k.d, k.e, sign * k.g, k.o, None if k.h is None else sign * k.h, k.f)
        r = [_wide(self.forward(a)) for a in args]
        if isinstance(node, sp.Add):
            K = len(args)
            return self._combine(kids, np.ones(K, dtype=WIDE), np.zeros((K, K), dtype=WIDE),
                                 np.zeros((K,) * 3, dtype=WIDE) if self.order > 1 else None, r, 0.0, 0.0)
        s, h, t = self._local(node, args)
        arithmetic = isinstance(node, sp.Mul) or (isinstance(node, sp.Pow) and node.args[1].is_Integer)
        if not arithmetic:  # a library function may read its argument rounded once more (as for the value)
            r = [ri + abs(_wide(self.values(a))) for ri, a in zip(r, args)]
        out = self._combine(kids, s, h, t, r, 1.0 if arithmetic else self.library, 1.0)
        if _reads_output(node):
            # torch's backward of exp, tanh, 1/x, sqrt reads the rounded output y (sigmoid's y (1 - y), softmax's
            # y (g - sum g y)): that moves the derivative along x_j by u |y| |G_j / D_j|
            y = abs(_wide(self.values(node)))
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                own = np.nan_to_num(y * np.abs(out.g) / np.abs(out.d) / self.kappa, nan=0.0, posinf=0.0)
            out.o = out.o + own
        return out

    def _combine(self, kids: list[Node], s: np.ndarray, h: np.ndarray, t: np.ndarray | None, r: list[float],
                 library: float, product: float) -> Node:
        """The first-order (and second-order) rules above for one node with local slopes s, second partials h and
        third partials t (K, K, K) at its arguments; r the arguments' forward bounds; library the error allowed to
        the evaluation of one partial (1 for arithmetic, more for a library function's derivative, 0 for a sum's
        slopes of 1); product 1 where each term s_k D(a_k) is a rounded product (0 for a sum)."""
        K = len(kids)
        levels = math.ceil(math.log2(K)) if K > 1 else 0
        R = np.nan_to_num(np.array(r, dtype=WIDE), nan=0.0, posinf=np.inf)
        D = np.array([k.d for k in kids])  # (K, n)
        E = np.array([k.e for k in kids])
        aD, aS = np.abs(D), np.abs(s)
        with np.errstate(invalid="ignore", over="ignore"):
            read = (library + product) * aS + np.abs(h) @ R  # the slope's error: evaluation, product, arguments
            d = s @ D
            e = aS @ E + read @ aD + levels * (aS[:, None] * aD).sum(axis=0)
            g = s @ np.array([k.g for k in kids]) + np.einsum("km,kj,mj->j", h, D, D)
            o = aS @ np.array([k.o for k in kids])
        if self.order == 1:
            return Node(d, e, g, o)
        Hk = np.array([k.h for k in kids])  # (K, n, n)
        Fk = np.array([k.f for k in kids])
        with np.errstate(invalid="ignore", over="ignore"):
            hh = np.einsum("km,ki,mj->ij", h, D, D)
            hd = np.einsum("k,kij->ij", s, Hk)
            ah = np.abs(h)
            tread = (library + 2 * product) * ah + (np.einsum("kml,l->km", np.abs(t), R) if t is not None else 0.0)
            f = (np.einsum("k,kij->ij", aS, Fk) + np.einsum("k,kij->ij", read, np.abs(Hk))
                 + np.einsum("km,ki,mj->ij", ah, E, aD) + np.einsum("km,ki,mj->ij", ah, aD, E)
                 + np.einsum("km,ki,mj->ij", tread, aD, aD)
                 + (levels + product) * (np.abs(hd) + np.einsum("km,ki,mj->ij", ah, aD, aD)))
        return Node(d, e, g, o, hd + hh, f)

    def _local(self, node: sp.Basic, args: tuple[sp.Basic, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The node's partial derivatives of orders 1, 2 (and 3 at order 2) w.r.t. its arguments, at their values;
        an argument that is a number (an exponent, a Bessel order) is held constant."""
        vals = [self.values(a) for a in args]
        if isinstance(node, sp.Mul):
            return _product_partials([_wide(v) for v in vals], self.order > 1)
        varying, dummies, partials = self._pattern(node)
        at = Evaluator(dict(zip(dummies, [vals[i] for i in varying])))
        K = len(args)
        s, h = np.zeros(K, dtype=WIDE), np.zeros((K, K), dtype=WIDE)
        t = np.zeros((K, K, K), dtype=WIDE) if self.order > 1 else None
        for a, i in enumerate(varying):
            s[i] = _wide(at(partials[(a,)]))
            for b, j in enumerate(varying):
                h[i, j] = _wide(at(partials[tuple(sorted((a, b)))]))
                if t is not None:
                    for c, m in enumerate(varying):
                        t[i, j, m] = _wide(at(partials[tuple(sorted((a, b, c)))]))
        return s, h, t

    def _pattern(self, node: sp.Basic) -> tuple[list[int], list[sp.Symbol], dict[tuple[int, ...], sp.Expr]]:
        """The node's partial derivatives as expressions of dummy arguments, memoised by the node's shape (its
        function and its number arguments): (the positions of the varying arguments, their dummies, {sorted dummy
        indices: partial})."""
        key = (node.func, tuple(a if a.is_Number else None for a in node.args), self.order)
        if key not in self._partials:
            if key in _PATTERNS:  # differentiated before in this process (another point, another call)
                self._partials[key] = _PATTERNS[key]
                return _PATTERNS[key]
            import itertools

            varying = [i for i, a in enumerate(node.args) if not a.is_Number]
            dummies = [sp.Dummy(f"a{k}", real=True) for k in varying]
            slots = dict(zip(varying, dummies))
            pattern = node.func(*[slots.get(i, a) for i, a in enumerate(node.args)], evaluate=False)
            partials: dict[tuple[int, ...], sp.Expr] = {}
            for order in range(1, self.order + 2):
                for idx in itertools.combinations_with_replacement(range(len(dummies)), order):
                    partials[idx] = pattern.diff(*[dummies[i] for i in idx])
            self._partials[key] = (varying, dummies, partials)
            if len(_PATTERNS) < PATTERNS_KEPT:
                _PATTERNS[key] = self._partials[key]
        return self._partials[key]


# a node shape's partial derivatives (sympy's diff of a pattern of dummies): the same for every point and call
_PATTERNS: dict[Any, tuple[list[int], list[sp.Symbol], dict[tuple[int, ...], sp.Expr]]] = {}
PATTERNS_KEPT = 4096


def _product_partials(v: list[Any], third: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Partials of a product of K factors: prod over the others (exact zeros kept, no division)."""
    K = len(v)
    a = np.array(v, dtype=WIDE)

    def prod_without(*skip: int) -> Any:
        return np.prod([a[j] for j in range(K) if j not in skip], dtype=WIDE)

    s = np.array([prod_without(k) for k in range(K)], dtype=WIDE)
    h = np.array([[prod_without(k, m) if k != m else 0.0 for m in range(K)] for k in range(K)], dtype=WIDE)
    t = None
    if third:
        t = np.array([[[prod_without(k, m, q) if len({k, m, q}) == 3 else 0.0 for q in range(K)] for m in range(K)]
                      for k in range(K)], dtype=WIDE)
    return s, h, t


def _reads_output(node: sp.Basic) -> bool:
    """exp, tanh and powers that are not positive integers (1/x, sqrt, rsqrt): torch's backward reads their output."""
    if isinstance(node, sp.Pow):
        e = node.args[1]
        return not (e.is_Integer and e > 0)
    return isinstance(node, (sp.exp, sp.tanh))


def _wide(v: Any) -> Any:
    """An mpmath (or Python) number as a long double: the exponent range of intermediates like exp(x²) at x = 50,
    which float64 cannot hold, on the way to a representable derivative."""
    if isinstance(v, mpmath.mpc):
        v = v.real if v.imag == 0 else mpmath.nan
    if isinstance(v, mpmath.mpf):
        if not mpmath.isfinite(v):
            return WIDE(float(v))
        m, e = mpmath.frexp(v)
        return np.ldexp(WIDE(float(m)), int(e)) if abs(e) < 16000 else WIDE(0.0 if e < 0 else np.inf)
    try:
        return WIDE(v)
    except (TypeError, ValueError):
        return WIDE(np.nan)

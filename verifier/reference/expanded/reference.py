"""The element-expansion reference: the case's function expanded into one sympy expression per output element,
differentiated exactly."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Mapping

import numpy as np
import sympy as sp

from ...case.model import Case
from ...errors import LimitError
from ...limits import LIMITS, flag
from ...values import Exact  # noqa: F401 - re-exported
from ..base import ReferenceKind
from ..cache import case_key, memo
from ..symbols import DIGITS, as_basic, display, evaluate, object_array, real_parts, without_deltas
from ..symfuncs import NONSMOOTH
from .point import PointReference

EVALUATION = f"exact: sympy derivatives evaluated with mpmath at {DIGITS} digits"


class Reference:
    """The symbolic side of one case: sympy expressions for the value and every derivative asked for."""

    kind = ReferenceKind.EXPAND

    def __init__(self, case: Case, why: str = "") -> None:
        self.why = why  # why element expansion was chosen (words for the evaluation line)
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
        self.flat_out = [as_basic(e) for e in out.reshape(-1)]
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
        self._weighted: dict[tuple[object, ...], dict[tuple[int, ...], sp.Expr]] = {}

    def _expand(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The defines and the function as object arrays of sympy expressions of the element symbols."""
        env = dict(self.symbols)
        for name in self.case.complex_inputs:  # real pairs -> x + I y, element by element
            pairs = self.symbols[name]
            env[name] = object_array(pairs[..., 0] + sp.I * pairs[..., 1])
        nodes: dict[str, np.ndarray] = {}
        for d in self.case.defines:
            env[d.name] = nodes[d.name] = evaluate(d.node, env)
        out = evaluate(self.case.function, env)
        if self.case.complex_inputs:  # every value in real coordinates: a complex output as (real, imaginary) pairs
            out = real_parts(out, self.case.complex_output)
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
            rows.append([without_deltas(sp.diff(e, s)) if s in free else sp.Integer(0) for s in self.wrt])
        return rows

    def weighted(self, weights: np.ndarray | None) -> sp.Expr:
        """The scalar whose higher derivatives are taken: the output, or sum(weights * out) for a non-scalar one
        (the weights exactly, as the rationals their floats are)."""
        if weights is None:
            return self.flat_out[0]
        return sp.Add(*(sp.Rational(Fraction(float(w))) * e for w, e in zip(weights.reshape(-1), self.flat_out)))

    def derivatives(self, order: int, weights: np.ndarray | None = None) -> dict[tuple[int, ...], sp.Expr]:
        """The distinct order-k partial derivatives of a scalar output (of sum(weights * out) where weights are
        given), keyed by sorted index tuples."""
        if weights is not None:
            return self._weighted_derivatives(order, weights)
        if order in self._derivs:
            return self._derivs[order]
        if order == 1:
            out: dict[tuple[int, ...], sp.Expr] = {(j,): e for j, e in enumerate(self.jacobian()[0])}
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

    def _weighted_derivatives(self, order: int, weights: np.ndarray) -> dict[tuple[int, ...], sp.Expr]:
        key = ("weighted", order, weights.tobytes())
        if key not in self._weighted:
            n = len(self.wrt)
            if math.comb(n + order - 1, order) > LIMITS.derivatives:
                raise LimitError(f"order-{order} derivatives of {n} variables need {math.comb(n + order - 1, order)} "
                                 f"expressions; the limit is {LIMITS.derivatives} (raise it with {flag('derivatives')})")
            def build() -> dict[tuple[int, ...], sp.Expr]:
                phi = self.weighted(weights)
                table: dict[tuple[int, ...], sp.Expr] = {
                    (j,): without_deltas(sp.diff(phi, s)) if s in phi.free_symbols else sp.Integer(0)
                    for j, s in enumerate(self.wrt)}
                for k in range(2, order + 1):
                    table = self._next_order(table, k)
                return table

            self._weighted[key] = memo(f"weighted-derivatives{order}", (self.key, weights.tobytes().hex()), build)
        return self._weighted[key]

    def _next_order(self, prev: dict[tuple[int, ...], sp.Expr], order: int) -> dict[tuple[int, ...], sp.Expr]:
        out = {}
        for idx in itertools.combinations_with_replacement(range(len(self.wrt)), order):
            base = prev[idx[:-1]]
            s = self.wrt[idx[-1]]
            out[idx] = without_deltas(sp.diff(base, s)) if s in base.free_symbols else sp.Integer(0)
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
        return [without_deltas(sp.diff(total, c)).xreplace(back) for c in cut.reshape(-1)]

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

    def describe(self) -> str:
        return f"{EVALUATION} (element expansion: {self.why})" if self.why else EVALUATION

    def at(self, point: Mapping[str, np.ndarray]) -> PointReference:
        """The exact quantities at one point (values already rounded to the case's dtype)."""
        return PointReference(self, point)






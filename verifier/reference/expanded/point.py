"""The exact reference at one point: sympy's derivative expressions evaluated at 50 digits, one-sided at kinks,
with a reason wherever a value does not exist."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import mpmath
import numpy as np
import sympy as sp

from ...dtypes import HALF
from ...language.nodes import Node
from ...values import Code, Exact, Reason, code_of
from ..facts import exact_from_mp, explain_at, finite_magnitudes, infinite_sides, is_real, real_mp, value_or_reason
from ..numeric.mp import Evaluator
from ..rounding import RoundingSlack, normwise_slack, set_slack, summed_slack
from ..symbols import DIGITS, as_basic, display, evaluate
from .near import approach, confirmed_tiny, quotients

if TYPE_CHECKING:  # the reference that builds this point (it imports this module)
    from .reference import Reference

# The prefix of the reason of an entry that exists mathematically but meets a pole elsewhere in torch's products
# (0 * inf = NaN): reverse mode's zero weights, forward mode's zero tangents, double backward's zero directions.
ZERO_INF_RULE = "0·inf (a zero weight times a pole elsewhere): "
# The prefix of the note on an entry whose formula is indeterminate at the point but whose limit exists there.
REMOVABLE_NOTE = "removable singularity: "
LIMIT_OPS = 200  # sympy.limit is asked only of formulas up to this many operations


def _to_mp(values: np.ndarray) -> list[Any]:
    return [mpmath.mpf(float(v)) for v in values.reshape(-1)]


class PointReference(RoundingSlack):
    """Exact values of one case at one point."""

    per_element_bounds = True  # every quantity carries its own running rounding bound

    def __init__(self, ref: Reference, point: Mapping[str, np.ndarray]) -> None:
        self.ref = ref
        self.point = point
        self.args = [a for i in ref.case.inputs for a in _to_mp(point[i.name])]
        self._cache: dict[str, Any] = {}
        self.resolved: dict[int, str] = {}  # Jacobian entries whose indeterminate formula has a limit, with a note
        self._higher_notes: dict[tuple[int, int], str] = {}  # the same for higher derivatives: (order, key number)
        self.rounding: str | None = None  # the dtype whose rounding bound each Exact carries (None: none)

    def _eval(self, key: str, exprs: Sequence[sp.Expr], args: list[Any] | None = None) -> tuple[list[Any], dict[int, str]]:
        """Evaluate expressions in DIGITS digits; elements that do not exist come back None with a reason."""
        args = self.args if args is None else args
        out: list[Any] = []
        bad: dict[int, str] = {}
        nonfinite = {s for s, a in zip(self.ref.args, args) if not mpmath.isfinite(a)}
        with mpmath.workdps(DIGITS):
            evaluate_at = Evaluator(dict(zip(self.ref.args, args)))
            for k, e in enumerate(exprs):
                if nonfinite and e.free_symbols & nonfinite:  # the point is not in R^n: nothing is defined there
                    bad[k] = self.explain(e, None)
                    out.append(None)
                    continue
                v = value_or_reason(evaluate_at, e)
                if isinstance(v, Exception) or not is_real(v) or mpmath.isinf(v):
                    # cancellation can leave an exact 0 where a tiny number belongs (log(1 - erfc(y)/2) for large
                    # y): before calling it a pole, ask again with six times the digits
                    with mpmath.workdps(DIGITS * 6):
                        v = value_or_reason(Evaluator(dict(zip(self.ref.args, args))), e)
                if isinstance(v, Exception) or not is_real(v) or mpmath.isinf(v):  # an infinite value is a pole
                    bad[k] = self.explain(e, v)
                    out.append(None)
                else:
                    out.append(confirmed_tiny(e, real_mp(v), args, self.ref.args))
        return out, bad

    def explain(self, expr: sp.Expr, value: Any) -> str:
        """Why an expression has no real value here: a non-finite input, or the first sub-expression outside its
        domain."""
        return explain_at(expr, dict(zip(self.ref.args, self.args)), value)

    def nonfinite_wrt(self) -> dict[int, str]:
        """Differentiable input elements that are NaN or infinite, by position in wrt, with the reason."""
        values = dict(zip(self.ref.args, self.args))
        return {j: Reason(f"the input {display(s)} = {float(values[s])} is not a finite number", Code.NONFINITE_INPUT)
                for j, s in enumerate(self.ref.wrt) if not mpmath.isfinite(values[s])}

    def _kept(self, key: tuple[Any, ...], build: Callable[[], Exact]) -> Exact:
        """A quantity computed once at this point (the point is kept between calls at the same values: see
        choice.point_quantities), handed out as a copy each time."""
        kept = self._cache.setdefault("kept", {})
        if key not in kept:
            kept[key] = build()
        return kept[key].copy()

    def value(self) -> Exact:
        def build() -> Exact:
            vals, bad = self._eval("value", self.ref.flat_out)
            return self._with_slack(exact_from_mp(vals, bad, self.ref.output.shape), self.ref.flat_out)

        return self._kept(("value", self.rounding), build)

    def _jacobian_mp(self) -> tuple[np.ndarray, np.ndarray, dict[int, str], np.ndarray]:
        """(lo, hi, undefined, kink mask) of the Jacobian as mp object arrays, shape (out, wrt)."""
        if "jac" in self._cache:
            return self._cache["jac"]
        jac = self.ref.jacobian()
        m, n = len(jac), len(self.ref.wrt)
        flat = [e for row in jac for e in row]
        vals, bad = self._eval("jac", flat)
        _, value_bad = self._eval("value", self.ref.flat_out)
        for i, why in value_bad.items():  # no derivative where the function itself does not exist
            for j in range(n):
                vals[i * n + j] = None
                bad[i * n + j] = why
        for j, why in self.nonfinite_wrt().items():  # nor with respect to an input that is not a number
            for i in range(m):
                vals[i * n + j] = None
                bad[i * n + j] = why
        lo = np.array(vals, dtype=object).reshape(m, n)
        hi = lo.copy()
        kinks = np.zeros((m, n), dtype=bool)
        resolved: dict[int, str] = {}
        for k, why in list(bad.items()):  # 0·inf in the formula: the derivative may still exist, as a limit
            i, j = divmod(k, n)
            if code_of(why) is Code.INDETERMINATE and i not in value_bad:
                limits = self._limits(i, j, jac[i][j])
                if limits is not None:
                    (lo[i, j], hi[i, j]), kinks[i, j] = limits, limits[0] != limits[1]
                    singular = any(code_of(bad.get(i * n + c, "")) is Code.POLE for c in range(n) if c != j)
                    resolved[k] = (Reason(f"{REMOVABLE_NOTE}{why}; its limit is {mpmath.nstr(limits[0], 17)}",
                                          Code.SINGULAR if singular else Code.REMOVABLE)
                                   if limits[0] == limits[1] else
                                   Reason(f"a kink: {why}; its one-sided limits are {mpmath.nstr(limits[0], 17)} and "
                                          f"{mpmath.nstr(limits[1], 17)}", Code.KINK))
                    del bad[k]
        self.resolved = resolved
        if not self.ref.smooth:
            positions = {id(s): k for k, s in enumerate(self.ref.args)}
            for j, s in enumerate(self.ref.wrt):
                k = positions[id(s)]
                x = self.args[k]
                delta = mpmath.mpf(10) ** (-DIGITS // 2) * max(1, abs(x))
                sides: list[np.ndarray] = []
                closer: list[np.ndarray] = []
                for sign in (-1, 1):
                    for step, out in ((delta, sides), (delta * mpmath.mpf(10) ** -6, closer)):
                        args = list(self.args)
                        with mpmath.workdps(DIGITS):  # at the default 15 digits, x + 1e-25 would round back to x
                            args[k] = x + sign * step
                        col, _ = self._eval("jac", flat, args)
                        out.append(np.array(col, dtype=object).reshape(m, n)[:, j])
                for i in range(m):
                    left, right = sides[0][i], sides[1][i]
                    if left is None or right is None:
                        continue
                    scale = max(abs(left), abs(right), 1)
                    if abs(left - right) > mpmath.mpf(10) ** (-DIGITS // 3) * scale:
                        steep = infinite_sides((left, right), (closer[0][i], closer[1][i]), s, x)
                        if steep:
                            lo[i, j] = hi[i, j] = None
                            bad[i * n + j] = steep
                            continue
                        lo[i, j], hi[i, j] = left, right
                        kinks[i, j] = True
                        bad.pop(i * n + j, None)
        rounding = self._jacobian_slack()
        for k, why in (rounding[1] if rounding is not None else {}).items():  # beyond a half dtype's range: out, and
            lo.flat[k] = hi.flat[k] = None  # torch's products meet it as they meet a pole (0·inf)
            bad.setdefault(k, why)
            kinks.flat[k] = False
        result = (lo, hi, bad, kinks)
        self._cache["jac"] = result
        return result

    def _limits(self, i: int, j: int, derivative: sp.Expr) -> tuple[Any, Any] | None:
        """The one-sided limits of d out[i] / d wrt[j] along wrt[j], the other inputs fixed at their values, where
        out[i] is continuous along that line (else the derivative does not exist); None when sympy cannot say or
        the expression is too large to ask."""
        if sp.count_ops(derivative) > LIMIT_OPS:
            return None
        s = self.ref.wrt[j]
        values = {a: sp.Rational(float(v)) for a, v in zip(self.ref.args, self.args)}  # the floats, exactly
        at = values.pop(s)
        value = self.ref.flat_out[i].xreplace(values)
        d = derivative.xreplace(values)
        sides: list[Any] | None = None
        try:
            here = value.xreplace({s: at})
            if all(sp.limit(value, s, at, direction) == here for direction in ("-", "+")):
                sides = [sp.limit(d, s, at, direction) for direction in ("-", "+")]
        except Exception:  # noqa: BLE001 - sympy could not decide: the quotients below may still do
            sides = None
        if sides is None or not all(v.is_real and v.is_finite for v in sides):
            # sympy cannot follow the function along the line (0**b at a = 0, whose formula a**b log(a) stays
            # 0·inf): the one-sided difference quotients of the function itself, at 50 digits, converged
            return quotients(value, s, at)
        with mpmath.workdps(DIGITS):
            return tuple(Evaluator({})(v) for v in sides)

    def jacobian(self, name: str) -> Exact:
        """d out / d input, shaped out_shape + input_shape."""
        return self._kept(("jacobian", name, self.rounding), lambda: self._jacobian(name))

    def _jacobian(self, name: str) -> Exact:
        lo, hi, bad, kinks = self._jacobian_mp()
        # Where one partial does not exist (a pole), the whole row and column are out: jacrev multiplies the pole by
        # the zero weights of the other outputs, jacfwd by the zero tangents of the other inputs, and IEEE says
        # 0 * inf is NaN. Neither is a gradient bug.
        m, n = lo.shape
        lo, hi, bad = lo.copy(), hi.copy(), dict(bad)
        for hole, why in list(bad.items()):
            i0, j0 = divmod(hole, n)
            for k in [i0 * n + j for j in range(n)] + [i * n + j0 for i in range(m)]:
                if k not in bad:
                    lo.flat[k] = hi.flat[k] = None
                    bad[k] = Reason(f"{ZERO_INF_RULE}{why}", Code.ZERO_WEIGHT)
        sl = self.ref.slices[name]
        n = lo.shape[1]
        shape = self.ref.output.shape + self.ref.case.shapes[name]
        sub_bad = {}
        width = sl.stop - sl.start
        for flat, why in bad.items():
            i, j = divmod(flat, n)
            if sl.start <= j < sl.stop:
                sub_bad[i * width + (j - sl.start)] = why
        ex = exact_from_mp(list(lo[:, sl].reshape(-1)), sub_bad, shape, list(hi[:, sl].reshape(-1)))
        ex.kinks = kinks[:, sl].reshape(shape)
        rounding = self._jacobian_slack()  # (its overflows are undefined in the Jacobian already)
        if rounding is not None:
            set_slack(ex, rounding[0][:, sl])
        for flat, note in self.resolved.items():
            i, j = divmod(flat, n)
            if sl.start <= j < sl.stop and i * width + (j - sl.start) not in sub_bad:
                ex.notes[i * width + (j - sl.start)] = note
        return ex

    def _entries(self) -> tuple[list[list[tuple[int, Any, Any]]], list[list[tuple[int, Any, Any]]], np.ndarray]:
        """The Jacobian's entries that are not an exact zero, (row, lo, hi) by column and (column, lo, hi) by row
        (None where undefined), and its finite magnitudes: the products with a weight skip the zeros, which add
        nothing (an element-wise function's Jacobian is diagonal)."""
        if "entries" not in self._cache:
            lo, hi, _, _ = self._jacobian_mp()
            m, n = lo.shape
            by_col: list[list[tuple[int, Any, Any]]] = [[] for _ in range(n)]
            by_row: list[list[tuple[int, Any, Any]]] = [[] for _ in range(m)]
            for i in range(m):
                for j in range(n):
                    a, b = lo[i, j], hi[i, j]
                    if a is None or a != 0 or b != 0:
                        by_col[j].append((i, a, b))
                        by_row[i].append((j, a, b))
            self._cache["entries"] = by_col, by_row, finite_magnitudes(lo)
        return self._cache["entries"]

    def vjp(self, weights: np.ndarray, name: str) -> Exact:
        """sum_m weights[m] * d out[m] / d input; at kinks the left and right derivatives of that sum."""
        w64 = np.asarray(weights, dtype=np.float64)
        return self._kept(("vjp", name, w64.shape, w64.tobytes(), self.rounding), lambda: self._vjp(w64, name))

    def _vjp(self, weights: np.ndarray, name: str) -> Exact:
        lo, hi, bad, kinks = self._jacobian_mp()
        by_col, _, magnitudes = self._entries()
        sl = self.ref.slices[name]
        w = _to_mp(weights)
        width = sl.stop - sl.start
        out_lo, out_hi, out_bad = [], [], {}
        for j in range(sl.start, sl.stop):
            a = b = mpmath.mpf(0)
            for i, lij, hij in by_col[j]:
                wi = w[i]
                if lij is None:
                    why = bad.get(i * lo.shape[1] + j, "undefined")
                    out_bad[j - sl.start] = why if wi != 0 else Reason(f"{ZERO_INF_RULE}{why}", Code.ZERO_WEIGHT)
                    break
                if wi == 0:
                    continue
                a, b = a + wi * lij, b + wi * hij  # the one-sided derivative of sum(w f) is sum(w f')
            out_lo.append(None if j - sl.start in out_bad else a)
            out_hi.append(None if j - sl.start in out_bad else b)
        ex = exact_from_mp(out_lo, out_bad, self.ref.case.shapes[name], out_hi)
        ex.kinks = np.array([kinks[:, j].any() for j in range(sl.start, sl.stop)], dtype=bool).reshape(
            self.ref.case.shapes[name]) if width else None
        rounding = self._jacobian_slack()
        if rounding is not None:  # each term's slack, weighted, and the rounding of the sum over the outputs
            set_slack(ex, summed_slack(np.abs(weights.reshape(-1)), rounding[0][:, sl], magnitudes[:, sl], self.rounding))
        n = lo.shape[1]
        for flat, note in self.resolved.items():
            i, j = divmod(flat, n)
            if sl.start <= j < sl.stop and w[i] != 0 and j - sl.start not in out_bad:
                ex.notes[j - sl.start] = note
        return ex

    def jvp(self, tangents: Mapping[str, np.ndarray]) -> Exact:
        """sum_n d out / d input[n] * tangent[n] over every differentiable input."""
        key = tuple((n, np.shape(t), np.asarray(t, dtype=np.float64).tobytes()) for n, t in sorted(tangents.items()))
        return self._kept(("jvp", key, self.rounding), lambda: self._jvp(tangents))

    def _jvp(self, tangents: Mapping[str, np.ndarray]) -> Exact:
        lo, hi, bad, kinks = self._jacobian_mp()
        _, by_row, magnitudes = self._entries()
        u = [t for i in self.ref.case.differentiable for t in _to_mp(tangents[i.name])]
        out_lo, out_hi, out_bad = [], [], {}
        for i in range(lo.shape[0]):
            a = b = mpmath.mpf(0)
            for j, lij, hij in by_row[i]:
                uj = u[j]
                if lij is None:
                    why = bad.get(i * lo.shape[1] + j, "undefined")
                    out_bad[i] = why if uj != 0 else Reason(f"{ZERO_INF_RULE}{why}", Code.ZERO_WEIGHT)
                    break
                if uj == 0:
                    continue
                p, q = uj * lij, uj * hij
                a, b = a + min(p, q), b + max(p, q)
            out_lo.append(None if i in out_bad else a)
            out_hi.append(None if i in out_bad else b)
        ex = exact_from_mp(out_lo, out_bad, self.ref.output.shape, out_hi)
        ex.kinks = kinks.any(axis=1).reshape(self.ref.output.shape) if kinks.size else None
        rounding = self._jacobian_slack()
        if rounding is not None:
            t = np.abs(np.array([float(x) for x in u]))
            set_slack(ex, summed_slack(t, rounding[0].T, magnitudes.T, self.rounding))
        return ex

    def derivative(self, order: int, weights: np.ndarray | None = None) -> Exact:
        """The order-k derivative tensor of a scalar output (of sum(weights * out) where weights are given), shape
        (n,) * k over all differentiable elements."""
        w = None if weights is None else np.asarray(weights, dtype=np.float64)
        key = ("derivative", order, None if w is None else (w.shape, w.tobytes()), self.rounding)
        return self._kept(key, lambda: self._derivative(order, w))

    def _derivative(self, order: int, weights: np.ndarray | None) -> Exact:
        if order == 1 and weights is None:
            lo, hi, bad, _ = self._jacobian_mp()
            ex = exact_from_mp(list(lo.reshape(-1)), bad, (len(self.ref.wrt),), list(hi.reshape(-1)))
            rounding = self._jacobian_slack()
            return ex if rounding is None else set_slack(ex, rounding[0])
        table = self.ref.derivatives(order, weights)
        keys = list(table)
        vals, bad = self._eval(f"d{order}", [table[k] for k in keys])
        for number, reason in list(bad.items()):  # 0·inf in the formula: the entry may exist as a limit (pow at 0)
            if code_of(reason) is Code.INDETERMINATE:
                limit = self._entry_limit(table[keys[number]], sorted(set(keys[number])))
                if limit is not None:
                    vals[number] = limit
                    del bad[number]
                    self._higher_notes[(order, number)] = Reason(
                        f"{REMOVABLE_NOTE}{reason}; its limit is {mpmath.nstr(limit, 17)}", Code.REMOVABLE)
        n = len(self.ref.wrt)
        full = np.empty((n,) * order, dtype=object)
        full_bad: dict[int, str] = {}
        nonfinite = self.nonfinite_wrt()
        # As for the Jacobian: where a first derivative does not exist (a pole), every higher derivative through that
        # input is out too; torch's double backward multiplies the pole by zero weights there and IEEE gives NaN.
        _, _, first_bad, _ = self._jacobian_mp()
        holes = {**{j % n: why for j, why in first_bad.items()}, **nonfinite}
        sides = self._one_sided(keys, [table[k] for k in keys]) if not self.ref.smooth else {}
        full_hi = np.empty_like(full)
        kinks = np.zeros(full.shape, dtype=bool)
        for number, (k, v) in enumerate(zip(keys, vals)):
            why = next((holes[j] for j in k if j in holes), None)
            if why is not None:
                if v is not None:  # it exists, but torch meets the pole of input j on the way
                    bad[number] = Reason(f"{ZERO_INF_RULE}{why}", Code.ZERO_WEIGHT)
                left = right = None
            elif number in sides:  # a kink: both one-sided values
                (left, right), _ = sides[number], bad.pop(number, None)
            else:
                left = right = v
            for perm in set(itertools.permutations(k)):
                full[perm], full_hi[perm] = left, right
                kinks[perm] = number in sides
                if left is None:
                    full_bad[int(np.ravel_multi_index(perm, full.shape))] = bad[number]
        ex = exact_from_mp(list(full.reshape(-1)), full_bad, full.shape, list(full_hi.reshape(-1)))
        ex.kinks = kinks
        for number, k in enumerate(keys):
            note = self._higher_notes.get((order, number))
            if note is not None:
                for perm in set(itertools.permutations(k)):
                    ex.notes[int(np.ravel_multi_index(perm, full.shape))] = note
        self._through_edges(ex, order)
        if self.rounding is not None and self.rounding not in HALF and order == 2:
            return set_slack(ex, self._hessian_slack(self.ref.weighted(weights)))  # the chain rule's own bound
        rounding = self._slack([table[k] for k in keys])
        if rounding is not None and self.rounding is not None and self.rounding not in HALF:
            # order 3 and up: the rounding of sympy's formula and a norm-wise floor
            magnitudes = np.array([float(v) if v is not None else 0.0 for v in vals])
            rounding[0][:] += normwise_slack(np.nan_to_num(magnitudes), self.rounding, 4 * order)
        elif rounding is not None and weights is None:
            rounding[0][:] += self._forward_rounding_higher(keys, [table[k] for k in keys])
            slack = np.zeros(full.shape)
            over = {}
            for number, k in enumerate(keys):
                for perm in set(itertools.permutations(k)):
                    flat = int(np.ravel_multi_index(perm, full.shape))
                    slack.flat[flat] = rounding[0][number]
                    if number in rounding[1]:
                        over[flat] = rounding[1][number]
            set_slack(ex, slack, over)
        return ex

    def _entry_limit(self, expr: sp.Expr, along: list[int]) -> Any:
        """A higher derivative whose formula is 0·inf here, as the limit of the entry approaching the point along each
        input it differentiates by, from each side where it is real; every limit found must agree (None: none, or
        they differ)."""
        positions = {id(s): k for k, s in enumerate(self.ref.args)}
        found = []
        for j in along:
            k = positions[id(self.ref.wrt[j])]
            line = expr.xreplace({a: sp.Rational(float(v)) for a, v in zip(self.ref.args, self.args) if a is not
                                  self.ref.args[k]})
            at = sp.Rational(float(self.args[k]))
            for sign in (-1, 1):
                limit = approach(line, self.ref.args[k], at, sign)
                if limit is not None:
                    found.append(limit)
        if not found:
            return None
        tol = mpmath.mpf(10) ** (-DIGITS // 3)
        return found[0] if all(abs(v - found[0]) <= tol * max(1, abs(found[0])) for v in found) else None

    def _through_edges(self, ex: Exact, order: int) -> None:
        """Higher derivatives along an input where the first derivative has a kink (the function itself is non-smooth
        there) are edges too: torch's products meet the non-smooth formula on the way (copysign's |a| at a = 0)."""
        _, _, _, kinks = self._jacobian_mp()
        edge: dict[int, str] = {}
        for col in np.nonzero(kinks)[1]:
            edge.setdefault(int(col), Reason(f"a kink of the first derivative along {display(self.ref.wrt[int(col)])}",
                                           Code.KINK))
        if not edge:
            return
        for flat in range(ex.lo.size):
            idx = [int(k) for k in np.unravel_index(flat, ex.lo.shape)]
            j = next((k for k in idx if k in edge), -1)
            if j >= 0 and flat not in ex.undefined and flat not in ex.notes:
                ex.notes[flat] = Reason(f"{REMOVABLE_NOTE}through the first derivative along "
                                        f"{display(self.ref.wrt[j])}: {edge[j]}", Code.SINGULAR)

    def _one_sided(self, keys: list[tuple[int, ...]], exprs: list[sp.Expr]) -> dict[int, tuple[Any, Any]]:
        """Higher derivatives at a kink: each entry evaluated just below and just above the point along each input it
        differentiates by; the entries whose nearby values differ, with the smallest and the largest."""
        positions = {id(s): k for k, s in enumerate(self.ref.args)}
        out: dict[int, tuple[Any, Any]] = {}
        for moved in sorted({tuple(sorted(set(k))) for k in keys}):
            numbers = [i for i, k in enumerate(keys) if tuple(sorted(set(k))) == moved]
            values = []
            for j in moved:
                a = positions[id(self.ref.wrt[j])]
                for sign in (-1, 1):
                    args = list(self.args)
                    with mpmath.workdps(DIGITS):
                        args[a] = args[a] + sign * mpmath.mpf(10) ** (-DIGITS // 2) * max(1, abs(args[a]))
                    values.append(self._eval("sides", [exprs[i] for i in numbers], args)[0])
            for i, near in zip(numbers, zip(*values)):
                if any(v is None for v in near):
                    continue
                lo, hi = min(near), max(near)
                if hi - lo > mpmath.mpf(10) ** (-DIGITS // 3) * max(abs(lo), abs(hi), 1):
                    out[i] = (lo, hi)
        return out

    def expression(self, node: Node, shape: tuple[int, ...]) -> Exact:
        """The exact value of another case-language expression (a hand-derived formula) at this point."""
        env = {**self.ref.symbols, **self.ref.nodes}
        values = np.broadcast_to(evaluate(node, env), shape)
        exprs = [as_basic(e) for e in values.reshape(-1)]
        vals, bad = self._eval(f"expr:{id(node)}", exprs)
        return self._with_slack(exact_from_mp(vals, bad, shape), exprs)

    def node_gradient(self, node: str, weights: np.ndarray) -> Exact:
        exprs = self.ref.node_gradient(node, weights)
        vals, bad = self._eval(f"node:{node}", exprs)
        return self._with_slack(exact_from_mp(vals, bad, self.ref.case.shapes[node]), exprs)

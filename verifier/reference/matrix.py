"""The matrix reference: linear-algebra cases differentiated by sympy's matrix calculus (MatrixSymbol), without
expanding a tensor into one symbol per element.

``sum((X @ w - y)**2)`` becomes ``Trace((X*w - y).T*(X*w - y))`` and sympy gives ``2*X.T*(X*w - y)``: a closed form
whose cost does not depend on sympy, evaluated with numpy/LAPACK in float64. sympy's matrix calculus does not cover
everything and is not always right (it leaves derivatives of determinants unevaluated and, in sympy 1.14, returns 0
for d log(det A)/dA), so every closed form is first checked against element expansion on a shrunken copy of the case
(each distinct dimension mapped to a small size, seeded inputs); a closed form that disagrees is never used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import sympy as sp

from ..case.model import Case
from ..language.nodes import Bin, Call, Const, Name, Neg, Node, Num, unparse
from ..language.ops import OPS
from ..values import Exact
from .base import NotVectorisable, ReferenceKind
from .cache import case_key, memo
from .symbols import constant_of
from .symfuncs import S

Shape = tuple[int, ...]
SHRINK = (3, 2, 4, 5, 6, 7, 8, 9)  # the sizes distinct dimensions map to in the shrunken check


@dataclass
class _Val:
    """A value: a scalar sympy expression, or a matrix expression with the torch shape it stands for."""

    expr: Any
    shape: Shape

    @property
    def matrix(self) -> bool:
        return bool(self.shape)


class _Translator:
    def __init__(self, case: Case) -> None:
        self.symbols: dict[str, Any] = {}
        if case.complex_inputs:
            raise NotVectorisable("complex inputs are expanded element by element (in real and imaginary parts)")
        for i in case.inputs:
            if len(i.shape) > 2:
                raise NotVectorisable(f"the input {i.name} has {len(i.shape)} dimensions; matrix calculus takes up to 2")
            rows, cols = (i.shape + (1, 1))[:2] if i.shape else (0, 0)
            self.symbols[i.name] = (sp.MatrixSymbol(i.name, rows, cols) if i.shape else sp.Symbol(i.name, real=True))
        self.env = {i.name: _Val(self.symbols[i.name], i.shape) for i in case.inputs}
        for d in case.defines:
            self.env[d.name] = self.value(d.node)
        self.out = self.value(case.function)

    def value(self, node: Node) -> _Val:
        if isinstance(node, (Num, Const)):
            return _Val(constant_of(node), ())
        if isinstance(node, Name):
            return self.env[node.id]
        if isinstance(node, Neg):
            v = self.value(node.operand)
            return _Val(-v.expr, v.shape)
        if isinstance(node, Bin):
            return self.binary(node.op, self.value(node.left), self.value(node.right))
        if isinstance(node, Call):
            return self.call(node)
        raise NotVectorisable(f"{unparse(node)!r} is outside what the matrix reference translates")

    def binary(self, op: str, a: _Val, b: _Val) -> _Val:
        if op == "@":
            return self.matmul(a, b)
        if not a.matrix and not b.matrix:
            fn = {"+": lambda p, q: p + q, "-": lambda p, q: p - q, "*": lambda p, q: p * q, "/": lambda p, q: p / q,
                  "**": lambda p, q: p**q}[op]
            return _Val(fn(a.expr, b.expr), ())
        if op in "+-":
            if a.shape != b.shape and a.matrix and b.matrix:
                raise NotVectorisable("broadcasting between matrices of different shapes")
            shape = a.shape if a.matrix else b.shape
            ones = sp.OneMatrix(*self._dims(shape))
            left = a.expr if a.matrix else a.expr * ones
            right = b.expr if b.matrix else b.expr * ones
            return _Val(left + right if op == "+" else left - right, shape)
        if op == "*":
            if a.matrix and b.matrix:
                if a.shape != b.shape:
                    raise NotVectorisable("broadcasting between matrices of different shapes")
                return _Val(sp.HadamardProduct(a.expr, b.expr), a.shape)
            return _Val(a.expr * b.expr, a.shape or b.shape)
        if op == "/" and not b.matrix:
            return _Val(a.expr * (1 / b.expr), a.shape)
        if op == "**" and a.matrix and not b.matrix and b.expr.is_Integer and int(b.expr) >= 1:
            return _Val(sp.HadamardPower(a.expr, b.expr), a.shape)
        raise NotVectorisable(f"the operator {op} between these shapes")

    @staticmethod
    def _dims(shape: Shape) -> tuple[int, int]:
        return (shape + (1,))[:2] if len(shape) == 1 else shape  # type: ignore[return-value]  # matrices are 1-D or 2-D here: the translator refuses more

    def matmul(self, a: _Val, b: _Val) -> _Val:
        if not a.matrix or not b.matrix:
            raise NotVectorisable("matmul needs tensors of at least one dimension")
        if len(a.shape) == 1 and len(b.shape) == 1:
            return _Val(sp.Trace(a.expr.T * b.expr), ())
        if len(a.shape) == 1:  # (m,) @ (m, n) -> (n,), kept as a column
            return _Val(b.expr.T * a.expr, (b.shape[1],))
        if len(b.shape) == 1:
            return _Val(a.expr * b.expr, (a.shape[0],))
        return _Val(a.expr * b.expr, (a.shape[0], b.shape[1]))

    def call(self, node: Call) -> _Val:
        if node.params:
            raise NotVectorisable(f"{node.func}() with keyword parameters: the element-wise reference handles it")
        args = [self.value(a) for a in node.args]
        name = node.func
        if name in ("sum", "mean") and node.axis is None:
            a = args[0]
            if not a.matrix:
                return a
            e = a.expr
            if isinstance(e, sp.HadamardPower) and e.exp == 2:  # sum of squares: the Frobenius inner product
                total = sp.Trace(e.base.T * e.base)
            elif isinstance(e, sp.HadamardProduct) and len(e.args) == 2:
                total = sp.Trace(e.args[0].T * e.args[1])
            else:
                r, c = self._dims(a.shape)
                total = sp.Trace(sp.OneMatrix(1, r) * e * sp.OneMatrix(c, 1))
            return _Val(total / (math.prod(a.shape) if name == "mean" else 1), ())
        if name == "dot":
            return _Val(sp.Trace(args[0].expr.T * args[1].expr), ())
        if name == "trace":
            return _Val(sp.Trace(args[0].expr), ())
        if name == "det":
            return _Val(sp.Determinant(args[0].expr), ())
        if name == "inv":
            return _Val(sp.Inverse(args[0].expr), args[0].shape)
        if name == "transpose":
            a = args[0]
            return _Val(a.expr.T if len(a.shape) == 2 else a.expr, a.shape[::-1])
        op = OPS.get(name)
        if op is not None and op.kind == "elementwise" and all(not a.matrix for a in args):
            return _Val(op.sympy(S, *(a.expr for a in args)), ())
        raise NotVectorisable(f"{name}() of a matrix is outside what sympy's matrix calculus differentiates here")


@dataclass
class Derivation:
    """The closed forms of one case (cached): the value, and the gradient of <V, out> wrt each differentiable input."""

    value: Any
    out_shape: Shape
    weight: Any  # the MatrixSymbol V of <V, out> for non-scalar outputs (None for a scalar output)
    gradients: dict[str, Any] = field(default_factory=dict)
    symbols: dict[str, Any] = field(default_factory=dict)


def derive(case: Case) -> Derivation:
    def compute() -> Derivation:
        t = _Translator(case)
        out = t.out
        weight = None
        if out.matrix:
            r, c = t._dims(out.shape)
            weight = sp.MatrixSymbol("V", r, c)
            scalar = sp.Trace(weight.T * out.expr)
        else:
            scalar = out.expr
        d = Derivation(out.expr, out.shape, weight, symbols=dict(t.symbols))
        for i in case.differentiable:
            try:
                g = _gradient(scalar, t.symbols[i.name])
            except NotVectorisable:
                raise
            except Exception as exc:  # noqa: BLE001 - sympy's matrix calculus raising is a gap, not a crash
                raise NotVectorisable(f"sympy's matrix calculus cannot differentiate it: {type(exc).__name__}") from None
            if g.has(sp.Derivative) or type(g).__module__.startswith("sympy.tensor"):
                raise NotVectorisable("sympy's matrix calculus leaves the derivative unevaluated (e.g. of a det)")
            d.gradients[i.name] = g
        return d

    return memo("matrix", case_key(case), compute)


def _gradient(scalar: Any, wrt: Any) -> Any:
    """d scalar / d wrt. sympy differentiates one trace at a time reliably, but not sums and products of traces
    (it returns 0) nor determinants (it leaves them unevaluated). So: the scalar chain rule over the outermost traces
    and determinants (each replaced by a dummy), sympy's matrix calculus for each trace, Jacobi's formula
    d det(X) = det(X) tr(X^-1 dX) for each determinant."""
    if not isinstance(wrt, sp.MatrixSymbol):
        return sp.diff(scalar, wrt)
    atoms: list[Any] = []

    def collect(e: Any) -> None:
        if isinstance(e, (sp.Trace, sp.Determinant)):
            atoms.append(e)
            return
        for a in getattr(e, "args", ()):
            collect(a)

    collect(scalar)
    dummies = {a: sp.Dummy(f"t{k}") for k, a in enumerate(dict.fromkeys(atoms))}
    back = {d: a for a, d in dummies.items()}
    outer = scalar.xreplace(dummies)
    if outer.has(wrt):
        raise NotVectorisable(f"{wrt} appears outside a trace or determinant")
    total: Any = sp.ZeroMatrix(*wrt.shape)
    for atom, dummy in dummies.items():
        coef = sp.diff(outer, dummy).xreplace(back)
        if coef == 0 or not atom.has(wrt):
            continue
        if isinstance(atom, sp.Trace):
            d_atom = atom.diff(wrt)
        else:
            x = atom.arg
            frozen = sp.MatrixSymbol("Xinv__frozen", *x.shape)  # X^-1 held constant while differentiating tr(C X)
            d_atom = atom * sp.Trace(frozen * x).diff(wrt).xreplace({frozen: sp.Inverse(x)})
        total = total + coef * d_atom
    return total


# --- numbers ---------------------------------------------------------------------------------------------------------


def evaluate(expr: Any, env: Mapping[Any, Any]) -> Any:
    """A sympy matrix or scalar expression at numpy values (recursion depth is that of the closed form: small)."""
    if expr in env:
        return env[expr]
    if isinstance(expr, sp.MatrixExpr):
        return _matrix(expr, env)
    if expr.is_Number or expr in (sp.pi, sp.E):
        return float(expr)
    args = [evaluate(a, env) for a in expr.args]
    if isinstance(expr, sp.Trace):
        return float(np.trace(args[0]))
    if isinstance(expr, sp.Determinant):
        return float(np.linalg.det(args[0]))
    if isinstance(expr, sp.Add):
        return sum(args[1:], args[0])
    if isinstance(expr, sp.Mul):
        out = args[0]
        for a in args[1:]:
            out = out * a
        return out
    if isinstance(expr, sp.Pow):
        return args[0] ** args[1]
    from .numeric.arrays import FUNCTIONS

    fn = FUNCTIONS.get(type(expr))
    if fn is None:
        raise NotVectorisable(f"no numeric evaluation for {type(expr).__name__} in a closed form")
    return fn(*args)


def _matrix(expr: Any, env: Mapping[Any, Any]) -> np.ndarray:
    r, c = (int(d) for d in expr.shape)
    if isinstance(expr, sp.OneMatrix):
        return np.ones((r, c))
    if isinstance(expr, sp.Identity):
        return np.eye(r)
    if isinstance(expr, sp.ZeroMatrix):
        return np.zeros((r, c))
    if isinstance(expr, sp.Transpose):
        return evaluate(expr.arg, env).T
    if isinstance(expr, sp.Inverse):
        return np.linalg.inv(evaluate(expr.arg, env))
    if isinstance(expr, sp.MatPow):
        base, k = evaluate(expr.base, env), int(expr.exp)
        return np.linalg.matrix_power(np.linalg.inv(base) if k < 0 else base, abs(k))
    if isinstance(expr, sp.MatMul):
        out: Any = 1.0
        for a in expr.args:
            v = evaluate(a, env)
            out = out @ v if isinstance(out, np.ndarray) and isinstance(v, np.ndarray) else out * v
        return np.broadcast_to(out, (r, c)).copy()
    if isinstance(expr, sp.MatAdd):
        return sum((np.broadcast_to(evaluate(a, env), (r, c)) for a in expr.args), np.zeros((r, c)))
    if isinstance(expr, sp.HadamardProduct):
        out = np.ones((r, c))
        for a in expr.args:
            out = out * evaluate(a, env)
        return out
    if isinstance(expr, sp.HadamardPower):
        return evaluate(expr.base, env) ** evaluate(expr.exp, env)
    raise NotVectorisable(f"no numeric evaluation for {type(expr).__name__} in a closed form")


def _env(d: Derivation, point: Mapping[str, np.ndarray]) -> dict[Any, Any]:
    env: dict[Any, Any] = {}
    for name, s in d.symbols.items():
        v = np.asarray(point[name], dtype=np.float64)
        env[s] = float(v) if v.ndim == 0 else (v.reshape(-1, 1) if v.ndim == 1 else v)
    return env


def _torch_shaped(value: Any, shape: Shape) -> np.ndarray:
    return np.asarray(value, dtype=np.float64).reshape(shape)


def _validate(case: Case, d: Derivation) -> None:
    """The closed forms against element expansion on a shrunken copy of the case (raises NotVectorisable)."""
    from ..case.validate import case_from_expression
    from .expanded.point import PointReference
    from .expanded.reference import Reference

    sizes = sorted({n for i in case.inputs for n in i.shape}, reverse=True)
    if len(sizes) > len(SHRINK):
        raise NotVectorisable("too many distinct dimensions to check the closed form")
    small = dict(zip(sizes, SHRINK))
    rng = np.random.default_rng(7)
    values: dict[str, Any] = {}
    for i in case.inputs:
        shape = tuple(small[n] for n in i.shape)
        v = rng.uniform(0.5, 1.5, shape) if shape else rng.uniform(0.5, 1.5)
        if len(shape) == 2 and shape[0] == shape[1]:
            v = v + shape[0] * np.eye(shape[0])  # well conditioned, positive determinant
        values[i.name] = {"value": np.asarray(v).tolist(), "requires_grad": i.requires_grad}
    shrunk = case_from_expression(unparse(case.function), values, name="shrunk",
                                  define={x.name: unparse(x.node) for x in case.defines} or None)
    sd = derive(shrunk)
    point = {i.name: i.value for i in shrunk.inputs}
    exact = PointReference(Reference(shrunk), point)
    weights = rng.standard_normal(shrunk.output_shape) if shrunk.output_shape else np.ones(())
    env = _env(sd, point)
    if sd.weight is not None:
        env[sd.weight] = weights.reshape(-1, 1) if weights.ndim == 1 else weights
    for name, g in sd.gradients.items():
        got = _torch_shaped(evaluate(g, env), shrunk.shapes[name])
        want = exact.vjp(weights, name).lo
        if not np.allclose(got, want, rtol=1e-9, atol=1e-12):
            raise NotVectorisable(f"sympy's matrix calculus gave d/d{name} = {g}, which disagrees with element "
                                  "expansion on a shrunken copy of the case: not used")


def _checked(case: Case, derivation: Derivation) -> bool:
    """_validate, as a cacheable fact (it raises where the closed form disagrees with element expansion)."""
    _validate(case, derivation)
    return True


class MatrixReference:
    """The matrix reference (reference.base.ExactReference): sympy's matrix calculus, value, gradients, v^T J, J u of
    a scalar."""

    kind = ReferenceKind.MATRIX

    def __init__(self, case: Case) -> None:
        self.case = case
        self.derivation = derive(case)
        memo("matrix-checked", case_key(case), lambda: _checked(case, self.derivation))

    def at(self, point: Mapping[str, np.ndarray]) -> MatrixPoint:
        return MatrixPoint(self, point)

    def describe(self) -> str:
        forms = "; ".join(f"d/d{n} = {g}" for n, g in self.derivation.gradients.items())
        return (f"matrix calculus: sympy closed forms ({forms[:300]}), checked against element expansion on a "
                "shrunken copy of the case, evaluated in float64 (numpy/LAPACK)")

    def value_formula(self, index: int) -> str:
        return str(self.derivation.value)

    def column_formula(self, wrt: str, k: int) -> str:
        return f"d/d{wrt} = {self.derivation.gradients.get(wrt)}"


class MatrixPoint:
    """The matrix reference at one point (reference.base.PointQuantities)."""

    per_element_bounds = False  # closed forms in float64: the checks apply the norm-wise rounding bound

    def __init__(self, ref: MatrixReference, point: Mapping[str, np.ndarray]) -> None:
        self.ref = ref
        self.point = point
        self.rounding: str | None = None
        self.d = ref.derivation
        self.env = _env(self.d, point)

    def value(self) -> Exact:
        v = _torch_shaped(evaluate(self.d.value, self.env), self.d.out_shape)
        return Exact(v, v)

    def vjp(self, weights: np.ndarray, name: str) -> Exact:
        env = dict(self.env)
        if self.d.weight is not None:
            w = np.asarray(weights, dtype=np.float64)
            env[self.d.weight] = w.reshape(-1, 1) if w.ndim == 1 else w
            scale = 1.0
        else:
            scale = float(np.asarray(weights))
        g = _torch_shaped(evaluate(self.d.gradients[name], env), self.ref.case.shapes[name]) * scale
        return Exact(g, g)

    def jacobian(self, name: str) -> Exact:
        shape = self.d.out_shape
        if not shape:
            return self.vjp(np.ones(()), name)
        rows = []
        for i in range(math.prod(shape)):
            unit = np.zeros(shape)
            unit.reshape(-1)[i] = 1.0
            rows.append(self.vjp(unit, name).lo.reshape(-1))
        j = np.stack(rows).reshape(shape + self.ref.case.shapes[name])
        return Exact(j, j)

    def jvp(self, tangents: Mapping[str, np.ndarray]) -> Exact:
        if self.d.out_shape:
            raise NotVectorisable("J u of a non-scalar matrix expression needs element expansion")
        total = sum(float(np.sum(self.vjp(np.ones(()), n).lo * np.asarray(tangents[n])))
                    for n in tangents if n in self.d.gradients)
        v = np.array(total)
        return Exact(v, v)

    def derivative(self, order: int, weights: np.ndarray | None = None) -> Exact:
        if order != 1 or self.d.out_shape or weights is not None:
            raise NotVectorisable("higher orders of matrix expressions need element expansion")
        parts = [self.vjp(np.ones(()), i.name).lo.reshape(-1) for i in self.ref.case.differentiable]
        g = np.concatenate(parts)
        return Exact(g, g)

    def expression(self, node: Node, shape: Shape) -> Exact:
        raise NotVectorisable("expect formulas of a matrix case need element expansion")

    def node_gradient(self, node: str, weights: np.ndarray) -> Exact:
        raise NotVectorisable("gradients of intermediates of a matrix case need element expansion")

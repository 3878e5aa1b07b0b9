"""The op table: one entry per function of the case language, with its sympy meaning and its torch meaning.

This module imports neither sympy nor torch: each meaning is a function that receives the module (``S`` for the
symbolic namespace, ``T`` for torch) as its first argument, so the symbolic stage never loads torch and the autodiff
stage never loads sympy. Users add entries with :func:`register_op`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Shape = tuple[int, ...]

# kinds
ELEMENTWISE = "elementwise"  # sympy meaning acts on one scalar expression; broadcast like torch
REDUCTION = "reduction"  # sympy meaning acts on an object array and an axis
TENSOR = "tensor"  # sympy meaning acts on object arrays; shape rule given explicitly


@dataclass(frozen=True)
class Op:
    """One function of the case language.

    Args:
        name: the name used in case expressions.
        kind: ELEMENTWISE, REDUCTION or TENSOR.
        arity: (min, max) number of positional arguments.
        sympy: ``(S, *args, **kw) -> expr``; S is the symbolic namespace (sympy plus gradverify's functions).
        torch: ``(T, *args, **kw) -> tensor``; T is the torch module.
        shape: for TENSOR ops, ``(*shapes, **kw) -> shape``; raise ValueError with a readable reason.
        grad_fn: the class name torch gives the node's ``grad_fn`` when this op is the last one applied.
        smooth: False where the op has kinks or jumps (the reference then computes one-sided derivatives).
        doc: one line for the documentation and error messages.
        keywords: the keyword arguments accepted (``axis`` for reductions).
    """

    name: str
    kind: str
    arity: tuple[int, int]
    sympy: Callable[..., Any]
    torch: Callable[..., Any]
    shape: Callable[..., Shape] | None = None
    grad_fn: str | None = None
    smooth: bool = True
    doc: str = ""
    keywords: tuple[str, ...] = ()


def broadcast_shapes(*shapes: Shape) -> Shape:
    """Torch/numpy broadcasting of shapes; ValueError when they do not broadcast."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ValueError("shapes " + " and ".join(str(list(s)) for s in shapes) + " do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def normalize_axis(axis: Any, ndim: int) -> tuple[int, ...] | None:
    """Turn an ``axis`` argument into a sorted tuple of non-negative axes (None: all axes)."""
    if axis is None:
        return None
    axes = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in axes:
        if not isinstance(a, int) or not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimension(s)")
        out.append(a % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"axis {axis} repeats an axis")
    return tuple(sorted(out))


def reduced_shape(shape: Shape, axis: Any = None) -> Shape:
    axes = normalize_axis(axis, len(shape))
    if axes is None:
        return ()
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _same_shape(shape: Shape, axis: Any = -1) -> Shape:
    normalize_axis(axis, len(shape))
    return shape


def _matmul_shape(a: Shape, b: Shape) -> Shape:
    if not a or not b:
        raise ValueError("matmul needs tensors of at least one dimension, got a scalar")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError(f"matmul of shapes {list(a)} and {list(b)}: inner dimensions {a2[-1]} and {b2[-2]} differ")
    batch = broadcast_shapes(a2[:-2], b2[:-2])
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def _transpose_shape(a: Shape) -> Shape:
    return a if len(a) < 2 else a[:-2] + (a[-1], a[-2])


def _dot_shape(a: Shape, b: Shape) -> Shape:
    if len(a) != 1 or len(b) != 1 or a != b:
        raise ValueError(f"dot needs two 1-D tensors of the same length, got shapes {list(a)} and {list(b)}")
    return ()


def _square(name: str) -> Callable[[Shape], Shape]:
    def rule(a: Shape) -> Shape:
        if len(a) != 2 or a[0] != a[1]:
            raise ValueError(f"{name} needs a square 2-D matrix, got shape {list(a)}")
        return () if name in ("det", "trace") else a

    return rule


# --- symbolic meanings of the tensor ops (object arrays of sympy expressions) -------------------------------------


def _np() -> Any:
    import numpy

    return numpy


def _sym_reduce(fn: Callable[[Any, list[Any]], Any]) -> Callable[..., Any]:
    """Lift a reduction over a list of scalar expressions to an object array reduced along ``axis``."""

    def reduce(S: Any, a: Any, axis: Any = None) -> Any:
        np = _np()
        axes = normalize_axis(axis, a.ndim)
        if axes is None:
            return np.array(fn(S, list(a.reshape(-1))), dtype=object)
        keep = [i for i in range(a.ndim) if i not in axes]
        moved = np.transpose(a, keep + list(axes))
        lead = moved.shape[: len(keep)]
        flat = moved.reshape(lead + (-1,))
        out = np.empty(lead, dtype=object)
        for idx in np.ndindex(*lead):
            out[idx] = fn(S, list(flat[idx]))
        return out

    return reduce


def _sym_softmax(log: bool) -> Callable[..., Any]:
    def softmax(S: Any, a: Any, axis: int = -1) -> Any:
        np = _np()
        (ax,) = normalize_axis(axis, a.ndim) or (0,)
        if a.ndim == 0:
            return np.array(S.Integer(0) if log else S.Integer(1), dtype=object)
        ex = np.frompyfunc(S.exp, 1, 1)(a)
        total = np.sum(ex, axis=ax, keepdims=True)
        if log:
            return a - np.frompyfunc(S.log, 1, 1)(total)
        return ex / total

    return softmax


def _sym_matrix(fn: str) -> Callable[..., Any]:
    def matrix_op(S: Any, a: Any) -> Any:
        np = _np()
        m = S.Matrix(a.tolist())
        if fn == "det":
            return np.array(m.det(method="berkowitz"), dtype=object)
        inv = m.inv(method="LU")
        return np.array(inv.tolist(), dtype=object).reshape(a.shape)

    return matrix_op


def _torch_reduce(name: str) -> Callable[..., Any]:
    def reduce(T: Any, a: Any, axis: Any = None) -> Any:
        if axis is None:
            if name == "logsumexp":
                return T.logsumexp(a.reshape(-1), 0)
            if name == "norm":
                return T.linalg.vector_norm(a)
            if name == "amax":
                return T.amax(a)
            if name == "amin":
                return T.amin(a)
            return getattr(T, name)(a)
        if name == "prod":
            out = a
            for ax in sorted((axis if isinstance(axis, tuple) else (axis,)), key=lambda d: d % a.ndim, reverse=True):
                out = T.prod(out, dim=ax)
            return out
        if name == "norm":
            return T.linalg.vector_norm(a, dim=axis)
        return getattr(T, name)(a, dim=axis)

    return reduce


def _max_min(kind: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``max(x)`` is a reduction, ``max(a, b)`` the elementwise maximum."""

    def sym(S: Any, a: Any, b: Any = None, axis: Any = None) -> Any:
        np = _np()
        f = S.Max if kind == "max" else S.Min
        if b is None:
            return _sym_reduce(lambda S, xs: f(*xs))(S, a, axis)
        return np.frompyfunc(f, 2, 1)(a, b)

    def tch(T: Any, a: Any, b: Any = None, axis: Any = None) -> Any:
        if b is None:
            return _torch_reduce("amax" if kind == "max" else "amin")(T, a, axis)
        return (T.maximum if kind == "max" else T.minimum)(a, b)

    return sym, tch


def _max_min_shape(a: Shape, b: Shape | None = None, axis: Any = None) -> Shape:
    if b is None:
        return reduced_shape(a, axis)
    if axis is not None:
        raise ValueError("axis applies to the one-argument (reduction) form only")
    return broadcast_shapes(a, b)


OPS: dict[str, Op] = {}


def register_op(op: Op, *, replace: bool = False) -> Op:
    """Add a function to the case language (sympy meaning, torch meaning, shape rule)."""
    if not op.name.isidentifier() or op.name.startswith("_"):
        raise ValueError(f"op name {op.name!r} must be an identifier not starting with '_'")
    if op.name in OPS and not replace:
        raise ValueError(f"op {op.name!r} is already registered; pass replace=True to override it")
    OPS[op.name] = op
    return op


def _unary(name: str, sym: Callable[..., Any], tch: Callable[..., Any], grad_fn: str | None = None, **kw: Any) -> None:
    register_op(Op(name, ELEMENTWISE, (1, 1), sym, tch, grad_fn=grad_fn, **kw))


def _reduction(name: str, sym_fn: Callable[[Any, list[Any]], Any], torch_name: str, grad_fn: str, doc: str) -> None:
    register_op(
        Op(name, REDUCTION, (1, 1), _sym_reduce(sym_fn), _torch_reduce(torch_name),
           shape=lambda a, axis=None: reduced_shape(a, axis), grad_fn=grad_fn, doc=doc, keywords=("axis",))
    )


_T = "Backward0"
_unary("sin", lambda S, x: S.sin(x), lambda T, x: T.sin(x), "Sin" + _T)
_unary("cos", lambda S, x: S.cos(x), lambda T, x: T.cos(x), "Cos" + _T)
_unary("tan", lambda S, x: S.tan(x), lambda T, x: T.tan(x), "Tan" + _T)
_unary("asin", lambda S, x: S.asin(x), lambda T, x: T.asin(x), "Asin" + _T)
_unary("acos", lambda S, x: S.acos(x), lambda T, x: T.acos(x), "Acos" + _T)
_unary("atan", lambda S, x: S.atan(x), lambda T, x: T.atan(x), "Atan" + _T)
_unary("sinh", lambda S, x: S.sinh(x), lambda T, x: T.sinh(x), "Sinh" + _T)
_unary("cosh", lambda S, x: S.cosh(x), lambda T, x: T.cosh(x), "Cosh" + _T)
_unary("tanh", lambda S, x: S.tanh(x), lambda T, x: T.tanh(x), "Tanh" + _T)
_unary("asinh", lambda S, x: S.asinh(x), lambda T, x: T.asinh(x), "Asinh" + _T)
_unary("acosh", lambda S, x: S.acosh(x), lambda T, x: T.acosh(x), "Acosh" + _T)
_unary("atanh", lambda S, x: S.atanh(x), lambda T, x: T.atanh(x), "Atanh" + _T)
_unary("exp", lambda S, x: S.exp(x), lambda T, x: T.exp(x), "Exp" + _T)
_unary("exp2", lambda S, x: S.Integer(2) ** x, lambda T, x: T.exp2(x), "Exp2" + _T)
_unary("expm1", lambda S, x: S.exp(x) - 1, lambda T, x: T.expm1(x), "Expm1" + _T)
_unary("log", lambda S, x: S.log(x), lambda T, x: T.log(x), "Log" + _T)
_unary("log1p", lambda S, x: S.log(1 + x), lambda T, x: T.log1p(x), "Log1P" + _T)
_unary("log2", lambda S, x: S.log(x) / S.log(2), lambda T, x: T.log2(x), "Log2" + _T)
_unary("log10", lambda S, x: S.log(x) / S.log(10), lambda T, x: T.log10(x), "Log10" + _T)
_unary("sqrt", lambda S, x: S.sqrt(x), lambda T, x: T.sqrt(x), "Sqrt" + _T)
_unary("rsqrt", lambda S, x: 1 / S.sqrt(x), lambda T, x: T.rsqrt(x), "Rsqrt" + _T)
_unary("abs", lambda S, x: S.Abs(x), lambda T, x: T.abs(x), "Abs" + _T, smooth=False)
_unary("sign", lambda S, x: S.sign(x), lambda T, x: T.sign(x), "Sign" + _T, smooth=False)
_unary("erf", lambda S, x: S.erf(x), lambda T, x: T.erf(x), "Erf" + _T)
_unary("erfc", lambda S, x: S.erfc(x), lambda T, x: T.erfc(x), "Erfc" + _T)
_unary("erfinv", lambda S, x: S.erfinv(x), lambda T, x: T.erfinv(x), "Erfinv" + _T)
_unary("lgamma", lambda S, x: S.LogAbsGamma(x), lambda T, x: T.lgamma(x), "Lgamma" + _T)
_unary("digamma", lambda S, x: S.polygamma(0, x), lambda T, x: T.digamma(x), "Digamma" + _T)
_unary("sigmoid", lambda S, x: 1 / (1 + S.exp(-x)), lambda T, x: T.sigmoid(x), "Sigmoid" + _T)
_unary("logit", lambda S, x: S.log(x / (1 - x)), lambda T, x: T.logit(x), "Logit" + _T)
_unary("softplus", lambda S, x: S.log(1 + S.exp(x)), lambda T, x: T.nn.functional.softplus(x), "Softplus" + _T)
_unary("relu", lambda S, x: S.Max(0, x), lambda T, x: T.relu(x), "Relu" + _T, smooth=False)
_unary("silu", lambda S, x: x / (1 + S.exp(-x)), lambda T, x: T.nn.functional.silu(x), "Silu" + _T)
_unary("gelu", lambda S, x: x * (1 + S.erf(x / S.sqrt(2))) / 2, lambda T, x: T.nn.functional.gelu(x), "Gelu" + _T)
_unary("mish", lambda S, x: x * S.tanh(S.log(1 + S.exp(x))), lambda T, x: T.nn.functional.mish(x), "Mish" + _T)
_unary("detach", lambda S, x: S.StopGrad(x), lambda T, x: x.detach(), None,
       doc="a stop-gradient: the argument is a constant for the derivative")

register_op(Op("atan2", ELEMENTWISE, (2, 2), lambda S, y, x: S.atan2(y, x), lambda T, y, x: T.atan2(y, x),
               grad_fn="Atan2" + _T))
register_op(Op("where", ELEMENTWISE, (3, 3), lambda S, c, a, b: S.Piecewise((a, c), (b, True)),
               lambda T, c, a, b: T.where(c, a, b), grad_fn="Where" + _T, smooth=False,
               doc="where(condition, a, b): a where the comparison holds, else b"))

_max_sym, _max_torch = _max_min("max")
_min_sym, _min_torch = _max_min("min")
register_op(Op("max", TENSOR, (1, 2), _max_sym, _max_torch, shape=_max_min_shape, grad_fn=None, smooth=False,
               doc="max(x[, axis=]) reduces; max(a, b) is the elementwise maximum", keywords=("axis",)))
register_op(Op("min", TENSOR, (1, 2), _min_sym, _min_torch, shape=_max_min_shape, grad_fn=None, smooth=False,
               doc="min(x[, axis=]) reduces; min(a, b) is the elementwise minimum", keywords=("axis",)))

_reduction("sum", lambda S, xs: S.Add(*xs), "sum", "Sum" + _T, "sum over all elements or along axis")
_reduction("mean", lambda S, xs: S.Add(*xs) / len(xs), "mean", "Mean" + _T, "mean over all elements or along axis")
_reduction("prod", lambda S, xs: S.Mul(*xs), "prod", "Prod" + _T, "product over all elements or along axis")
_reduction("logsumexp", lambda S, xs: S.log(S.Add(*(S.exp(x) for x in xs))), "logsumexp", "Logsumexp" + _T,
           "log of the sum of exponentials")
_reduction("norm", lambda S, xs: S.sqrt(S.Add(*(x**2 for x in xs))), "norm", "LinalgVectorNorm" + _T,
           "Euclidean norm")

register_op(Op("matmul", TENSOR, (2, 2), lambda S, a, b: _np().matmul(a, b), lambda T, a, b: T.matmul(a, b),
               shape=_matmul_shape, doc="matrix product (also the @ operator)"))
register_op(Op("transpose", TENSOR, (1, 1),
               lambda S, a: a if a.ndim < 2 else _np().swapaxes(a, -1, -2),
               lambda T, a: a if a.dim() < 2 else a.transpose(-2, -1),
               shape=_transpose_shape, grad_fn="Transpose" + _T, doc="swap the last two axes (also .T)"))
register_op(Op("dot", TENSOR, (2, 2), lambda S, a, b: _np().array(_np().dot(a, b), dtype=object),
               lambda T, a, b: T.dot(a, b), shape=_dot_shape, grad_fn="Dot" + _T, doc="inner product of 1-D tensors"))
register_op(Op("trace", TENSOR, (1, 1), lambda S, a: _np().array(_np().trace(a), dtype=object),
               lambda T, a: T.trace(a), shape=_square("trace"), grad_fn="Trace" + _T, doc="sum of the diagonal"))
register_op(Op("det", TENSOR, (1, 1), _sym_matrix("det"), lambda T, a: T.linalg.det(a),
               shape=_square("det"), grad_fn="LinalgDet" + _T, doc="determinant of a square matrix"))
register_op(Op("inv", TENSOR, (1, 1), _sym_matrix("inv"), lambda T, a: T.linalg.inv(a),
               shape=_square("inv"), doc="inverse of a square matrix"))
register_op(Op("softmax", TENSOR, (1, 1), _sym_softmax(False), lambda T, a, axis=-1: T.softmax(a, dim=axis),
               shape=_same_shape, grad_fn="Softmax" + _T, doc="softmax along axis (default -1)", keywords=("axis",)))
register_op(Op("log_softmax", TENSOR, (1, 1), _sym_softmax(True), lambda T, a, axis=-1: T.log_softmax(a, dim=axis),
               shape=_same_shape, grad_fn="LogSoftmax" + _T, doc="log of softmax along axis (default -1)",
               keywords=("axis",)))

# Constants a case may use by name.
CONSTANTS = {"pi": "pi", "E": "E"}


def known_names() -> str:
    """The function names, for error messages."""
    return ", ".join(sorted(OPS))

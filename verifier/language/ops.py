"""The op table: one entry per function of the case language, with its sympy meaning and its torch meaning.

This module imports neither sympy nor torch: each meaning is a function that receives the module (``S`` for the
symbolic namespace, ``T`` for torch) as its first argument, so the symbolic stage never loads torch and the autodiff
stage never loads sympy. Users add entries with :func:`register_op`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .meanings import (
    clamp_meaning,
    elements_shape,
    given,
    huber_meaning,
    np_module,
    softplus_meaning,
    sym_cosine,
    sym_cross,
    sym_cross_entropy,
    sym_cumulative,
    sym_elements,
    sym_layer_norm,
    sym_logdet,
    sym_matrix,
    sym_normalize,
    sym_reduce,
    sym_softmax,
    torch_elements,
    torch_reduce,
    variance,
)
from .shapes import Shape, broadcast_shapes, normalize_axis, reduced_shape

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
        algorithm: torch computes the op by a matrix algorithm (LU), not the closed form the reference expands (its
            rounding is then bounded norm-wise).
        internal: what a traced forward is written in (index maps, logical connectives), not a function a case's
            text may call.
        choices: for each string-valued keyword, the values torch documents (the only strings the parser takes).
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
    algorithm: bool = False
    internal: bool = False
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()  # a string keyword's allowed values (torch's enum)
    integer_args: tuple[int, ...] = ()  # positions of arguments that are integer literals (a degree, an order)


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


def _max_min(kind: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``max(x)`` is a reduction, ``max(a, b)`` the elementwise maximum."""

    def sym(S: Any, a: Any, b: Any = None, axis: Any = None) -> Any:
        np = np_module()
        f = S.Max if kind == "max" else S.Min
        if b is None:
            return sym_reduce(lambda S, xs: f(*xs))(S, a, axis)
        return np.frompyfunc(f, 2, 1)(a, b)

    def tch(T: Any, a: Any, b: Any = None, axis: Any = None) -> Any:
        if b is None:
            return torch_reduce("amax" if kind == "max" else "amin")(T, a, axis)
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


def unary_op(name: str, sym: Callable[..., Any], tch: Callable[..., Any], grad_fn: str | None = None, **kw: Any) -> None:
    register_op(Op(name, ELEMENTWISE, (1, 1), sym, tch, grad_fn=grad_fn, **kw))


def _reduction(name: str, sym_fn: Callable[[Any, list[Any]], Any], torch_name: str, grad_fn: str, doc: str,
               algorithm: bool = False) -> None:
    register_op(
        Op(name, REDUCTION, (1, 1), sym_reduce(sym_fn), torch_reduce(torch_name),
           shape=lambda a, axis=None: reduced_shape(a, axis), grad_fn=grad_fn, doc=doc, keywords=("axis", "keepdim"),
           algorithm=algorithm)
    )


_T = "Backward0"
S_HALF = Fraction(1, 2)
S_01 = Fraction(1, 100)  # leaky_relu's default slope, 0.01 exactly (as torch's double 0.01 is meant)


unary_op("sin", lambda S, x: S.sin(x), lambda T, x: T.sin(x), "Sin" + _T)
unary_op("cos", lambda S, x: S.cos(x), lambda T, x: T.cos(x), "Cos" + _T)
unary_op("tan", lambda S, x: S.tan(x), lambda T, x: T.tan(x), "Tan" + _T)
unary_op("asin", lambda S, x: S.asin(x), lambda T, x: T.asin(x), "Asin" + _T)
unary_op("acos", lambda S, x: S.acos(x), lambda T, x: T.acos(x), "Acos" + _T)
unary_op("atan", lambda S, x: S.atan(x), lambda T, x: T.atan(x), "Atan" + _T)
unary_op("sinh", lambda S, x: S.sinh(x), lambda T, x: T.sinh(x), "Sinh" + _T)
unary_op("cosh", lambda S, x: S.cosh(x), lambda T, x: T.cosh(x), "Cosh" + _T)
unary_op("tanh", lambda S, x: S.tanh(x), lambda T, x: T.tanh(x), "Tanh" + _T)
unary_op("asinh", lambda S, x: S.asinh(x), lambda T, x: T.asinh(x), "Asinh" + _T)
unary_op("acosh", lambda S, x: S.acosh(x), lambda T, x: T.acosh(x), "Acosh" + _T)
unary_op("atanh", lambda S, x: S.atanh(x), lambda T, x: T.atanh(x), "Atanh" + _T)
unary_op("exp", lambda S, x: S.exp(x), lambda T, x: T.exp(x), "Exp" + _T)
unary_op("exp2", lambda S, x: S.Integer(2) ** x, lambda T, x: T.exp2(x), "Exp2" + _T)
unary_op("expm1", lambda S, x: S.exp(x) - 1, lambda T, x: T.expm1(x), "Expm1" + _T)
unary_op("log", lambda S, x: S.log(x), lambda T, x: T.log(x), "Log" + _T)
unary_op("log1p", lambda S, x: S.log(1 + x), lambda T, x: T.log1p(x), "Log1P" + _T)
unary_op("log2", lambda S, x: S.log(x) / S.log(2), lambda T, x: T.log2(x), "Log2" + _T)
unary_op("log10", lambda S, x: S.log(x) / S.log(10), lambda T, x: T.log10(x), "Log10" + _T)
unary_op("sqrt", lambda S, x: S.sqrt(x), lambda T, x: T.sqrt(x), "Sqrt" + _T)
unary_op("rsqrt", lambda S, x: 1 / S.sqrt(x), lambda T, x: T.rsqrt(x), "Rsqrt" + _T)
unary_op("abs", lambda S, x: S.Abs(x), lambda T, x: T.abs(x), "Abs" + _T, smooth=False)
# complex parts (the identity, and 0, of a real value); conj is torch's lazy conjugate view, resolved where needed
unary_op("real", lambda S, x: S.re(x), lambda T, x: T.real(x), doc="the real part of a complex value")
unary_op("imag", lambda S, x: S.im(x), lambda T, x: T.imag(x) if x.is_complex() else T.zeros_like(x),
       doc="the imaginary part of a complex value")
unary_op("conj", lambda S, x: S.conjugate(x), lambda T, x: T.conj(x), doc="the complex conjugate")
unary_op("sign", lambda S, x: S.sign(x), lambda T, x: T.sign(x), "Sign" + _T, smooth=False)
unary_op("erf", lambda S, x: S.erf(x), lambda T, x: T.erf(x), "Erf" + _T)
unary_op("erfc", lambda S, x: S.erfc(x), lambda T, x: T.erfc(x), "Erfc" + _T)
unary_op("erfinv", lambda S, x: S.erfinv(x), lambda T, x: T.erfinv(x), "Erfinv" + _T)
unary_op("lgamma", lambda S, x: S.LogAbsGamma(x), lambda T, x: T.lgamma(x), "Lgamma" + _T)
unary_op("digamma", lambda S, x: S.polygamma(0, x), lambda T, x: T.digamma(x), "Digamma" + _T)
unary_op("sigmoid", lambda S, x: 1 / (1 + S.exp(-x)), lambda T, x: T.sigmoid(x), "Sigmoid" + _T)
unary_op("logit", lambda S, x: S.log(x / (1 - x)), lambda T, x: T.logit(x), "Logit" + _T)
unary_op("softplus", lambda S, x, beta=None, threshold=None: softplus_meaning(S, x, beta, threshold),
       lambda T, x, beta=1, threshold=20: T.nn.functional.softplus(x, beta=float(beta), threshold=float(threshold)),
       "Softplus" + _T, keywords=("beta", "threshold"),
       doc="log(1 + exp(beta x)) / beta; with threshold=, x where beta x > threshold (torch's switch; by default "
           "the formula alone, so torch's switch at 20 is a finding)")
unary_op("relu", lambda S, x: S.Max(0, x), lambda T, x: T.relu(x), "Relu" + _T, smooth=False)
unary_op("silu", lambda S, x: x / (1 + S.exp(-x)), lambda T, x: T.nn.functional.silu(x), "Silu" + _T)
unary_op("gelu", lambda S, x, approximate="none": x * (1 + S.erf(x / S.sqrt(2))) / 2 if approximate == "none" else
       x * (1 + S.tanh(S.sqrt(2 / S.pi) * (x + S.Rational(44715, 1000000) * x**3))) / 2,
       lambda T, x, approximate="none": T.nn.functional.gelu(x, approximate=approximate), "Gelu" + _T,
       keywords=("approximate",), choices=(("approximate", ("none", "tanh")),))
unary_op("mish", lambda S, x: x * S.tanh(S.log(1 + S.exp(x))), lambda T, x: T.nn.functional.mish(x), "Mish" + _T)
unary_op("detach", lambda S, x: S.StopGrad(x), lambda T, x: x.detach(), None,
       doc="a stop-gradient: the argument is a constant for the derivative")

register_op(Op("atan2", ELEMENTWISE, (2, 2), lambda S, y, x: S.atan2(y, x), lambda T, y, x: T.atan2(y, x),
               grad_fn="Atan2" + _T))
register_op(Op("where", ELEMENTWISE, (3, 3), lambda S, c, a, b: S.Piecewise((a, c), (b, True)),
               lambda T, c, a, b: T.where(c, a, b), grad_fn="Where" + _T, smooth=False,
               doc="where(condition, a, b): a where the comparison holds, else b"))

_max_sym, _max_torch = _max_min("max")
_min_sym, _min_torch = _max_min("min")
register_op(Op("max", TENSOR, (1, 2), _max_sym, _max_torch, shape=_max_min_shape, grad_fn=None, smooth=False,
               doc="max(x[, axis=]) reduces; max(a, b) is the elementwise maximum", keywords=("axis", "keepdim")))
register_op(Op("min", TENSOR, (1, 2), _min_sym, _min_torch, shape=_max_min_shape, grad_fn=None, smooth=False,
               doc="min(x[, axis=]) reduces; min(a, b) is the elementwise minimum", keywords=("axis", "keepdim")))

_reduction("sum", lambda S, xs: S.Add(*xs), "sum", "Sum" + _T, "sum over all elements or along axis")
_reduction("mean", lambda S, xs: S.Add(*xs) / len(xs), "mean", "Mean" + _T, "mean over all elements or along axis")
_reduction("prod", lambda S, xs: S.Mul(*xs), "prod", "Prod" + _T, "product over all elements or along axis",
           algorithm=True)  # torch's backward divides the product by each factor
_reduction("logsumexp", lambda S, xs: S.log(S.Add(*(S.exp(x) for x in xs))), "logsumexp", "Logsumexp" + _T,
           "log of the sum of exponentials")
register_op(Op("norm", REDUCTION, (1, 1), lambda S, a, axis=None, p=2: sym_reduce(
                   lambda S, xs: S.sqrt(S.Add(*(x**2 for x in xs))) if p == 2 else
                   S.Add(*(S.Abs(x) ** S.Rational(p) for x in xs)) ** (1 / S.Rational(p)))(S, a, axis),
               lambda T, a, axis=None, p=2: T.linalg.vector_norm(a, ord=float(p), dim=axis),
               shape=lambda a, axis=None, p=2: reduced_shape(a, axis), grad_fn="LinalgVectorNorm" + _T,
               doc="the p-norm (default 2: Euclidean)", keywords=("axis", "keepdim", "p")))

register_op(Op("matmul", TENSOR, (2, 2), lambda S, a, b: np_module().matmul(a, b), lambda T, a, b: T.matmul(a, b),
               shape=_matmul_shape, doc="matrix product (also the @ operator)"))
register_op(Op("transpose", TENSOR, (1, 1),
               lambda S, a: a if a.ndim < 2 else np_module().swapaxes(a, -1, -2),
               lambda T, a: a if a.dim() < 2 else a.transpose(-2, -1),
               shape=_transpose_shape, grad_fn="Transpose" + _T, doc="swap the last two axes (also .T)"))
register_op(Op("dot", TENSOR, (2, 2), lambda S, a, b: np_module().array(np_module().dot(a, b), dtype=object),
               lambda T, a, b: T.dot(a, b), shape=_dot_shape, grad_fn="Dot" + _T, doc="inner product of 1-D tensors"))
register_op(Op("trace", TENSOR, (1, 1), lambda S, a: np_module().array(np_module().trace(a), dtype=object),
               lambda T, a: T.trace(a), shape=_square("trace"), grad_fn="Trace" + _T, doc="sum of the diagonal"))
register_op(Op("det", TENSOR, (1, 1), sym_matrix("det"), lambda T, a: T.linalg.det(a),
               shape=_square("det"), grad_fn="LinalgDet" + _T, doc="determinant of a square matrix", algorithm=True))
register_op(Op("inv", TENSOR, (1, 1), sym_matrix("inv"), lambda T, a: T.linalg.inv(a),
               shape=_square("inv"), doc="inverse of a square matrix", algorithm=True))
register_op(Op("softmax", TENSOR, (1, 1), sym_softmax(False), lambda T, a, axis=-1: T.softmax(a, dim=axis),
               shape=_same_shape, grad_fn="Softmax" + _T, doc="softmax along axis (default -1)", keywords=("axis",)))
register_op(Op("log_softmax", TENSOR, (1, 1), sym_softmax(True), lambda T, a, axis=-1: T.log_softmax(a, dim=axis),
               shape=_same_shape, grad_fn="LogSoftmax" + _T, doc="log of softmax along axis (default -1)",
               keywords=("axis",)))

# --- more of torch's differentiable ops (the conformance suite in cases/ops verifies each one's own derivative) ----

_F = "torch.nn.functional"


def _F_(name: str, **kw: Any) -> Callable[..., Any]:
    return lambda T, *a: getattr(T.nn.functional, name)(*a, **kw)


def _special(name: str) -> Callable[..., Any]:
    return lambda T, *a: getattr(T.special, name)(*a)


_SELU_ALPHA = "1.6732632423543772848170429916717"
_SELU_SCALE = "1.0507009873554804934193349852946"

unary_op("sinc", lambda S, x: S.Sinc(x), lambda T, x: T.sinc(x), "Sinc" + _T, doc="sin(pi x) / (pi x), 1 at 0")
unary_op("elu", lambda S, x, alpha=1: S.Piecewise((x, x > 0), (S.Rational(alpha) * (S.exp(x) - 1), True)),
       lambda T, x, alpha=1: T.nn.functional.elu(x, alpha=float(alpha)), "Elu" + _T, keywords=("alpha",))
unary_op("celu", lambda S, x, alpha=1: S.Piecewise((x, x > 0), (S.Rational(alpha) * (S.exp(x / S.Rational(alpha)) - 1),
                                                               True)),
       lambda T, x, alpha=1: T.nn.functional.celu(x, alpha=float(alpha)), "Celu" + _T, keywords=("alpha",))
unary_op("selu", lambda S, x: S.Float(_SELU_SCALE, 40) * S.Piecewise((x, x > 0),
                                                                      (S.Float(_SELU_ALPHA, 40) * (S.exp(x) - 1), True)),
         _F_("selu"), "Elu" + _T)
unary_op("leaky_relu", lambda S, x, negative_slope=S_01: S.Piecewise((x, x > 0), (x * S.Rational(negative_slope), True)),
       lambda T, x, negative_slope=S_01: T.nn.functional.leaky_relu(x, negative_slope=float(negative_slope)),
       "LeakyRelu" + _T, doc="negative_slope (default 0.01) times x where x <= 0", keywords=("negative_slope",))
unary_op("relu6", lambda S, x: S.Min(S.Max(x, 0), 6), _F_("relu6"), None)
unary_op("hardtanh", lambda S, x, min_val=-1, max_val=1: S.Min(S.Max(x, S.Rational(min_val)), S.Rational(max_val)),
       lambda T, x, min_val=-1, max_val=1: T.nn.functional.hardtanh(x, float(min_val), float(max_val)),
       "Hardtanh" + _T, keywords=("min_val", "max_val"))
unary_op("hardsigmoid", lambda S, x: S.Min(S.Max(x / 6 + S.Rational(1, 2), 0), 1), _F_("hardsigmoid"), "Hardsigmoid" + _T)
unary_op("hardswish", lambda S, x: x * S.Min(S.Max(x + 3, 0), 6) / 6, _F_("hardswish"), "Hardswish" + _T)
unary_op("softsign", lambda S, x: x / (1 + S.Abs(x)), _F_("softsign"), None)
unary_op("logsigmoid", lambda S, x: -S.log(1 + S.exp(-x)), _F_("logsigmoid"), "LogSigmoid" + _T)
unary_op("tanhshrink", lambda S, x: x - S.tanh(x), _F_("tanhshrink"), None)
unary_op("softshrink", lambda S, x: S.Piecewise((x - S.Rational(1, 2), x > S.Rational(1, 2)),
                                              (x + S.Rational(1, 2), x < -S.Rational(1, 2)), (0, True)),
       _F_("softshrink"), "Softshrink" + _T, doc="lambda 0.5")
unary_op("square", lambda S, x: x**2, lambda T, x: T.square(x), "Pow" + _T)
unary_op("reciprocal", lambda S, x: 1 / x, lambda T, x: T.reciprocal(x), "Reciprocal" + _T)
unary_op("neg", lambda S, x: -x, lambda T, x: T.neg(x), "Neg" + _T)
unary_op("deg2rad", lambda S, x: x * S.pi / 180, lambda T, x: T.deg2rad(x), "Deg2Rad" + _T)
unary_op("rad2deg", lambda S, x: x * 180 / S.pi, lambda T, x: T.rad2deg(x), "Rad2Deg" + _T)
unary_op("i0", lambda S, x: S.besseli(0, x), lambda T, x: T.i0(x), "I0" + _T, doc="modified Bessel function I0")
unary_op("i0e", lambda S, x: S.exp(-S.Abs(x)) * S.besseli(0, x), _special("i0e"), "SpecialI0E" + _T)
unary_op("i1", lambda S, x: S.besseli(1, x), _special("i1"), "SpecialI1" + _T)
unary_op("i1e", lambda S, x: S.exp(-S.Abs(x)) * S.besseli(1, x), _special("i1e"), "SpecialI1E" + _T)
unary_op("ndtr", lambda S, x: S.Ndtr(x), _special("ndtr"), None, doc="standard normal CDF")
unary_op("ndtri", lambda S, x: S.sqrt(2) * S.erfinv(2 * x - 1), _special("ndtri"), "SpecialNdtri" + _T)
unary_op("log_ndtr", lambda S, x: S.log(S.Ndtr(x)), _special("log_ndtr"), "SpecialLogNdtr" + _T)
unary_op("erfcx", lambda S, x: S.exp(x**2) * S.erfc(x), _special("erfcx"), "SpecialErfcx" + _T)
unary_op("entr", lambda S, x: -S.XLogY(x, x), _special("entr"), "SpecialEntr" + _T, doc="-x log x")
# piecewise constant: derivative 0 away from the jumps (the forward of straight-through estimators)
unary_op("round", lambda S, x: S.Round(x), lambda T, x: T.round(x), "Round" + _T, smooth=False,
       doc="to the nearest integer, halves to even (torch.round)")
unary_op("floor", lambda S, x: S.Floor(x), lambda T, x: T.floor(x), "Floor" + _T, smooth=False)
unary_op("ceil", lambda S, x: S.Ceil(x), lambda T, x: T.ceil(x), "Ceil" + _T, smooth=False)
unary_op("trunc", lambda S, x: S.Trunc(x), lambda T, x: T.trunc(x), "Trunc" + _T, smooth=False)
unary_op("frac", lambda S, x: x - S.Trunc(x), lambda T, x: T.frac(x), "Frac" + _T, smooth=False,
       doc="x - trunc(x) (torch.frac)")
unary_op("trigamma", lambda S, x: S.polygamma(1, x), lambda T, x: T.polygamma(1, x), "Polygamma" + _T,
       doc="polygamma(1, x)")


def elementwise_op(name: str, arity: int, sym: Callable[..., Any], tch: Callable[..., Any], grad_fn: str | None = None,
                 **kw: Any) -> None:
    register_op(Op(name, ELEMENTWISE, (arity, arity), sym, tch, grad_fn=grad_fn, **kw))


elementwise_op("hypot", 2, lambda S, a, b: S.sqrt(a**2 + b**2), lambda T, a, b: T.hypot(a, b), "Hypot" + _T)
elementwise_op("xlogy", 2, lambda S, a, b: S.XLogY(a, b), lambda T, a, b: T.xlogy(a, b), "Xlogy" + _T,
             doc="x log y, 0 where x = 0")
elementwise_op("xlog1py", 2, lambda S, a, b: S.XLogY(a, 1 + b), _special("xlog1py"), "SpecialXlog1Py" + _T,
             doc="x log(1 + y), 0 where x = 0")
elementwise_op("copysign", 2, lambda S, a, b: S.Piecewise((S.Abs(a), b >= 0), (-S.Abs(a), True)),
             lambda T, a, b: T.copysign(a, b), "Copysign" + _T, smooth=False, doc="|a| with the sign of b")
elementwise_op("logaddexp", 2, lambda S, a, b: S.log(S.exp(a) + S.exp(b)), lambda T, a, b: T.logaddexp(a, b),
             "Logaddexp" + _T)
elementwise_op("logaddexp2", 2, lambda S, a, b: S.log(2**a + 2**b) / S.log(2), lambda T, a, b: T.logaddexp2(a, b),
             "Logaddexp2" + _T)
elementwise_op("lerp", 3, lambda S, a, b, w: a + w * (b - a), lambda T, a, b, w: T.lerp(a, b, w), "LerpBackward1",
             doc="lerp(a, b, w) = a + w (b - a)")
register_op(Op("clamp", ELEMENTWISE, (1, 3),
               lambda S, x, lo=None, hi=None, min=None, max=None: clamp_meaning(S, x, lo, hi, min, max),
               lambda T, x, lo=None, hi=None, min=None, max=None: x + 0 if given(lo, min) is None and given(hi, max) is None
               else T.clamp(x, given(lo, min), given(hi, max)), grad_fn="ClampBackward0", smooth=False,
               keywords=("min", "max"), doc="clamp(x, low, high) = min(max(x, low), high); or clamp(x, min=, max=)"))
elementwise_op("addcmul", 3, lambda S, a, b, c: a + b * c, lambda T, a, b, c: T.addcmul(a, b, c), "Addcmul" + _T)
elementwise_op("addcdiv", 3, lambda S, a, b, c: a + b / c, lambda T, a, b, c: T.addcdiv(a, b, c), "Addcdiv" + _T)


_reduction("var", variance, "var", "Var" + _T, "variance (Bessel's correction, like torch.var)")
_reduction("std", lambda S, xs: S.sqrt(variance(S, xs)), "std", "Std" + _T,
           "standard deviation (Bessel's correction, like torch.std)")


for _name in ("cumsum", "cumprod", "logcumsumexp"):
    register_op(Op(_name, TENSOR, (1, 1), sym_cumulative(_name),
                   (lambda n: lambda T, a, axis=-1: a if a.dim() == 0 else getattr(T, n)(a, dim=axis))(_name),
                   shape=_same_shape, doc=f"{_name} along axis (default -1)", keywords=("axis",),
                   algorithm=_name == "cumprod"))


def _pair_shape(name: str) -> Callable[..., Shape]:
    def rule(*shapes: Shape) -> Shape:
        if len(set(shapes)) != 1:
            raise ValueError(f"{name} takes tensors of one shape, got " + " and ".join(str(list(s)) for s in shapes))
        return ()

    return rule


def _loss(name: str, per_element: Callable[..., Any], tch: Callable[..., Any], arity: int = 2, doc: str = "",
          keywords: tuple[str, ...] = ()) -> None:
    """A loss with torch's default reduction='mean' over tensors of one shape."""

    def sym(S: Any, *args: Any, **kw: Any) -> Any:
        np = np_module()
        terms = np.frompyfunc(lambda *xs: per_element(S, *xs, **kw), len(args), 1)(*args)
        return np.array(S.Add(*terms.reshape(-1)) / max(terms.size, 1), dtype=object)

    register_op(Op(name, TENSOR, (arity, arity), sym, tch, shape=lambda *s, **kw: _pair_shape(name)(*s),
                   doc=doc or f"{_F}.{name}", keywords=keywords))


_loss("mse_loss", lambda S, a, b: (a - b) ** 2, _F_("mse_loss"))
_loss("l1_loss", lambda S, a, b: S.Abs(a - b), _F_("l1_loss"))
_loss("huber_loss", lambda S, a, b, delta=1: huber_meaning(S, a, b, S.Rational(delta), True),
      lambda T, a, b, delta=1: T.nn.functional.huber_loss(a, b, delta=float(delta)), doc="huber_loss(a, b, delta=1)",
      keywords=("delta",))
_loss("smooth_l1_loss", lambda S, a, b, beta=1: huber_meaning(S, a, b, S.Rational(beta), False),
      lambda T, a, b, beta=1: T.nn.functional.smooth_l1_loss(a, b, beta=float(beta)),
      doc="smooth_l1_loss(a, b, beta=1)", keywords=("beta",))
_loss("soft_margin_loss", lambda S, x, y: S.log(1 + S.exp(-y * x)), _F_("soft_margin_loss"))
_loss("binary_cross_entropy", lambda S, p, y: -(S.XLogY(y, p) + S.XLogY(1 - y, 1 - p)), _F_("binary_cross_entropy"),
      doc="binary_cross_entropy(probabilities, targets)")
_loss("binary_cross_entropy_with_logits", lambda S, x, y: S.log(1 + S.exp(x)) - y * x,
      _F_("binary_cross_entropy_with_logits"))
def _kl_div(T: Any, x: Any, t: Any) -> Any:
    import warnings

    with warnings.catch_warnings():  # torch's notice that reduction='mean' (its default) will change
        warnings.simplefilter("ignore", UserWarning)
        return T.nn.functional.kl_div(x, t)


_loss("kl_div", lambda S, x, t: S.XLogY(t, t) - t * x, _kl_div,
      doc="kl_div(log-probabilities, probabilities), reduction 'mean'")
_loss("poisson_nll_loss", lambda S, x, y: S.exp(x) - y * x, _F_("poisson_nll_loss"), doc="log_input=True")
_loss("gaussian_nll_loss", lambda S, x, t, v: (S.log(v) + (x - t) ** 2 / v) / 2, _F_("gaussian_nll_loss"), arity=3,
      doc="gaussian_nll_loss(input, target, var)")


def _cross_entropy_shape(x: Shape, t: Shape) -> Shape:
    if len(x) in (1, 2) and t == x[:-1]:
        return ()  # class labels
    if x != t or len(x) not in (1, 2):
        raise ValueError(f"cross_entropy takes logits and target probabilities of one shape, [C] or [N, C], got "
                         f"{list(x)} and {list(t)}")
    return ()


register_op(Op("cross_entropy", TENSOR, (2, 2), sym_cross_entropy, _F_("cross_entropy"), shape=_cross_entropy_shape,
               doc="cross_entropy(logits, target probabilities or class labels), [C] or [N, C], mean over N"))


def _last_axis_shape(name: str, keep: bool) -> Callable[..., Shape]:
    def rule(*shapes: Shape, axis: Any = -1) -> Shape:
        if len(set(shapes)) != 1 or not shapes[0]:
            raise ValueError(f"{name} takes tensors of one shape with at least one dimension")
        return shapes[0] if keep else reduced_shape(shapes[0], axis)

    return rule


register_op(Op("normalize", TENSOR, (1, 1), sym_normalize, lambda T, a, axis=-1: T.nn.functional.normalize(a, dim=axis),
               shape=_last_axis_shape("normalize", True), keywords=("axis",),
               doc="x / ||x|| along axis (default -1; torch clamps the norm at 1e-12)"))
register_op(Op("cosine_similarity", TENSOR, (2, 2), sym_cosine,
               lambda T, a, b, axis=-1: T.nn.functional.cosine_similarity(a, b, dim=axis),
               shape=_last_axis_shape("cosine_similarity", False), keywords=("axis",),
               doc="cosine of the angle between a and b along axis (default -1)"))
register_op(Op("layer_norm", TENSOR, (1, 1), sym_layer_norm,
               lambda T, a: T.nn.functional.layer_norm(a, a.shape[-1:]),
               shape=_last_axis_shape("layer_norm", True), doc="layer_norm over the last axis, no weight, eps 1e-5"))


register_op(Op("slogdet", TENSOR, (1, 1), sym_logdet(True), lambda T, a: T.linalg.slogdet(a).logabsdet,
               shape=_square("det"), doc="log |det A| (the logabsdet of torch.linalg.slogdet)", algorithm=True))
register_op(Op("logdet", TENSOR, (1, 1), sym_logdet(False), lambda T, a: T.logdet(a),
               shape=_square("det"), doc="log det A (NaN where det A < 0)", algorithm=True))


def _solve_shape(a: Shape, b: Shape) -> Shape:
    _square("inv")(a)
    if not b or b[0] != a[0] or len(b) > 2:
        raise ValueError(f"solve(A, b) needs b of shape [{a[0]}] or [{a[0]}, k], got {list(b)}")
    return b


register_op(Op("solve", TENSOR, (2, 2), lambda S, a, b: np_module().matmul(sym_matrix("inv")(S, a), b),
               lambda T, a, b: T.linalg.solve(a, b), shape=_solve_shape, doc="solve(A, b) = inv(A) @ b",
               algorithm=True))


def _outer_shape(a: Shape, b: Shape) -> Shape:
    if len(a) != 1 or len(b) != 1:
        raise ValueError(f"outer needs two 1-D tensors, got shapes {list(a)} and {list(b)}")
    return a + b


def _cross_shape(a: Shape, b: Shape) -> Shape:
    if a != (3,) or b != (3,):
        raise ValueError(f"cross needs two vectors of length 3, got shapes {list(a)} and {list(b)}")
    return a


register_op(Op("outer", TENSOR, (2, 2), lambda S, a, b: np_module().multiply.outer(a, b), lambda T, a, b: T.outer(a, b),
               shape=_outer_shape, doc="outer product of 1-D tensors"))
register_op(Op("cross", TENSOR, (2, 2), sym_cross, lambda T, a, b: T.linalg.cross(a, b), shape=_cross_shape,
               doc="cross product of 3-vectors"))

# --- what a traced forward is written in (verifier.torchside.tracing): not functions of a case's text ------------


register_op(Op("elements", TENSOR, (1, 1 << 20), sym_elements, torch_elements, shape=elements_shape,
               doc="elements(a, b, ..., source=, index=, shape=): element k is args[source[k]].flat[index[k]] (views, "
                   "slices, concatenations and gathers of a traced forward)", internal=True))
elementwise_op("logical_and", 2, lambda S, a, b: S.And(a, b), lambda T, a, b: T.logical_and(a, b), internal=True)
elementwise_op("logical_or", 2, lambda S, a, b: S.Or(a, b), lambda T, a, b: T.logical_or(a, b), internal=True)
elementwise_op("logical_xor", 2, lambda S, a, b: S.Xor(a, b), lambda T, a, b: T.logical_xor(a, b), internal=True)
unary_op("logical_not", lambda S, a: S.Not(a), lambda T, a: T.logical_not(a), internal=True)

# Constants a case may use by name.
CONSTANTS = {"pi": "pi", "E": "E", "inf": "inf", "oo": "inf"}  # oo: sympy's spelling of infinity


def public_ops() -> list[str]:
    """The functions a case's text may call."""
    return sorted(n for n, op in OPS.items() if not op.internal)


def known_names() -> str:
    """The function names, for error messages."""
    return ", ".join(public_ops())

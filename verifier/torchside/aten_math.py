"""aten's element-wise ops and reductions -> the op-table rows of the case language (each the row of the same
function, or its definition from rows where torch's op has parameters the row does not)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..language.nodes import Bin, Call, Cmp, Neg, Node, Num
from .atenargs import TABLE, Args, Handler, call, dims, op, reshaped, scaled
from .tracing import elements

# --- element-wise: the op-table rows of the same name --------------------------------------------------------------

_SAME = ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "exp", "exp2",
         "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt", "abs", "sign", "erf", "erfc", "erfinv", "lgamma",
         "digamma", "sigmoid", "relu", "silu", "mish", "reciprocal", "sinc", "i0", "deg2rad", "rad2deg", "hardsigmoid",
         "hardswish", "round", "floor", "ceil", "trunc", "frac", "atan2", "hypot", "xlogy", "copysign", "logaddexp",
         "logaddexp2", "logical_and", "logical_or", "logical_xor")
_SPECIAL = {"special_i0e": "i0e", "special_i1": "i1", "special_i1e": "i1e", "special_ndtr": "ndtr",
            "special_ndtri": "ndtri", "special_log_ndtr": "log_ndtr", "special_erfcx": "erfcx", "special_entr": "entr",
            "special_xlog1py": "xlog1py", "sgn": "sign", "arctan2": "atan2", "special_expit": "sigmoid",
            "special_erf": "erf", "special_erfc": "erfc", "special_erfinv": "erfinv", "special_xlogy": "xlogy",
            "special_zeta": "zeta", "special_bessel_j0": "bessel_j0", "special_bessel_j1": "bessel_j1",
            "special_bessel_y0": "bessel_y0", "special_bessel_y1": "bessel_y1",
            "special_modified_bessel_i0": "modified_bessel_i0", "special_modified_bessel_i1": "modified_bessel_i1",
            "special_modified_bessel_k0": "modified_bessel_k0", "special_modified_bessel_k1": "modified_bessel_k1",
            "special_scaled_modified_bessel_k0": "scaled_modified_bessel_k0",
            "special_scaled_modified_bessel_k1": "scaled_modified_bessel_k1",
            "special_spherical_bessel_j0": "spherical_bessel_j0", "special_airy_ai": "airy_ai",
            "special_gammainc": "gammainc", "special_gammaincc": "gammaincc", "igamma": "gammainc",
            "igammac": "gammaincc", "special_gammaln": "lgamma", "heaviside": "heaviside"}
_POLYNOMIALS = tuple(f"{shift}chebyshev_polynomial_{k}" for shift in ("", "shifted_") for k in "tuvw") + (
    "hermite_polynomial_h", "hermite_polynomial_he", "laguerre_polynomial_l", "legendre_polynomial_p")
for _poly in _POLYNOMIALS:
    _SPECIAL[f"special_{_poly}"] = _poly
_LOGICAL = ("logical_and", "logical_or", "logical_xor")


def _same(name: str) -> Handler:
    def handler(a: Args) -> Node:
        names = [s.name for s in a.func._schema.arguments if s.name in ("self", "other", "x", "n", "values")]
        if name in _LOGICAL:
            return call(name, *(a.cond(k) for k in names))
        return call(name, *(a.n(k) for k in names))

    return handler


for _name in _SAME:
    TABLE[_name] = _same(_name)
for _aten, _name in _SPECIAL.items():
    TABLE[_aten] = _same(_name)


@op("logical_not")
def _not(a: Args) -> Node:
    return call("logical_not", a.cond("self"))


@op("polygamma")
def _polygamma(a: Args) -> Node:
    if a.v("n") == 0:
        return call("digamma", a.n("self"))
    if a.v("n") == 1:
        return call("trigamma", a.n("self"))
    return call("polygamma", a.const(a.v("n")), a.n("self"))


@op("mvlgamma", "special_multigammaln")
def _mvlgamma(a: Args) -> Node:
    return call("mvlgamma", a.n("self"), a.const(a.v("p")))


@op("add", "sub")
def _add(a: Args) -> Node:
    other = scaled(a.v("alpha", 1), a.n("other"))
    return Bin("+" if a.func.overloadpacket.__name__.startswith("add") else "-", a.n("self"), other)


@op("rsub")
def _rsub(a: Args) -> Node:
    return Bin("-", a.n("other"), scaled(a.v("alpha", 1), a.n("self")))


@op("mul")
def _mul(a: Args) -> Node:
    return Bin("*", a.n("self"), a.n("other"))


@op("div")
def _div(a: Args) -> Node:
    q = Bin("/", a.n("self"), a.n("other"))
    mode = a.v("rounding_mode")
    return q if mode is None else call("trunc" if mode == "trunc" else "floor", q)


@op("floor_divide")
def _floor_divide(a: Args) -> Node:
    return call("floor", Bin("/", a.n("self"), a.n("other")))


@op("true_divide")
def _true_divide(a: Args) -> Node:
    return Bin("/", a.n("self"), a.n("other"))


@op("pow", "float_power")
def _pow(a: Args) -> Node:
    base = a.n("self")
    return Bin("**", base, a.n("exponent"))


@op("square")
def _square(a: Args) -> Node:
    return Bin("**", a.n("self"), Num("2"))


@op("neg", "negative")
def _neg(a: Args) -> Node:
    return Neg(a.n("self"))


@op("positive", "clone", "contiguous", "alias", "lift_fresh_copy", "detach_copy", "alias_copy", "_conj", "resolve_conj",
    "resolve_neg")
def _identity(a: Args) -> Node:
    return a.n("self")


_CMP = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "greater": ">", "less": "<",
        "greater_equal": ">=", "less_equal": "<=", "not_equal": "!="}


def _compare(symbol: str) -> Handler:
    return lambda a: Cmp(symbol, a.n("self"), a.n("other"))


for _name, _symbol in _CMP.items():
    TABLE[_name] = _compare(_symbol)


@op("where")
def _where(a: Args) -> Node:
    return call("where", a.cond("condition"), a.n("self"), a.n("other"))


@op("masked_fill")
def _masked_fill(a: Args) -> Node:
    return call("where", a.cond("mask"), a.n("value"), a.n("self"))


@op("maximum", "fmax", "max.other")
def _maximum(a: Args) -> Node:
    return call("max", a.n("self"), a.n("other"))


@op("minimum", "fmin", "min.other")
def _minimum(a: Args) -> Node:
    return call("min", a.n("self"), a.n("other"))


@op("clamp", "clip")
def _clamp(a: Args) -> Node:
    lo, hi = a.bound.get("min"), a.bound.get("max")
    x = a.n("self")
    if lo is not None and hi is not None:
        return call("clamp", x, a.n("min"), a.n("max"))
    if lo is not None:
        return call("max", x, a.n("min"))
    if hi is not None:
        return call("min", x, a.n("max"))
    return x


@op("clamp_min")
def _clamp_min(a: Args) -> Node:
    return call("max", a.n("self"), a.n("min"))


@op("clamp_max")
def _clamp_max(a: Args) -> Node:
    return call("min", a.n("self"), a.n("max"))


@op("hardtanh")
def _hardtanh(a: Args) -> Node:
    lo, hi = a.v("min_val", -1), a.v("max_val", 1)
    if (lo, hi) == (-1, 1):
        return call("hardtanh", a.n("self"))
    if (lo, hi) == (0, 6):
        return call("relu6", a.n("self"))
    return with_params("hardtanh", a.n("self"), min_val=a.const(lo), max_val=a.const(hi))


@op("relu6")
def _relu6(a: Args) -> Node:
    return call("relu6", a.n("self"))


def with_params(name: str, x: Node, **params: object) -> Node:
    """The op-table row called with torch's keyword parameters (the row's own meaning of them)."""
    return Call(name, (x,), params=tuple(params.items()))


def where_positive(x: Node, positive: Node, otherwise: Node) -> Node:
    """positive where x > 0, else otherwise: the shape of the ReLU family's definitions."""
    return call("where", Cmp(">", x, Num("0")), positive, otherwise)


@op("leaky_relu")
def _leaky_relu(a: Args) -> Node:
    slope = a.v("negative_slope", 0.01)
    x = a.n("self")
    return call("leaky_relu", x) if slope == 0.01 else with_params("leaky_relu", x, negative_slope=a.const(slope))


@op("_prelu_kernel", "prelu")
def _prelu(a: Args) -> Node:
    x = a.n("self")
    return where_positive(x, x, Bin("*", a.n("weight"), x))


@op("elu")
def _elu(a: Args) -> Node:
    alpha, scale, inner = a.v("alpha", 1), a.v("scale", 1), a.v("input_scale", 1)
    x = a.n("self")
    if (alpha, scale, inner) == (1, 1, 1):
        return call("elu", x)
    negative = scaled(scale, scaled(alpha, call("expm1", scaled(inner, x))))
    return where_positive(x, scaled(scale, x), negative)


@op("selu")
def _selu(a: Args) -> Node:
    return call("selu", a.n("self"))


@op("celu")
def _celu(a: Args) -> Node:
    alpha = a.v("alpha", 1)
    x = a.n("self")
    return call("celu", x) if alpha == 1 else with_params("celu", x, alpha=a.const(alpha))


@op("gelu")
def _gelu(a: Args) -> Node:
    x = a.n("self")
    approximate = a.v("approximate", "none")
    return call("gelu", x) if approximate == "none" else with_params("gelu", x, approximate=approximate)


@op("softplus")
def _softplus(a: Args) -> Node:
    # torch's softplus switches to x above its threshold: the row with threshold= says so
    return with_params("softplus", a.n("self"), beta=a.const(a.v("beta", 1)), threshold=a.const(a.v("threshold", 20)))


@op("log_sigmoid_forward")
def _log_sigmoid(a: Args) -> tuple[Node, None]:
    return call("logsigmoid", a.n("self")), None


@op("softshrink")
def _softshrink(a: Args) -> Node:
    lam = a.v("lambd", 0.5)
    x = a.n("self")
    if lam == 0.5:
        return call("softshrink", x)
    lo = a.const(lam)
    return call("where", Cmp(">", x, lo), Bin("-", x, lo), call("where", Cmp("<", x, Neg(lo)), Bin("+", x, lo), Num("0")))


@op("hardshrink")
def _hardshrink(a: Args) -> Node:
    x = a.n("self")
    return call("where", Cmp(">", call("abs", x), a.const(a.v("lambd", 0.5))), x, Num("0"))


@op("threshold")
def _threshold(a: Args) -> Node:
    x = a.n("self")
    return call("where", Cmp(">", x, a.n("threshold")), x, a.n("value"))


@op("logit")
def _logit(a: Args) -> Node:
    x = a.n("self")
    eps = a.v("eps")
    if eps is None:
        return call("logit", x)
    e = a.const(eps)
    return call("logit", call("clamp", x, e, Bin("-", Num("1"), e)))


@op("lerp")
def _lerp(a: Args) -> Node:
    return call("lerp", a.n("self"), a.n("end"), a.n("weight"))


@op("addcmul", "addcdiv")
def _addc(a: Args) -> Node:
    product = Bin("*" if a.func.overloadpacket.__name__.startswith("addcmul") else "/", a.n("tensor1"), a.n("tensor2"))
    return Bin("+", a.n("self"), scaled(a.v("value", 1), product))


@op("_to_copy", "to", "type_as", "copy")
def _to_copy(a: Args) -> Node:
    """A dtype conversion: booleans to 1 and 0, a float to an integer dtype truncates, floats to floats keep the value
    (the exact function is the same; the rounding is the implementation's)."""
    key = "src" if "src" in a.bound else "self"
    source = a.bound[key]
    target = a.outs[0].dtype if a.outs else source.dtype
    if isinstance(source, torch.Tensor) and source.dtype == torch.bool and target == torch.bool:
        return a.cond(key)
    node = a.n(key)
    if isinstance(source, torch.Tensor) and source.is_floating_point() and not (target.is_floating_point or
                                                                                  target.is_complex):
        return call("trunc", node)
    return node


# --- reductions -----------------------------------------------------------------------------------------------------


def _reduction(name: str) -> Handler:
    def handler(a: Args) -> Node:
        x = a.n("self")
        ndim = len(a.shape("self"))
        axis = dims(a.v("dim"), ndim)
        node = call(name, x, axis=axis)
        if a.v("keepdim", False) and ndim:
            node = reshaped(node, a.out_shape())
        return node

    return handler


for _name in ("sum", "mean", "prod", "logsumexp", "nansum"):
    TABLE[_name] = _reduction("sum" if _name == "nansum" else _name)
TABLE["amax"] = _reduction("max")
TABLE["amin"] = _reduction("min")


@op("sort", "topk")
def _sorted(a: Args) -> tuple[Node, None]:
    """The values are the elements torch's own indices name (ties: one of equals, as torch chose)."""
    return _by_indices(a, a.outs[1], int(a.v("dim", -1))), None


def _by_indices(a: Args, indices: torch.Tensor, dim: int) -> Node:
    """The elements of self that an index tensor of torch's (along dim) names, in its shape."""
    shape = a.shape("self")
    idx = indices.detach().cpu().numpy().astype(np.int64)
    coords: list[np.ndarray] = list(np.indices(idx.shape))
    coords[dim % max(len(shape), 1)] = idx
    pos = np.ravel_multi_index(tuple(coords), shape).reshape(-1) if shape else np.zeros(idx.size, dtype=np.int64)
    return elements([a.n("self")], np.zeros(pos.size, dtype=np.int64), pos, tuple(idx.shape))


@op("glu")
def _glu(a: Args) -> Node:
    """glu(x, dim) = first half * sigmoid(second half) along dim."""
    shape = a.shape("self")
    dim = int(a.v("dim", -1)) % len(shape)
    half = shape[dim] // 2
    grid = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)
    x = a.n("self")
    parts = [elements([x], np.zeros(grid.size // 2, dtype=np.int64), np.take(grid, range(k * half, (k + 1) * half),
                      axis=dim).reshape(-1), a.out_shape()) for k in (0, 1)]
    return Bin("*", parts[0], call("sigmoid", parts[1]))


@op("index_add", "scatter_add", "index_put_accumulate")
def _accumulate(a: Args) -> Node:
    """self plus each source element at the place its index sends it (index_add along dim, scatter_add by an index
    tensor): a sum per output element of the contributions that land there."""
    target_shape = a.shape("self")
    name = a.func.overloadpacket.__name__
    src_name = "source" if "source" in a.bound else "src"
    src_shape = a.shape(src_name)
    dim = int(a.v("dim")) % max(len(target_shape), 1)
    index = a.real("index").detach().cpu().numpy().astype(np.int64)
    if name.startswith("index_add"):
        coords = list(np.indices(src_shape))
        coords[dim] = index[coords[dim]]
        count = int(np.prod(src_shape, dtype=np.int64))
    else:
        coords = list(np.indices(index.shape))
        coords[dim] = index
        count = index.size
    flat_target = np.ravel_multi_index(tuple(coords), target_shape).reshape(-1)
    src_grid = np.arange(int(np.prod(src_shape, dtype=np.int64))).reshape(src_shape)
    src_pos = (src_grid if name.startswith("index_add") else src_grid[tuple(np.indices(index.shape))]).reshape(-1)
    size = int(np.prod(target_shape, dtype=np.int64))
    lists: list[list[int]] = [[] for _ in range(size)]
    for k in range(count):
        lists[int(flat_target[k])].append(int(src_pos[k]))
    width = 1 + max((len(v) for v in lists), default=0)
    src = np.full((size, width), 2, dtype=np.int64)  # 2: the zero that pads short sums
    pos = np.zeros((size, width), dtype=np.int64)
    src[:, 0], pos[:, 0] = 0, np.arange(size)
    for k, contributions in enumerate(lists):
        src[k, 1:1 + len(contributions)] = 1
        pos[k, 1:1 + len(contributions)] = contributions
    source = scaled(a.v("alpha", 1), a.n(src_name))
    table = elements([a.n("self"), source, Num("0")], src.reshape(-1), pos.reshape(-1), (size, width))
    return reshaped(call("sum", table, axis=1), a.out_shape())


@op("max", "min")
def _max_min(a: Args) -> Any:
    name = a.func.overloadpacket.__name__
    if "other" in a.bound:
        return (_maximum if name == "max" else _minimum)(a)
    x = a.n("self")
    if "dim" not in a.bound:
        return call(name, x)
    node = call(name, x, axis=dims(a.v("dim"), len(a.shape("self"))))
    if a.v("keepdim", False):
        node = reshaped(node, a.out_shape())
    return node, None  # the indices: integers at the point


@op("linalg_vector_norm", "norm")
def _norm(a: Args) -> Node:
    x = a.n("self")
    ndim = len(a.shape("self"))
    axis = dims(a.v("dim"), ndim)
    p = a.v("ord", a.v("p", 2))
    p = 2 if p is None else p
    if p == 2:
        node = call("norm", x, axis=axis)
    elif p == 1:
        node = call("sum", call("abs", x), axis=axis)
    elif p == float("inf"):
        node = call("max", call("abs", x), axis=axis)
    else:
        node = Bin("**", call("sum", Bin("**", call("abs", x), a.const(p)), axis=axis), Bin("/", Num("1"), a.const(p)))
    if a.v("keepdim", False) and ndim:
        node = reshaped(node, a.out_shape())
    return node


def _moments(a: Args, root: bool) -> Node:
    x = a.n("self")
    shape = a.shape("self")
    axis = dims(a.v("dim"), len(shape))
    correction = a.v("correction")
    if correction is None:
        correction = 1 if a.v("unbiased", True) else 0
    if correction == 1:
        node = call("std" if root else "var", x, axis=axis)
    else:
        axes = range(len(shape)) if axis is None else ([axis] if isinstance(axis, int) else axis)
        count = int(np.prod([shape[d] for d in axes], dtype=np.int64))
        mean_shape = tuple(1 if (axis is None or d in axes) else n for d, n in enumerate(shape))
        centred = Bin("-", x, reshaped(call("mean", x, axis=axis), mean_shape))
        node = Bin("/", call("sum", Bin("**", centred, Num("2")), axis=axis), a.const(count - correction))
        node = call("sqrt", node) if root else node
    if a.v("keepdim", False) and shape:
        node = reshaped(node, a.out_shape())
    return node


@op("var")
def _var(a: Args) -> Node:
    return _moments(a, False)


@op("std")
def _std(a: Args) -> Node:
    return _moments(a, True)


@op("var_mean", "std_mean")
def _moments_mean(a: Args) -> tuple[Node, Node]:
    spread = _moments(a, a.func.overloadpacket.__name__.startswith("std"))
    mean = call("mean", a.n("self"), axis=dims(a.v("dim"), len(a.shape("self"))))
    if a.v("keepdim", False) and a.shape("self"):
        mean = reshaped(mean, a.out_shape(1))
    return spread, mean


def _along(name: str) -> Handler:
    return lambda a: call(name, a.n("self"), axis=int(a.v("dim", -1)))


for _name in ("cumsum", "cumprod", "logcumsumexp"):
    TABLE[_name] = _along(_name)
TABLE["_softmax"] = TABLE["softmax"] = _along("softmax")
TABLE["_log_softmax"] = TABLE["log_softmax"] = _along("log_softmax")



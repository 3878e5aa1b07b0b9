"""aten's linear algebra, normalisation, convolution, pooling and losses -> the case language."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..language.nodes import Bin, Cmp, Neg, Node, Num
from .atenargs import Args, NoTranslation, call, op, reshaped, scaled
from .tracing import Failure, elements

# --- linear algebra ---------------------------------------------------------------------------------------------------


@op("mm", "bmm", "matmul", "mv")
def _mm(a: Args) -> Node:
    other = "mat2" if "mat2" in a.bound else ("vec" if "vec" in a.bound else "other")
    return Bin("@", a.n("self"), a.n(other))


@op("dot", "vdot", "inner")
def _dot(a: Args) -> Node:
    return call("dot", a.n("self"), a.n("tensor" if "tensor" in a.bound else "other"))


@op("addmm", "addmv", "baddbmm", "addbmm")
def _addmm(a: Args) -> Node:
    left = next(k for k in ("mat1", "mat", "batch1") if k in a.bound)
    right = next(k for k in ("mat2", "vec", "batch2") if k in a.bound)
    product: Node = Bin("@", a.n(left), a.n(right))
    if a.func.overloadpacket.__name__ == "addbmm":
        product = call("sum", product, axis=0)
    beta = a.v("beta", 1)
    product = scaled(a.v("alpha", 1), product)
    return product if beta == 0 else Bin("+", scaled(beta, a.n("self")), product)


@op("outer", "ger")
def _outer(a: Args) -> Node:
    return call("outer", a.n("self"), a.n("vec2"))


@op("trace")
def _trace(a: Args) -> Node:
    return call("trace", a.n("self"))


@op("linalg_det", "_linalg_det", "det")
def _det(a: Args) -> Any:
    if len(a.shape("A" if "A" in a.bound else "self")) != 2:
        raise NoTranslation(Failure("a batched determinant"))
    node = call("det", a.n("A" if "A" in a.bound else "self"))
    return (node, None, None) if len(a.outs) == 3 else node


@op("linalg_inv_ex")
def _inv(a: Args) -> tuple[Node, None]:
    return call("inv", a.n("A")), None


@op("_linalg_slogdet")
def _slogdet(a: Args) -> tuple[None, Node, None, None]:
    return None, call("slogdet", a.n("A")), None, None


@op("logdet")
def _logdet(a: Args) -> Node:
    return call("logdet", a.n("self"))


@op("_linalg_solve_ex")
def _solve(a: Args) -> tuple[Node, None, None, None]:
    if not a.v("left", True):
        raise NoTranslation(Failure("solve with left=False"))
    return call("solve", a.n("A"), a.n("B")), None, None, None


@op("linalg_cross", "cross")
def _cross(a: Args) -> Node:
    return call("cross", a.n("self"), a.n("other"))


# --- normalisation --------------------------------------------------------------------------------------------------


@op("native_layer_norm")
def _layer_norm(a: Args) -> tuple[Node, Node, Node]:
    x = a.n("input")
    shape = a.shape("input")
    k = len(a.v("normalized_shape"))
    axes = tuple(range(len(shape) - k, len(shape)))
    axis: Any = axes[0] if len(axes) == 1 else axes
    kept = shape[: len(shape) - k] + (1,) * k
    mean = reshaped(call("mean", x, axis=axis), kept)
    centred = Bin("-", x, mean)
    var = reshaped(call("mean", Bin("**", centred, Num("2")), axis=axis), kept)
    rstd = call("rsqrt", Bin("+", var, a.const(a.v("eps"))))
    y: Node = Bin("*", centred, rstd)
    if a.bound.get("weight") is not None:
        y = Bin("*", y, a.n("weight"))
    if a.bound.get("bias") is not None:
        y = Bin("+", y, a.n("bias"))
    return y, reshaped(mean, a.out_shape(1)), reshaped(rstd, a.out_shape(2))


def _affine(a: Args, y: Node, per_channel: tuple[int, ...]) -> tuple[Node, ...]:
    """A normalisation's per-channel weight and bias, and its saved statistics (not traced) as the other outputs."""
    if a.bound.get("weight") is not None:
        y = Bin("*", y, reshaped(a.n("weight"), per_channel))
    if a.bound.get("bias") is not None:
        y = Bin("+", y, reshaped(a.n("bias"), per_channel))
    saved: list[Any] = [None] * (len(a.outs) - 1)
    return tuple([y, *saved])


@op("native_group_norm")
def _group_norm(a: Args) -> tuple[Node, ...]:
    x = a.n("input")
    n, c, groups = int(a.v("N")), int(a.v("C")), int(a.v("group"))
    shape = a.shape("input")
    rest = int(np.prod(shape, dtype=np.int64)) // (n * c)
    grouped = reshaped(x, (n, groups, (c // groups) * rest))
    mean = reshaped(call("mean", grouped, axis=2), (n, groups, 1))
    centred = Bin("-", grouped, mean)
    var = reshaped(call("mean", Bin("**", centred, Num("2")), axis=2), (n, groups, 1))
    y: Node = reshaped(Bin("*", centred, call("rsqrt", Bin("+", var, a.const(a.v("eps"))))), shape)
    per_channel = (1, c) + (1,) * (len(shape) - 2)
    return _affine(a, y, per_channel)


@op("_cdist_forward")
def _cdist(a: Args) -> Node:
    s1, s2 = a.shape("x1"), a.shape("x2")
    if len(s1) != 2 or len(s2) != 2:
        raise NoTranslation(Failure("a batched cdist"))
    diff = Bin("-", reshaped(a.n("x1"), (s1[0], 1, s1[1])), reshaped(a.n("x2"), (1, s2[0], s2[1])))
    p = a.v("p", 2.0)
    if p == 2:
        return call("norm", diff, axis=2)
    if p == 1:
        return call("sum", call("abs", diff), axis=2)
    return Bin("**", call("sum", Bin("**", call("abs", diff), a.const(p)), axis=2), Bin("/", Num("1"), a.const(p)))


def _batch_norm(a: Args, training: bool) -> tuple[Node, ...]:
    x = a.n("input")
    shape = a.shape("input")
    per_channel = (1, shape[1]) + (1,) * (len(shape) - 2)
    axes = tuple(d for d in range(len(shape)) if d != 1)
    if training:
        mean = reshaped(call("mean", x, axis=axes), per_channel)
        var = reshaped(call("mean", Bin("**", Bin("-", x, mean), Num("2")), axis=axes), per_channel)
    else:
        mean, var = reshaped(a.n("running_mean"), per_channel), reshaped(a.n("running_var"), per_channel)
    y: Node = Bin("*", Bin("-", x, mean), call("rsqrt", Bin("+", var, a.const(a.v("eps")))))
    return _affine(a, y, per_channel)


@op("_native_batch_norm_legit", "native_batch_norm", "_native_batch_norm_legit_functional")
def _batch_norm_train(a: Args) -> tuple[Node, ...]:
    return _batch_norm(a, bool(a.v("training", True)))


@op("_native_batch_norm_legit_no_training")
def _batch_norm_eval(a: Args) -> tuple[Node, ...]:
    return _batch_norm(a, False)


# --- convolution and pooling: patches read off torch's own unfold (im2col) run on element ids -----------------


def _patches(a: Args, name: str, kernel: tuple[int, ...], dilation: Any, padding: Any, stride: Any) -> Node:
    """The (N, C * kh * kw, L) patches of a 2-D (or 1-D, as height 1) input: where unfold takes each element from,
    the zero padding as the fill."""
    x = a.real(name)
    shape = tuple(x.shape)
    one_d = len(shape) == 3
    if len(shape) not in (3, 4):
        raise NoTranslation(Failure(f"a convolution or pooling of a {len(shape)}-D input (1-D and 2-D are traced)"))

    def pair(v: Any, fill: int) -> tuple[int, int]:
        v = list(v) if isinstance(v, (list, tuple)) else [v]
        return (fill, int(v[0])) if one_d else (int(v[0]), int(v[-1]))

    ids = torch.arange(1, x.numel() + 1, dtype=torch.float64).reshape((shape[0], shape[1], 1, shape[2]) if one_d
                                                                         else shape)
    k = (1, int(kernel[-1])) if one_d else (int(kernel[0]), int(kernel[-1]))
    cols = torch.nn.functional.unfold(ids, k, dilation=pair(dilation, 1), padding=pair(padding, 0),
                                      stride=pair(stride, 1))
    flat = cols.reshape(-1).round().to(torch.int64).numpy()
    node = a.read(x)
    src = (flat == 0).astype(np.int64)
    return elements([node, Num("0")], src, np.where(flat > 0, flat - 1, 0), tuple(cols.shape))


@op("convolution", "_convolution")
def _convolution(a: Args) -> Node:
    if a.v("transposed", False) or a.v("groups", 1) != 1:
        raise NoTranslation(Failure("a transposed or grouped convolution"))
    w = a.real("weight")
    patches = _patches(a, "input", tuple(w.shape[2:]), a.v("dilation", 1), a.v("padding", 0), a.v("stride", 1))
    out_channels = int(w.shape[0])
    kernel_size = int(np.prod(w.shape[1:], dtype=np.int64))
    product = Bin("@", reshaped(a.n("weight"), (out_channels, kernel_size)), patches)
    out = reshaped(product, a.out_shape())
    if a.bound.get("bias") is not None:
        out = Bin("+", out, reshaped(a.n("bias"), (1, out_channels) + (1,) * (len(a.out_shape()) - 2)))
    return out


@op("avg_pool2d", "avg_pool1d")
def _avg_pool(a: Args) -> Node:
    kernel = a.v("kernel_size")
    kernel = tuple(kernel) if isinstance(kernel, (list, tuple)) else (kernel,)
    if a.v("ceil_mode", False) or a.v("divisor_override") is not None or \
            (not a.v("count_include_pad", True) and any(int(p) for p in np.atleast_1d(a.v("padding", 0)))):
        raise NoTranslation(Failure("average pooling with ceil_mode, divisor_override or count_include_pad=False"))
    stride = a.v("stride") or kernel
    patches = _patches(a, "self", kernel, 1, a.v("padding", 0), stride)
    n, c = a.shape("self")[:2]
    k = int(np.prod(kernel, dtype=np.int64)) if len(a.shape("self")) == 4 else int(kernel[-1])
    length = int(np.prod(a.out_shape()[2:], dtype=np.int64))
    return reshaped(call("mean", reshaped(patches, (n, c, k, length)), axis=2), a.out_shape())


@op("max_pool2d_with_indices", "max_pool1d_with_indices")
def _max_pool(a: Args) -> tuple[Node, None]:
    """The maximum of each window is the element torch's own indices name (ties: torch's choice, one of equals)."""
    indices = a.outs[1].detach().cpu().numpy().astype(np.int64)
    shape = a.shape("self")
    spatial = 2 if a.func.overloadpacket.__name__.startswith("max_pool2d") else 1
    plane = int(np.prod(shape[-spatial:], dtype=np.int64))
    planes = np.arange(int(np.prod(indices.shape[:-spatial], dtype=np.int64))).reshape(indices.shape[:-spatial])
    pos = (planes.reshape(planes.shape + (1,) * spatial) * plane + indices).reshape(-1)
    return elements([a.n("self")], np.zeros(pos.size, dtype=np.int64), pos, a.out_shape()), None


@op("_adaptive_avg_pool2d", "adaptive_avg_pool2d", "adaptive_avg_pool1d")
def _adaptive_avg(a: Args) -> Node:
    shape = a.shape("self")
    out = a.out_shape()
    spatial = 2 if "2d" in a.func.overloadpacket.__name__ else 1
    if any(o != 1 for o in out[-spatial:]):
        if any(i % o for i, o in zip(shape[-spatial:], out[-spatial:])):
            raise NoTranslation(Failure("adaptive average pooling to a size that does not divide the input's"))
        raise NoTranslation(Failure("adaptive average pooling to a size other than 1 (use avg_pool)"))
    axes = tuple(range(len(shape) - spatial, len(shape)))
    return reshaped(call("mean", a.n("self"), axis=axes if len(axes) > 1 else axes[0]), out)


# --- losses (reduction: 0 none, 1 mean, 2 sum) --------------------------------------------------------------------


def _reduce(a: Args, per_element: Node) -> Node:
    reduction = a.v("reduction", 1)
    return per_element if reduction == 0 else call("mean" if reduction == 1 else "sum", per_element)


@op("mse_loss")
def _mse(a: Args) -> Node:
    return _reduce(a, Bin("**", Bin("-", a.n("self"), a.n("target")), Num("2")))


@op("l1_loss")
def _l1(a: Args) -> Node:
    return _reduce(a, call("abs", Bin("-", a.n("self"), a.n("target"))))


@op("smooth_l1_loss", "huber_loss")
def _huber(a: Args) -> Node:
    d = Bin("-", a.n("self"), a.n("target"))
    ad = call("abs", d)
    if a.func.overloadpacket.__name__.startswith("huber"):
        delta = a.const(a.v("delta", 1.0))
        inside, outside = Bin("*", Num("1/2"), Bin("**", d, Num("2"))), Bin("*", delta, Bin("-", ad, Bin("*", Num("1/2"), delta)))
    else:
        delta = a.const(a.v("beta", 1.0))
        inside = Bin("/", Bin("*", Num("1/2"), Bin("**", d, Num("2"))), delta)
        outside = Bin("-", ad, Bin("*", Num("1/2"), delta))
    return _reduce(a, call("where", Cmp("<", ad, delta), inside, outside))


@op("soft_margin_loss")
def _soft_margin(a: Args) -> Node:
    return _reduce(a, call("log1p", call("exp", Neg(Bin("*", a.n("target"), a.n("self"))))))


@op("binary_cross_entropy")
def _bce(a: Args) -> Node:
    p, t = a.n("self"), a.n("target")
    clamp = Neg(Num("100"))  # torch clamps each log at -100
    term: Node = Neg(Bin("+", Bin("*", t, call("max", call("log", p), clamp)),
                   Bin("*", Bin("-", Num("1"), t), call("max", call("log1p", Neg(p)), clamp))))
    if a.bound.get("weight") is not None:
        term = Bin("*", a.n("weight"), term)
    return _reduce(a, term)


@op("binary_cross_entropy_with_logits")
def _bce_logits(a: Args) -> Node:
    x, t = a.n("self"), a.n("target")
    if a.bound.get("pos_weight") is None:
        term: Node = Bin("-", call("softplus", x), Bin("*", t, x))
    else:
        pw = a.n("pos_weight")
        term = Neg(Bin("+", Bin("*", Bin("*", pw, t), call("logsigmoid", x)),
                       Bin("*", Bin("-", Num("1"), t), call("logsigmoid", Neg(x)))))
    if a.bound.get("weight") is not None:
        term = Bin("*", a.n("weight"), term)
    return _reduce(a, term)


@op("nll_loss_forward", "nll_loss")
def _nll(a: Args) -> Any:
    logp = a.n("self")
    shape = a.shape("self")
    target = a.real("target").detach().cpu().numpy().astype(np.int64).reshape(-1)
    classes = shape[-1] if len(shape) == 1 else shape[1]
    if len(shape) > 2:
        raise NoTranslation(Failure("nll_loss over more than 2 dimensions"))
    ignore = a.v("ignore_index", -100)
    keep = target != ignore
    rows = np.arange(len(target))[keep]
    picked = elements([logp], np.zeros(len(rows), dtype=np.int64),
                      (rows * classes + target[keep]) if len(shape) == 2 else target[keep], (len(rows),))
    reduction = a.v("reduction", 1)
    if reduction == 0:
        if not keep.all():
            raise NoTranslation(Failure("nll_loss without reduction and with ignored targets"))
        out: Node = Neg(picked)
        if a.bound.get("weight") is not None:
            out = Bin("*", elements([a.n("weight")], np.zeros(len(rows), dtype=np.int64), target[keep], (len(rows),)), out)
        out = reshaped(out, a.out_shape()) if a.out_shape() != (len(rows),) else out
    elif a.bound.get("weight") is not None:
        w = elements([a.n("weight")], np.zeros(len(rows), dtype=np.int64), target[keep], (len(rows),))
        total = call("sum", Bin("*", w, picked))
        out = Neg(total if reduction == 2 else Bin("/", total, call("sum", w)))
    else:
        out = Neg(call("sum", picked) if reduction == 2 else call("mean", picked))
    return (out, None) if len(a.outs) == 2 else out



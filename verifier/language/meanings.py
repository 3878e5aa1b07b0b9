"""The meanings of the op table's tensor functions: sympy on object arrays of expressions (each element one
expression), torch on tensors. Imports neither sympy nor torch: each receives its module (S or T) as the first
argument, like the table's own entries (verifier.language.ops)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .shapes import Shape, normalize_axis


def np_module() -> Any:
    import numpy

    return numpy


def sym_reduce(fn: Callable[[Any, list[Any]], Any]) -> Callable[..., Any]:
    """Lift a reduction over a list of scalar expressions to an object array reduced along ``axis``."""

    def reduce(S: Any, a: Any, axis: Any = None) -> Any:
        np = np_module()
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


def sym_softmax(log: bool) -> Callable[..., Any]:
    def softmax(S: Any, a: Any, axis: int = -1) -> Any:
        np = np_module()
        (ax,) = normalize_axis(axis, a.ndim) or (0,)
        if a.ndim == 0:
            return np.array(S.Integer(0) if log else S.Integer(1), dtype=object)
        ex = np.frompyfunc(S.exp, 1, 1)(a)
        total = np.sum(ex, axis=ax, keepdims=True)
        if log:
            return a - np.frompyfunc(S.log, 1, 1)(total)
        return ex / total

    return softmax


def sym_matrix(fn: str) -> Callable[..., Any]:
    def matrix_op(S: Any, a: Any) -> Any:
        np = np_module()
        m = S.Matrix(a.tolist())
        if fn == "det":
            return np.array(m.det(method="berkowitz"), dtype=object)
        inv = m.inv(method="LU")
        return np.array(inv.tolist(), dtype=object).reshape(a.shape)

    return matrix_op


def torch_reduce(name: str) -> Callable[..., Any]:
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


def sym_cumulative(kind: str) -> Callable[..., Any]:
    def cumulative(S: Any, a: Any, axis: int = -1) -> Any:
        np = np_module()
        if a.ndim == 0:
            return a
        (ax,) = normalize_axis(axis, a.ndim) or (0,)
        moved = np.moveaxis(a, ax, -1)
        out = np.empty(moved.shape, dtype=object)
        for idx in np.ndindex(*moved.shape[:-1]):
            acc = None
            for k, x in enumerate(moved[idx]):
                term = S.exp(x) if kind == "logcumsumexp" else x
                acc = term if acc is None else (acc * term if kind == "cumprod" else acc + term)
                out[idx + (k,)] = S.log(acc) if kind == "logcumsumexp" else acc
        return np.moveaxis(out, -1, ax)

    return cumulative


def sym_normalize(S: Any, a: Any, axis: int = -1) -> Any:
    np = np_module()
    norm = np.frompyfunc(S.sqrt, 1, 1)(np.sum(a * a, axis=axis, keepdims=True))
    return a / norm


def sym_cosine(S: Any, a: Any, b: Any, axis: int = -1) -> Any:
    np = np_module()
    sq = np.frompyfunc(S.sqrt, 1, 1)
    return arr_obj(np.sum(a * b, axis=axis) / (sq(np.sum(a * a, axis=axis)) * sq(np.sum(b * b, axis=axis))))


def arr_obj(v: Any) -> Any:
    np = np_module()
    return v if isinstance(v, np.ndarray) else np.array(v, dtype=object)


def sym_layer_norm(S: Any, a: Any) -> Any:
    np = np_module()
    n = a.shape[-1]
    mean = np.sum(a, axis=-1, keepdims=True) / n
    var = np.sum((a - mean) ** 2, axis=-1, keepdims=True) / n
    eps = S.Rational(1e-5)  # torch's default eps, the float64 number exactly
    return (a - mean) / np.frompyfunc(S.sqrt, 1, 1)(var + eps)


def sym_logdet(absolute: bool) -> Callable[..., Any]:
    def logdet(S: Any, a: Any) -> Any:
        d = sym_matrix("det")(S, a).item()
        return np_module().array(S.log(S.Abs(d) if absolute else d), dtype=object)

    return logdet


def sym_cross(S: Any, a: Any, b: Any) -> Any:
    return np_module().array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]], dtype=object)


def sym_cross_entropy(S: Any, x: Any, t: Any) -> Any:
    np = np_module()
    if t.shape == x.shape[:-1]:  # class labels (an integer input): the negative log-likelihood of log_softmax
        return sym_nll(S, sym_softmax(True)(S, x, -1), t)
    terms = -t * sym_softmax(True)(S, x, -1)
    if x.ndim == 1:
        return np.array(S.Add(*terms), dtype=object)
    return np.array(S.Add(*terms.reshape(-1)) / x.shape[0], dtype=object)


def sym_elements(S: Any, *args: Any, source: tuple[int, ...] = (), index: tuple[int, ...] = (),
                  shape: tuple[int, ...] = ()) -> Any:
    np = np_module()
    flats = [np.asarray(a, dtype=object).reshape(-1) for a in args]
    idx = np.asarray(index, dtype=np.int64)
    if not source:
        return flats[0][idx].reshape(shape)
    src = np.asarray(source, dtype=np.int64)
    out = np.empty(len(idx), dtype=object)
    for k, flat in enumerate(flats):
        chosen = src == k
        out[chosen] = flat[idx[chosen]]
    return out.reshape(shape)


def torch_elements(T: Any, *args: Any, source: tuple[int, ...] = (), index: tuple[int, ...] = (),
                    shape: tuple[int, ...] = ()) -> Any:
    tensors = [a if isinstance(a, T.Tensor) else T.tensor(a) for a in args]
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = T.promote_types(dtype, t.dtype)
    flat = T.cat([t.reshape(-1).to(dtype) for t in tensors])
    sizes = [0] + [t.numel() for t in tensors]
    offsets = T.tensor(sizes, device=flat.device).cumsum(0)
    idx = T.tensor(index, dtype=T.int64, device=flat.device)
    if source:
        idx = idx + offsets[T.tensor(source, dtype=T.int64, device=flat.device)]
    return flat[idx].reshape(shape)


def elements_shape(*shapes: Shape, source: tuple[int, ...] = (), index: tuple[int, ...] = (),
                    shape: tuple[int, ...] = ()) -> Shape:
    size = 1
    for d in shape:
        size *= d
    if len(index) != size or (source and len(source) != size):
        raise ValueError(f"an index map of {len(index)} elements for the shape {list(shape)}")
    sizes = []
    for s in shapes:
        n = 1
        for d in s:
            n *= d
        sizes.append(n)
    for k, i in enumerate(index):
        if not 0 <= i < sizes[source[k] if source else 0]:
            raise ValueError(f"element {i} of an argument of {sizes[source[k] if source else 0]} elements")
    return tuple(shape)


def variance(S: Any, xs: list[Any]) -> Any:
    mean = S.Add(*xs) / len(xs)
    return S.Add(*((x - mean) ** 2 for x in xs)) / (len(xs) - 1)


def integer_of(v: Any) -> int:
    """A degree or order given as a number: torch takes a Python int."""
    return int(v.item()) if hasattr(v, "item") else int(v)


def torch_bessel(T: Any, name: str, order: int, x: Any) -> Any:
    kind = {"besselj": "bessel_j", "bessely": "bessel_y", "besseli": "modified_bessel_i", "besselk": "modified_bessel_k"}
    if order not in (0, 1):
        raise ValueError(f"torch has {name} of orders 0 and 1 only, not {order}")
    return getattr(T.special, f"{kind[name]}{order}")(x)


def polynomial(kind: str) -> Callable[..., Any]:
    """Degree-n orthogonal polynomials in x by their three-term recurrences (n a constant integer >= 0)."""

    def sym(S: Any, x: Any, n: Any) -> Any:
        n = int(n)
        first = {"t": x, "u": 2 * x, "v": 2 * x - 1, "w": 2 * x + 1, "h": 2 * x, "he": x, "l": 1 - x, "p": x}[kind]
        prev, cur = S.Integer(1), first
        if n == 0:
            return prev
        for k in range(1, n):
            if kind in ("t", "u", "v", "w"):
                prev, cur = cur, 2 * x * cur - prev
            elif kind == "h":
                prev, cur = cur, 2 * x * cur - 2 * k * prev
            elif kind == "he":
                prev, cur = cur, x * cur - k * prev
            elif kind == "l":
                prev, cur = cur, ((2 * k + 1 - x) * cur - k * prev) / (k + 1)
            else:
                prev, cur = cur, ((2 * k + 1) * x * cur - k * prev) / (k + 1)
        return S.expand(cur)

    return sym


def softplus_meaning(S: Any, x: Any, beta: Any, threshold: Any) -> Any:
    b = 1 if beta is None else S.Rational(beta)
    smooth = S.log(1 + S.exp(b * x)) / b
    return smooth if threshold is None else S.Piecewise((x, b * x > S.Rational(threshold)), (smooth, True))


def clamp_meaning(S: Any, x: Any, lo: Any, hi: Any, low: Any, high: Any) -> Any:
    lo, hi = given(lo, low), given(hi, high)
    out = x if lo is None else S.Max(x, lo)
    return out if hi is None else S.Min(out, hi)


def given(positional: Any, keyword: Any) -> Any:
    return keyword if positional is None else positional
def huber_meaning(S: Any, a: Any, b: Any, delta: Any, huber: bool) -> Any:
    """Huber (delta (|d| - delta / 2) outside) or smooth L1 (|d| - beta / 2 outside, d**2 / (2 beta) inside)."""
    d = a - b
    inside = d**2 / 2 if huber else d**2 / (2 * delta)
    outside = delta * (S.Abs(d) - delta / 2) if huber else S.Abs(d) - delta / 2
    return S.Piecewise((inside, S.Abs(d) < delta), (outside, True))


# --- tensor shaping: numpy's own operations on object arrays, torch's on tensors -------------------------------------


def index_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """A getitem key as Python indexes: ints, and ("slice", start, stop, step) as slices."""
    return tuple(slice(k[1], k[2], k[3]) if isinstance(k, tuple) else k for k in key)


def shape_of(fn: Callable[..., Any]) -> Callable[..., Shape]:
    """A shape rule from numpy's own operation on arrays of those shapes (broadcast views: nothing allocated)."""

    def rule(*shapes: Shape, **kw: Any) -> Shape:
        np = np_module()
        try:
            return tuple(np.shape(fn(np, *(np.broadcast_to(np.float64(0), s) for s in shapes), **kw)))
        except (ValueError, IndexError, TypeError) as exc:
            raise ValueError(str(exc)) from None

    return rule


def sym_einsum(S: Any, *args: Any, subscripts: str = "") -> Any:
    np = np_module()
    return np.asarray(np.einsum(subscripts, *[np.asarray(a, dtype=object) for a in args]), dtype=object)


# --- integer inputs (labels, indices): picked by comparison, so the expression holds at every point -----------------


def pick(S: Any, values: list[Any], index: Any) -> Any:
    """values[index] for an integer-valued index expression: the sum of values[c] where index == c."""
    return S.Add(*(S.Piecewise((v, S.Eq(index, c)), (0, True)) for c, v in enumerate(values)))


def sym_gather(S: Any, x: Any, index: Any, axis: int = -1) -> Any:
    """torch.gather(x, axis, index): out[pos] = x[pos with axis replaced by index[pos]]."""
    np = np_module()
    ax = int(axis) % x.ndim
    out = np.empty(index.shape, dtype=object)
    for pos in np.ndindex(*index.shape):
        column = [x[pos[:ax] + (c,) + pos[ax + 1:]] for c in range(x.shape[ax])]
        out[pos] = pick(S, column, index[pos])
    return out


def sym_index_by(S: Any, x: Any, index: Any) -> Any:
    """x[index] for an integer tensor index: rows of x (along its first axis)."""
    np = np_module()
    out = np.empty(index.shape + x.shape[1:], dtype=object)
    for pos in np.ndindex(*index.shape):
        for rest in np.ndindex(*x.shape[1:]):
            out[pos + rest] = pick(S, [x[(c,) + rest] for c in range(x.shape[0])], index[pos])
    return out


def sym_nll(S: Any, logp: Any, labels: Any) -> Any:
    """nll_loss(log-probabilities [N, C] or [C], class labels [N] or []): the mean over N of -logp[i, labels[i]]."""
    np = np_module()
    if logp.ndim == 1:
        return np.array(-pick(S, list(logp), labels[()]), dtype=object)
    picked = [pick(S, list(logp[i]), labels[i]) for i in range(logp.shape[0])]
    return np.array(-S.Add(*picked) / len(picked), dtype=object)


"""Array helpers of the vectorised reference: broadcasting back, linear maps forward and transposed."""

from __future__ import annotations

import math

import numpy as np
import scipy.special as sc

from .plan import Linear, Reduction, Shape

# --- numbers ---------------------------------------------------------------------------------------------------------


def aligned(shape: Shape, ndim: int) -> Shape:
    return (1,) * (ndim - len(shape)) + tuple(shape)


def unbroadcast(a: np.ndarray, shape: Shape) -> np.ndarray:
    """Sum a broadcast array back to ``shape`` (numpy's pairwise summation)."""
    a = np.asarray(a)
    lead = a.ndim - len(shape)
    if lead > 0:
        a = a.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, (d, s) in enumerate(zip(a.shape, shape)) if s == 1 and d != 1)
    if axes:
        a = a.sum(axis=axes, keepdims=True)
    return a.reshape(shape)


def expand_back(ct: np.ndarray, r: Reduction) -> np.ndarray:
    """A reduction's cotangent (or value) broadcast back over its argument's shape."""
    ct = np.asarray(ct)
    if not r.keepdims:
        axes = range(len(r.arg.shape)) if r.axes is None else r.axes
        for ax in sorted(axes):
            ct = np.expand_dims(ct, ax)
    return np.broadcast_to(ct, r.arg.shape)


def _others(a: np.ndarray, axes: tuple[int, ...] | None) -> np.ndarray:
    """Product of every other element of each reduced group (no division: exact with zeros)."""
    axes = tuple(range(a.ndim)) if axes is None else axes
    keep = [i for i in range(a.ndim) if i not in axes]
    moved = np.transpose(a, keep + list(axes))
    lead = moved.shape[: len(keep)]
    flat = moved.reshape(lead + (-1,))
    ones = np.ones(lead + (1,))
    left = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    right = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    out = (left * right).reshape(moved.shape)
    return np.transpose(out, np.argsort(keep + list(axes)))


def forward_reduce(r: Reduction, a: np.ndarray) -> np.ndarray:
    axis = r.axes
    with np.errstate(all="ignore"):
        if r.op == "sum":
            return np.sum(a, axis=axis, keepdims=r.keepdims)
        if r.op == "mean":
            return np.mean(a, axis=axis, keepdims=r.keepdims)
        if r.op == "prod":
            return np.prod(a, axis=axis, keepdims=r.keepdims)
        if r.op == "logsumexp":
            return np.asarray(sc.logsumexp(a, axis=axis, keepdims=r.keepdims))
        return np.sqrt(np.sum(a * a, axis=axis, keepdims=r.keepdims))




def _as2d(a: np.ndarray, first: bool) -> np.ndarray:
    """A 1-D operand of matmul as torch reads it: a row on the left, a column on the right."""
    if a.ndim == 1:
        return a[None, :] if first else a[:, None]
    return a


def linear_forward(r: Linear, vals: list[np.ndarray]) -> np.ndarray:
    if r.op == "transpose":
        return np.swapaxes(vals[0], -1, -2)
    if r.op == "dot":
        return np.asarray(np.dot(vals[0], vals[1]))
    return np.asarray(np.matmul(vals[0], vals[1]))


def linear_vjp(r: Linear, ct: np.ndarray, vals: list[np.ndarray]) -> list[np.ndarray]:
    """Cotangents of the arguments (shapes of the arguments)."""
    if r.op == "transpose":
        return [np.swapaxes(ct, -1, -2)]
    a, b = vals
    if r.op == "dot":
        return [ct * b, ct * a]
    a2, b2 = _as2d(a, True), _as2d(b, False)
    c2 = np.reshape(ct, (a2.shape[0], b2.shape[1]))
    return [(c2 @ b2.T).reshape(a.shape), (a2.T @ c2).reshape(b.shape)]


def linear_jvp(r: Linear, vals: list[np.ndarray], tans: list[np.ndarray]) -> np.ndarray:
    if r.op == "transpose":
        return np.swapaxes(tans[0], -1, -2)
    (a, b), (ta, tb) = vals, tans
    fn = np.dot if r.op == "dot" else np.matmul
    return np.asarray(fn(ta, b) + fn(a, tb))


def reduced_count(r: Reduction) -> int:
    axes = range(len(r.arg.shape)) if r.axes is None else r.axes
    return math.prod(r.arg.shape[i] for i in axes)


def local_derivative(r: Reduction, a: np.ndarray, value: np.ndarray) -> np.ndarray:
    """d reduction / d each argument element."""
    with np.errstate(all="ignore"):
        if r.op == "sum":
            return np.ones_like(a)
        if r.op == "mean":
            return np.full_like(a, 1.0 / reduced_count(r))
        if r.op == "prod":
            return _others(a, r.axes)
        if r.op == "logsumexp":
            return np.exp(a - expand_back(value, r))
        return a / expand_back(value, r)

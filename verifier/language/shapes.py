"""Shape arithmetic shared by the op table and the shape inference: broadcasting, axes, reductions."""

from __future__ import annotations

from typing import Any

Shape = tuple[int, ...]


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


def kept_shape(shape: Shape, axis: Any = None) -> Shape:
    """A reduction's shape with keepdim: the reduced axes kept with size 1."""
    axes = normalize_axis(axis, len(shape))
    return tuple(1 if axes is None or i in axes else n for i, n in enumerate(shape))

"""The points section of a case: values, samples and domains, each checked against its input's shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import LimitError
from ..language.shapes import Shape
from ..limits import LIMITS, flag
from .fields import Ctx, kind, number, tensor
from .model import Input


def domain_bounds(doc: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """The validated domain (the points were already built from it) as bounds, for plots and sweeps."""
    raw = doc.get("domain") or {}
    return {n: (number(b[0]), number(b[1])) for n, b in raw.items()}


def parse_points(ctx: Ctx, doc: Mapping[str, Any], inputs: dict[str, Input], seed: int,
            complex_case: bool = False) -> tuple[dict[str, np.ndarray], ...]:
    base = {n: i.value for n, i in inputs.items()}
    points: list[dict[str, np.ndarray]] = []
    raw = doc.get("points")
    if raw == "auto":
        raw = None
    elif isinstance(raw, list):
        raw = [entry for entry in raw if entry != "auto"] or None
    if raw is not None:
        if not isinstance(raw, list) or not raw:
            raise ctx.error("points", f"points is a list of mappings {{input: value}}, got {kind(raw)}")
        for k, entry in enumerate(raw):
            if not isinstance(entry, Mapping):
                raise ctx.error("points", f"point {k + 1} is {kind(entry)}, expected a mapping {{input: value}}")
            point = dict(base)
            for n, v in entry.items():
                if n not in inputs:
                    raise ctx.error("points", f"point {k + 1} names {n!r}, which is not an input; inputs: "
                                    f"{', '.join(inputs)}", entry, n)
                point[n] = fit_value(ctx, v, inputs[n], f"points[{k + 1}].{n}", entry, complex_values=complex_case)
            points.append(point)
    domain = doc.get("domain")
    if domain is not None:
        samples = doc.get("samples", 5)
        if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples:
            raise ctx.error("samples", f"samples is a positive integer, got {kind(samples)}")
        if samples > LIMITS.points:
            raise LimitError(f"samples is {samples}; the limit is {LIMITS.points} (raise it with {flag('points')})",
                             file=ctx.file, line=ctx.locate("samples"), case=ctx.name, key="samples")
        rng = np.random.default_rng([seed, 7919])
        bounds = parse_bounds(ctx, doc, "domain", inputs)
        for _ in range(samples):
            point = dict(base)
            for n, (lo, hi) in bounds.items():
                point[n] = rng.uniform(lo, hi, size=inputs[n].shape)
                if complex_case:  # the imaginary part from the same interval
                    point[n] = point[n] + 1j * rng.uniform(lo, hi, size=inputs[n].shape)
            points.append(point)
    elif "samples" in doc:
        raise ctx.error("samples", "samples needs a domain: {input: [low, high]}")
    if len(points) > LIMITS.points:
        raise LimitError(f"{len(points)} points; the limit is {LIMITS.points} (raise it with {flag('points')})",
                         file=ctx.file,
                         line=ctx.line(doc, "points"), case=ctx.name, key="points")
    return tuple(points) or (base,)


def wants_auto(doc: Mapping[str, Any]) -> bool:
    """points: auto, or "auto" among the listed points."""
    raw = doc.get("points")
    return raw == "auto" or (isinstance(raw, list) and "auto" in raw)


def parse_bounds(ctx: Ctx, doc: Mapping[str, Any], key: str, inputs: Mapping[str, Input]) -> dict[str, tuple[float, float]]:
    """``{input: [low, high]}`` with finite low < high, for ``domain`` and ``sweep``."""
    raw = doc.get(key)
    if not isinstance(raw, Mapping) or not raw:
        raise ctx.error(key, f"{key} is a mapping {{input: [low, high]}}, got {kind(raw)}")
    bounds = {}
    for n, b in raw.items():
        if n not in inputs:
            raise ctx.error(key, f"{n!r} is not an input; inputs: {', '.join(inputs)}", raw, n)
        try:
            if not isinstance(b, list) or len(b) != 2:
                raise ValueError(f"expected [low, high], got {kind(b)}")
            lo, hi = number(b[0]), number(b[1])
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise ValueError(f"expected finite low < high, got {b}")
        except ValueError as exc:
            raise ctx.error(f"{key}.{n}", str(exc), raw, n) from None
        bounds[n] = (lo, hi)
    return bounds


def fit_value(ctx: Ctx, raw: Any, target: Input | Shape, key: str, mapping: Any, subkey: Any = None,
         complex_values: bool = False) -> np.ndarray:
    """A literal value checked against (or broadcast from a scalar to) the expected shape."""
    shape = target.shape if isinstance(target, Input) else target
    try:
        array = tensor(raw, complex_values=complex_values)
    except ValueError as exc:
        raise ctx.error(key, str(exc), mapping, subkey if subkey is not None else key.rsplit(".", 1)[-1]) from None
    if array.shape == shape:
        return array
    if array.ndim == 0:
        return np.full(shape, array[()])
    raise ctx.error(key, f"value has shape {list(array.shape)}, expected {list(shape)}", mapping,
                    subkey if subkey is not None else key.rsplit(".", 1)[-1])

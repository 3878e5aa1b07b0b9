"""The building blocks of case validation: error context with line numbers, numbers, tensors and value specs."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import CaseError, LimitError
from ..language.ops import CONSTANTS
from ..language.parse import did_you_mean
from ..language.shapes import Shape
from ..limits import LIMITS, flag

VAR_RE = re.compile(r"^(?!.*__)[A-Za-z][A-Za-z0-9_]{0,63}$")  # no '__': reserved for element symbols
INPUT_KEYS = ("value", "shape", "sample", "seed", "requires_grad", "fill", "integer", "dtype")
CONSTRUCTORS = ("eye", "ones", "zeros", "arange", "full")
RESERVED = {"output"}


def kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r:.60})"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


class Ctx:
    """Builds errors that name the line of a key inside the case being validated."""

    def __init__(self, doc: Mapping[str, Any], file: str | None) -> None:
        self.doc = doc
        self.file = file
        self.name = doc.get("name") if isinstance(doc.get("name"), str) else None

    def line(self, mapping: Any, key: Any = None) -> int | None:
        lines = getattr(mapping, "key_lines", {})
        return lines.get(key) or getattr(mapping, "line", None) or getattr(self.doc, "line", None)

    def locate(self, key: str) -> int | None:
        """The line of a dotted key like 'inputs.x.shape': the deepest part of the path that has a line."""
        node: Any = self.doc
        line = self.line(self.doc, key.split(".")[0])
        for part in key.split("."):
            part = part.split("[")[0]
            if not isinstance(node, Mapping) or part not in node:
                break
            line = getattr(node, "key_lines", {}).get(part, line)
            node = node[part]
        return line

    def error(self, key: str, message: str, mapping: Any = None, subkey: Any = None) -> CaseError:
        if mapping is not None:
            line = self.line(mapping, subkey if subkey is not None else key)
        else:
            line = self.locate(key)
        return CaseError(message, file=self.file, line=line, case=self.name, key=key)

    def wrap(self, exc: CaseError, key: str, mapping: Any = None, subkey: Any = None) -> CaseError:
        return exc.located(file=self.file, line=self.line(mapping if mapping is not None else self.doc,
                                                          subkey if subkey is not None else key),
                           case=self.name, key=key)


def check_keys(ctx: Ctx, mapping: Mapping[str, Any], allowed: tuple[str, ...], key: str) -> None:
    for k in mapping:
        if k not in allowed:
            hint = did_you_mean(k, allowed)
            where = f"{key}.{k}" if key else str(k)
            raise ctx.error(where, f"unknown key {k!r}{hint}; allowed keys: {', '.join(allowed)}", mapping, k)


def number(value: Any, *, finite: bool = True) -> float:
    """A YAML scalar as a float ('1e-12' is a string to YAML 1.1); ValueError when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {kind(value)}")
    if isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {kind(value)}") from None
    else:
        try:
            out = float(value)
        except OverflowError:
            raise ValueError(f"number {value} is too large") from None
    if finite and not math.isfinite(out):
        raise ValueError(f"expected a finite number, got {value!r}")
    return out


def complex_number(value: Any) -> complex:
    """A YAML scalar as a complex number: a real number, or a string such as '1+2j', '-0.5j', '3-4e-2j' (read by
    Python's complex(), which parses a numeric literal and nothing else)."""
    if isinstance(value, str) and "j" in value:
        try:
            out = complex(value.strip().replace(" ", ""))
        except ValueError:
            raise ValueError(f"expected a complex number such as 1+2j, got {kind(value)}") from None
        if not (math.isfinite(out.real) and math.isfinite(out.imag)):
            raise ValueError(f"expected a finite complex number, got {value!r}")
        return out
    return complex(number(value))


def tensor(value: Any, *, finite: bool = False, complex_values: bool = False) -> np.ndarray:
    """A number or a nested list of numbers as a float64 array (complex128 with complex_values); ValueError when
    ragged or not numeric.

    A numeric numpy array (from the Python API, never from YAML) is taken as it is, copied."""
    if complex_values:
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiuc":
            return np.array(value, dtype=np.complex128)
        items: list[Any] = []
        shape = _nested_shape(value, items, 0) if isinstance(value, list) else ()
        if math.prod(shape) > LIMITS.elements:
            raise ValueError(f"literal has {math.prod(shape)} elements; the limit is {LIMITS.elements}")
        return np.array([complex_number(v) for v in (items if shape else [value])], dtype=np.complex128).reshape(shape)
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiu":
        if value.size > LIMITS.elements:
            raise ValueError(f"array has {value.size} elements; the limit is {LIMITS.elements} "
                             f"(raise it with {flag('elements')})")
        if value.ndim > 8 or value.size == 0:
            raise ValueError("arrays must be non-empty with at most 8 dimensions")
        out = np.array(value, dtype=np.float64)
        if finite and not np.isfinite(out).all():
            raise ValueError("expected finite numbers, got NaN or infinity")
        return out
    if isinstance(value, list):
        flat: list[float] = []
        shape = _nested_shape(value, flat, 0)
        if math.prod(shape) > LIMITS.elements:
            raise ValueError(f"literal has {math.prod(shape)} elements; the limit is {LIMITS.elements} "
                             f"(raise it with {flag('elements')})")
        return np.array([number(v, finite=finite) for v in flat], dtype=np.float64).reshape(shape)
    return np.array(number(value, finite=finite), dtype=np.float64)


def _nested_shape(value: Any, flat: list[Any], depth: int) -> Shape:
    if depth > 8:
        raise ValueError("literal tensor nests deeper than 8 dimensions")
    if not isinstance(value, list):
        flat.append(value)
        return ()
    if not value:
        raise ValueError("empty lists are not tensors here")
    shapes = {_nested_shape(v, flat, depth + 1) for v in value}
    if len(shapes) != 1:
        raise ValueError("ragged nested list: every row must have the same length")
    return (len(value),) + shapes.pop()


def _shape(ctx: Ctx, value: Any, key: str, mapping: Any) -> Shape:
    if isinstance(value, bool) or not (isinstance(value, list) or isinstance(value, int)):
        raise ctx.error(key, f"shape must be a list of non-negative integers, got {kind(value)}", mapping, "shape")
    dims = value if isinstance(value, list) else [value]
    if len(dims) > 8 or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d for d in dims):
        raise ctx.error(key, f"shape must be a list of at most 8 positive integers, got {value!r:.80}", mapping, "shape")
    if math.prod(dims) > LIMITS.elements:
        raise LimitError(f"shape {dims} has {math.prod(dims)} elements; the limit is {LIMITS.elements} "
                         f"(raise it with {flag('elements')})",
                         file=ctx.file, line=ctx.line(mapping, "shape"), case=ctx.name, key=key)
    return tuple(dims)


def value_spec(ctx: Ctx, spec: Any, key: str, seed: int, *, default_shape: Shape | None = None,
               complex_values: bool = False) -> tuple[np.ndarray, bool]:
    """Parse an input-like value: number, literal list or {value|sample, shape, ...}; returns (array, requires_grad).
    With complex_values, numbers may be complex ('1+2j') and a sample draws the real and imaginary parts."""
    parent = spec if isinstance(spec, Mapping) else None
    if not isinstance(spec, Mapping):
        try:
            return tensor(spec, complex_values=complex_values), True
        except ValueError as exc:
            raise ctx.error(key, str(exc)) from None
    check_keys(ctx, spec, INPUT_KEYS, key)
    if "dtype" in spec and spec["dtype"] not in ("int64", "complex128", "complex64"):
        raise ctx.error(f"{key}.dtype", f"an input's own dtype is int64 (class labels, indices), complex128 or "
                        f"complex64 (a complex input beside real ones), got {kind(spec['dtype'])}; the case's dtype "
                        "sets the others", parent, "dtype")
    requires_grad = spec.get("requires_grad", spec.get("dtype") != "int64")
    if not isinstance(requires_grad, bool):
        raise ctx.error(f"{key}.requires_grad", f"expected true or false, got {kind(requires_grad)}", parent,
                        "requires_grad")
    shape = _shape(ctx, spec["shape"], key, parent) if "shape" in spec else default_shape
    if "sample" in spec and "value" in spec:
        raise ctx.error(key, "give either value or sample, not both", parent, "sample")
    if "sample" in spec:
        drawn = _sample(ctx, spec, key, shape or () if not complex_values else (2,) + (shape or ()), spec.get("seed", seed))
        return (drawn[0] + 1j * drawn[1] if complex_values else drawn), requires_grad
    if "value" not in spec:
        raise ctx.error(key, "needs a value (number, list or one of " + ", ".join(CONSTRUCTORS) + ") or a sample",
                        parent)
    raw = spec["value"]
    if isinstance(raw, str) and raw in CONSTRUCTORS:
        if shape is None:
            raise ctx.error(f"{key}.shape", f"constructor {raw!r} needs a shape", parent, "value")
        made = _construct(ctx, raw, shape, spec, key)
        return (made.astype(np.complex128) if complex_values else made), requires_grad
    try:
        array = tensor(raw, complex_values=complex_values)
    except ValueError as exc:
        hint = f"; constructors: {', '.join(CONSTRUCTORS)}" if isinstance(raw, str) else ""
        raise ctx.error(f"{key}.value", f"{exc}{hint}", parent, "value") from None
    if shape is not None and array.shape != shape:
        if array.ndim:
            raise ctx.error(f"{key}.shape", f"value has shape {list(array.shape)} but shape says {list(shape)}",
                            parent, "shape")
        array = np.full(shape, array[()])
    return array, requires_grad


def _construct(ctx: Ctx, name: str, shape: Shape, spec: Mapping[str, Any], key: str) -> np.ndarray:
    if name == "eye":
        if len(shape) != 2:
            raise ctx.error(f"{key}.shape", f"eye needs a 2-D shape, got {list(shape)}", spec, "shape")
        return np.eye(*shape)
    if name == "ones":
        return np.ones(shape)
    if name == "zeros":
        return np.zeros(shape)
    if name == "arange":
        return np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    if "fill" not in spec:
        raise ctx.error(f"{key}.fill", "constructor 'full' needs a fill value", spec, "value")
    try:
        return np.full(shape, number(spec["fill"]))
    except ValueError as exc:
        raise ctx.error(f"{key}.fill", str(exc), spec, "fill") from None


def _sample(ctx: Ctx, spec: Mapping[str, Any], key: str, shape: Shape, seed: Any) -> np.ndarray:
    sample = spec["sample"]
    # the user's seed is an integer; without one the case's seed and the input's position seed the draw
    if "seed" in spec and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ctx.error(f"{key}.seed", f"seed must be a non-negative integer, got {kind(seed)}", spec, "seed")
    if not isinstance(sample, Mapping) or len(sample) != 1 or next(iter(sample)) not in ("uniform", "normal"):
        raise ctx.error(f"{key}.sample", "sample is {uniform: [low, high]} or {normal: [mean, std]}, got "
                        f"{kind(sample)}", spec, "sample")
    (dist, params), = sample.items()
    try:
        if not isinstance(params, list) or len(params) != 2:
            raise ValueError(f"{dist} takes two numbers, got {kind(params)}")
        a, b = number(params[0]), number(params[1])
        if (dist == "uniform" and not a < b) or (dist == "normal" and not b > 0):
            raise ValueError(f"{dist} needs {'low < high' if dist == 'uniform' else 'std > 0'}, got {params}")
    except ValueError as exc:
        raise ctx.error(f"{key}.sample", str(exc), spec, "sample") from None
    rng = np.random.default_rng(seed)
    return rng.uniform(a, b, size=shape) if dist == "uniform" else rng.normal(a, b, size=shape)


def variable_name(ctx: Ctx, name: Any, key: str, mapping: Any) -> str:
    if not isinstance(name, str) or not VAR_RE.match(name):
        raise ctx.error(key, f"name {name!r:.60} must be a letter followed by letters, digits or single '_'", mapping, name)
    if name in CONSTANTS or name in RESERVED:  # a function's name may name an input (beta, gamma): calls are calls
        raise ctx.error(key, f"name {name!r} is taken by the language (a constant or 'output')", mapping, name)
    return name


_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"


IMPL_RE = re.compile(rf"^(?!.*__){_DOTTED}:{_DOTTED}$")  # package.module:attr, no dunder anywhere

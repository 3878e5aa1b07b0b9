"""The floating-point formats a case can run in, described with numpy only (no torch, no sympy): rounding to the
format, its spacing (one ULP), its unit roundoff and range. numpy has no bfloat16, so bfloat16 is described by its
bits: float32's exponent range with an 8-bit significand."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy loads on the first rounding, not on import (the pytest plugin reads the names)
    import numpy as np

FLOATS = ("float64", "float32", "float16", "bfloat16")
HALF = ("float16", "bfloat16")
# complex dtypes and the real dtype of their parts (a complex tensor is stored as real pairs)
COMPLEX = {"complex128": "float64", "complex64": "float32"}
COMPLEX_OF = {parts: name for name, parts in COMPLEX.items()}

# bits of significand precision p (with the implicit bit); the unit roundoff is u = 2**-p: one rounding to nearest has
# a relative error of at most u
PRECISION = {"float64": 53, "float32": 24, "float16": 11, "bfloat16": 8}
UNIT_ROUNDOFF = {name: 2.0 ** -p for name, p in PRECISION.items()}
# the smallest exponent of a normal number; below it the spacing stays that of the subnormals
MIN_EXPONENT = {"float64": -1022, "float32": -126, "float16": -14, "bfloat16": -126}
LARGEST = {"float64": float.fromhex("0x1.fffffffffffffp1023"), "float32": float.fromhex("0x1.fffffep127"),
           "float16": 65504.0, "bfloat16": float.fromhex("0x1.fep127")}


def smallest_subnormal(dtype: str) -> float:
    return 2.0 ** (MIN_EXPONENT[dtype] - PRECISION[dtype] + 1)


def smallest_normal(dtype: str) -> float:
    return 2.0 ** MIN_EXPONENT[dtype]


def round_to(values: np.ndarray, dtype: str) -> np.ndarray:
    """Values rounded to nearest (ties to even) in the format, returned as float64 (every such value is a float64)."""
    import numpy as np

    a = np.asarray(values, dtype=np.float64)
    if dtype == "float64":
        return a.copy()
    if dtype != "bfloat16":
        with np.errstate(over="ignore"):
            return a.astype(dtype).astype(np.float64)
    # bfloat16 is the upper half of a float32: round the float32 bits to their top 16 (as torch does, through float32)
    with np.errstate(over="ignore"):
        bits = np.ascontiguousarray(a.astype(np.float32)).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)
    out = rounded.astype(np.float64)
    nan = np.isnan(a)
    out[nan] = np.nan  # a NaN's payload must not round into an infinity
    return out.reshape(a.shape)


def ulp_of(value: float, dtype: str) -> float:
    """ulp() of one finite number, without building an array for it where the format is float64 or float32 (the
    same spacing: math.ulp is IEEE's, as np.spacing is)."""
    if dtype == "float64":
        return math.ulp(abs(value))
    return float(ulp(value, dtype))  # type: ignore[arg-type]  # a number is a 0-d array to numpy


def ulp(values: np.ndarray, dtype: str) -> np.ndarray:
    """The spacing of the format at each value (one unit in the last place), as float64."""
    import numpy as np

    a = np.abs(np.asarray(values, dtype=np.float64))
    if dtype in ("float64", "float32", "float16"):
        with np.errstate(over="ignore", invalid="ignore"):
            return np.abs(np.spacing(a.astype(dtype))).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        _, e = np.frexp(a)  # a = m * 2**e with m in [0.5, 1): the spacing is 2**(e - p)
        spacing = np.ldexp(1.0, np.maximum(e - PRECISION[dtype], MIN_EXPONENT[dtype] - PRECISION[dtype] + 1))
    spacing = np.where(a == 0, smallest_subnormal(dtype), spacing)
    return np.where(np.isfinite(a), spacing, np.nan)

"""Exact values as numbers: what the symbolic side hands to the comparator (numpy only, no sympy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

import numpy as np


class Code(Enum):
    """Why an exact value does not exist (or needs a note), set where the reference knows it."""

    POLE = "pole"  # the function (or a derivative) is infinite here
    OUTSIDE = "outside"  # the point is outside a function's domain (log of a negative number, asin of 2)
    NONFINITE_INPUT = "nonfinite_input"  # an input is NaN or infinite
    INDETERMINATE = "indeterminate"  # the formula is 0·inf at the point (a limit may still exist)
    ZERO_WEIGHT = "zero_weight"  # a zero weight meets an entry that does not exist (torch's products: 0·inf)
    BEYOND_RANGE = "beyond_range"  # the value or its computation is beyond the dtype's largest finite value
    REMOVABLE = "removable"  # note: the formula is singular here, its limit is the exact value
    SINGULAR = "singular"  # note: as REMOVABLE, at a point where the function itself is singular (another partial
    # of the same output is a pole there: xlogy's d/da = log(b) at b = 0): torch's NaN there is an edge
    KINK = "kink"  # note: a 0·inf formula whose one-sided limits differ
    OVERFLOW = "overflow"  # note: the exact value overflows float64


class Reason(str):
    """A reason text (the words, for reports) with its code (the data every decision reads)."""

    code: Code

    def __new__(cls, text: str, code: Code) -> Reason:
        obj = super().__new__(cls, text)
        obj.code = code
        return obj

    def __reduce__(self) -> tuple[type, tuple[str, Code]]:  # across worker processes and the cache
        return (Reason, (str(self), self.code))


def code_of(reason: str) -> Code:
    """The code of a reason (OUTSIDE for a plain string: a reason without a code is of a domain)."""
    return getattr(reason, "code", Code.OUTSIDE)


@dataclass
class Exact:
    """Exact values rounded to float64: ``lo == hi`` where the derivative exists, the one-sided limits at kinks.

    ``undefined`` maps a flat index to the reason the value does not exist there.
    """

    lo: np.ndarray
    hi: np.ndarray
    undefined: dict[int, str] = field(default_factory=dict)
    kinks: np.ndarray | None = None  # bool mask: lo/hi are the left/right derivatives
    notes: dict[int, str] = field(default_factory=dict)  # e.g. the exact value overflows float64
    # The absolute error that rounding in the case's dtype can do to each element (float16, bfloat16: the running
    # error bound of verifier.rounding), allowed on top of the dtype's tolerance; None: the tolerance alone.
    slack: np.ndarray | None = None
    # Set by the vectorised reference, whose lo/hi are float64 evaluations: recompute these flat indices exactly
    # (in place) before a comparison trusts them.
    refine: Callable[..., None] | None = field(default=None, repr=False, compare=False)
    exact_at: set[int] = field(default_factory=set, repr=False, compare=False)  # flat indices already recomputed
    # How many times over the quantity is summed (a gradient accumulated over k backward calls is k times one): the
    # rounding torch may do on an exact zero grows with it (checks.context._zeros_floored)
    times: float = 1.0

    @property
    def value(self) -> np.ndarray:
        return self.lo

    def copy(self) -> Exact:
        """An independent copy (its arrays and maps too): a kept quantity handed out again, whatever its last user
        wrote into it."""
        lo = self.lo.copy()
        return Exact(lo, lo if self.hi is self.lo else self.hi.copy(), dict(self.undefined),
                     None if self.kinks is None else self.kinks.copy(), dict(self.notes),
                     None if self.slack is None else self.slack.copy(), self.refine, set(self.exact_at), self.times)

    def kink_mask(self) -> np.ndarray:
        """Where lo/hi are one-sided derivatives (all False where the reference marked no kinks)."""
        return self.kinks if self.kinks is not None else np.zeros(np.shape(self.lo), dtype=bool)



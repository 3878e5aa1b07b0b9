"""Exact values as numbers: what the symbolic side hands to the comparator (numpy only, no sympy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


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

    @property
    def value(self) -> np.ndarray:
        return self.lo



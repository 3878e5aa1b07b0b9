"""What every exact reference offers: the interface the checks use (typing.Protocol), and the exception a reference
raises for a quantity it does not cover.

A new kind of reference implements ExactReference (and PointQuantities for its values at a point) and adds one entry
to :mod:`verifier.reference.choice`; nothing in checks, report or runner changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..values import Exact

if TYPE_CHECKING:
    from ..case.model import Case
    from ..language.nodes import Node


class NotVectorisable(Exception):
    """The case (or one quantity of it) is outside what a reference covers; the reason says what."""


class ReferenceKind(str, Enum):
    """Which reference a case got (the report's column, the JSON field)."""

    EXPAND = "expand"  # element expansion: one sympy expression per element, mpmath everywhere
    VECTORISED = "vectorised"  # element-wise formulas over whole tensors, float64 screen refined exactly
    MATRIX = "matrix"  # sympy's matrix calculus, closed forms in float64


class PointQuantities(Protocol):
    """The exact quantities of one case at one point; every value is an Exact (lo/hi, undefined with reasons)."""

    @property
    def ref(self) -> ExactReference: ...  # the reference these are quantities of

    point: Mapping[str, np.ndarray]
    rounding: str | None  # a half-precision dtype: each Exact carries the rounding error it allows (None: none)
    per_element_bounds: bool  # whether rounding bounds are per element (else the checks apply a norm-wise bound)

    def value(self) -> Exact: ...

    def jacobian(self, name: str) -> Exact: ...

    def vjp(self, weights: np.ndarray, name: str) -> Exact: ...

    def jvp(self, tangents: Mapping[str, np.ndarray]) -> Exact: ...

    def derivative(self, order: int, weights: np.ndarray | None = None) -> Exact: ...

    def expression(self, node: Node, shape: tuple[int, ...]) -> Exact: ...

    def node_gradient(self, node: str, weights: np.ndarray) -> Exact: ...


class ExactReference(Protocol):
    """A case's exact side: its quantities at any point, and the words that say how they were obtained."""

    kind: ReferenceKind
    case: Case

    def at(self, point: Mapping[str, np.ndarray]) -> PointQuantities: ...

    def describe(self) -> str: ...

    def value_formula(self, index: int) -> str: ...

    def column_formula(self, wrt: str, k: int) -> str: ...

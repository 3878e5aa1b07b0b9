"""Which exact reference a case gets: element expansion for small tensors, the vectorised formulas or the matrix
calculus for large ones."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..case.model import Case
from ..errors import CaseError, LimitError
from ..limits import LIMITS, flag
from .base import ExactReference, ReferenceKind
from .expanded.reference import Reference

EXPAND_UP_TO = 32  # input (and output) elements up to which element expansion (exact everywhere) is the reference


def make_reference(case: Case) -> ExactReference:
    """The exact reference for a case: element expansion for small tensors (exact everywhere, kinks per element),
    the vectorised formulas for large element-wise / reduction cases, the matrix calculus for large linear algebra.
    A case's ``reference:`` key forces one."""
    from .base import NotVectorisable
    from .matrix import MatrixReference
    from .vectorised.reference import VectorReference

    choice = getattr(case, "reference", "auto")
    total = sum(i.value.size for i in case.inputs)
    if choice == "expand":
        return _expanded(case, "forced by the case's reference key")
    small = total <= EXPAND_UP_TO and int(np.prod(case.output_shape)) <= EXPAND_UP_TO
    if choice == "auto" and small:
        return _expanded(case, f"{total} input element(s): small enough to expand")
    reasons = []
    order: list[tuple[str, Callable[[Case], ExactReference]]] = [("vectorised", VectorReference), ("matrix", MatrixReference)]
    if _uses_linear_algebra(case):  # closed forms from sympy's matrix calculus first, where they apply
        order.reverse()
    for kind, build in order:
        if choice not in ("auto", kind):
            continue
        try:
            return build(case)
        except NotVectorisable as exc:
            if choice == kind:
                raise CaseError(f"reference: {kind} does not apply: {exc}") from None
            reasons.append(f"{kind}: {exc}")
    if total > LIMITS.symbols:
        raise LimitError(f"the inputs have {total} elements; element-wise expansion is limited to {LIMITS.symbols} "
                         f"(raise it with {flag('symbols')}), and neither large-tensor reference applies ("
                         + "; ".join(reasons) + ")")
    return _expanded(case, "; ".join(reasons))


def _expanded(case: Case, why: str) -> Reference:
    return Reference(case, why)


def _uses_linear_algebra(case: Case) -> bool:
    from ..language.nodes import Bin, Call

    nodes = case.nodes()
    return any((isinstance(n, Bin) and n.op == "@") or (isinstance(n, Call) and n.func in
               ("matmul", "transpose", "dot", "trace", "det", "inv")) for n in nodes)


_POINTS: OrderedDict[tuple[str, bytes, str | None], Any] = OrderedDict()  # exact quantities at points, reused
POINTS_KEPT = 64


def point_quantities(reference: Any, point: Mapping[str, np.ndarray], rounding: str | None) -> Any:
    """The exact quantities at a point. An element-expansion reference's are kept for the next call at the same
    point (a user's test calling assert_gradients_match again, a suite run twice in one process): the mpmath values
    depend only on the derivation (its cache key), the point's values and the rounding dtype, and are immutable once
    computed. rounding: the dtype whose rounding bound each quantity carries (None: none)."""
    def fresh() -> Any:
        at = reference.at(point)
        if rounding:
            at.rounding = rounding
        return at

    key = getattr(reference, "key", None)
    if key is None or getattr(reference, "kind", None) is not ReferenceKind.EXPAND:
        return fresh()
    import json

    memo_key = (json.dumps(key, default=str), b"|".join(
        n.encode() + str(np.shape(v)).encode() + np.ascontiguousarray(v).tobytes() for n, v in sorted(point.items())),
        rounding)
    if memo_key in _POINTS:
        _POINTS.move_to_end(memo_key)
        return _POINTS[memo_key]
    at = _POINTS[memo_key] = fresh()
    while len(_POINTS) > POINTS_KEPT:
        _POINTS.popitem(last=False)
    return at

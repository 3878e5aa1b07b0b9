"""The positions check: equal inputs give equal gradients at every position of a tensor, for lengths across the SIMD
widths of torch's CPU kernels (vector body and scalar tail take different code paths). A gradient that depends on
an element's position is an inconsistency whether or not an exact value exists there."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..case.model import Case, Tolerance
from ..compare import compare
from ..language.analysis import is_elementwise
from ..results import CheckResult
from ..torchside.autodiff import TorchSide
from ..values import Exact
from .context import Ctx, each_path

LENGTHS = (1, 7, 8, 9, 15, 16, 17, 31, 33, 65)
VALUES = 2  # distinct values of the point tried


def elementwise(case: Case) -> str | None:
    """Why the case cannot be resized to any length (None: it can: element-wise ops on inputs of one shape)."""
    shapes = {i.shape for i in case.inputs}
    if len(shapes) != 1 or case.output_shape not in shapes:
        return "the inputs and the output are not of one shape"
    if not is_elementwise(case.nodes()):
        return "the function is not element-wise"
    if case.complex_inputs:
        return "complex inputs"
    return None


def check_positions(ctx: Ctx, r: CheckResult) -> None:
    why = elementwise(ctx.case)
    if why is not None:
        r.skipped = f"the positions check resizes element-wise functions: {why}"
        return
    first = ctx.case.differentiable[0].name
    values = list(dict.fromkeys(float(v) for v in np.asarray(ctx.exact.point[first]).reshape(-1)))[:VALUES]
    tol = Tolerance(ctx.tolerance.rtol, ctx.tolerance.atol)  # the fixed table: two code paths may round an ulp apart
    for v in values:
        at = {i.name: np.asarray(ctx.exact.point[i.name]).reshape(-1)[0] for i in ctx.case.inputs}
        at[first] = v

        def make(side: TorchSide, at: dict[str, float] = at) -> dict[str, Callable[[], Any]]:
            from ..torchside.positions import positions

            return dict(positions(side, at, LENGTHS))

        for path, grads in each_path(ctx, r, make):
            for name, got in grads.items():  # name -> the lengths' gradients, joined
                if got is None:
                    continue
                values_, counts = np.unique(got[np.isfinite(got)], return_counts=True)
                common = float(values_[np.argmax(counts)]) if values_.size else float(got[0])
                ref = np.full(got.shape, common)  # the value at most positions
                c = compare(Exact(ref, ref.copy()), got, check="positions", label=(
                    f"grad wrt {name} at every position of lengths {', '.join(map(str, LENGTHS))}, every input "
                    f"equal ({first} = {v:g}), against the value at most positions"), path=path, wrt=name, tolerance=tol,
                    dtype=ctx.dtype)
                if not c.passed and c.worst is not None:
                    flat = int(c.worst[0])
                    ends = np.cumsum(LENGTHS)
                    k = int(np.searchsorted(ends, flat, side="right"))
                    pos = flat - (int(ends[k - 1]) if k else 0)
                    c.notes[-1] = (f"position {pos} of a tensor of length {LENGTHS[k]} differs from most positions "
                                   f"({c.got:.17g} vs {c.expected:.17g}) for equal inputs: the gradient depends on "
                                   "the element's position (the vector body and the tail of the kernel disagree)")
                    c.diagnosis = None
                r.comparisons.append(c)

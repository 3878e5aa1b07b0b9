"""The case's function on tensors of other lengths, every element equal: gradients (y.backward(ones)) and forward-mode
derivatives (ones tangents) at each position, for the positions check."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD

from .autodiff import numpy
from .paths import Path

if TYPE_CHECKING:
    from .autodiff import TorchSide


def positions(side: TorchSide, values: Mapping[str, float], lengths: Sequence[int]
              ) -> dict[str, Callable[[], dict[str, np.ndarray | None]]]:
    """Per path, a thunk giving each differentiable input's derivative at every position of every length, joined."""

    def inputs(n: int) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        constants, leaves = {}, []
        for i in side.case.inputs:
            dtype = torch.int64 if i.integer else side.dtype
            t = torch.full((n,), values[i.name], dtype=dtype, device=side.device)
            if i.name in side.diff:
                leaves.append(t.requires_grad_(True))
            else:
                constants[i.name] = t
        return constants, leaves

    def backward() -> dict[str, np.ndarray | None]:
        out: dict[str, list[np.ndarray]] = {n: [] for n in side.diff}
        for n in lengths:
            constants, leaves = inputs(n)
            y = side.program.function(side.diff, constants)(*leaves)
            grads = torch.autograd.grad(y, leaves, torch.ones_like(y), allow_unused=True)
            for name, g, x in zip(side.diff, grads, leaves):
                out[name].append(numpy(g) if g is not None else np.zeros(x.shape))
        return {k: np.concatenate(v) for k, v in out.items()}

    def forward() -> dict[str, np.ndarray | None]:
        out: dict[str, np.ndarray | None] = {}
        first = side.diff[0]
        parts = []
        for n in lengths:
            constants, leaves = inputs(n)
            with fwAD.dual_level():
                duals = [fwAD.make_dual(x.detach(), torch.ones_like(x) if name == first else torch.zeros_like(x))
                         for name, x in zip(side.diff, leaves)]
                y = side.program.function(side.diff, constants)(*duals)
                t = fwAD.unpack_dual(y).tangent
            parts.append(numpy(t) if t is not None else np.zeros(n))
        out[first] = np.concatenate(parts)
        return out

    return {Path.BACKWARD_V: backward, Path.FORWARD_AD: forward}

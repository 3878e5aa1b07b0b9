"""The values of a case's inputs drawn by torch's own generator (case.draws): made once, before either side runs.

`torch.manual_seed(seed)` then each draw in the order the case lists its inputs, in torch's default float32 as a
tutorial runs them, then the module's constructor where the first `draw: module` input stands. The caller's
generator is left as it was (torch.random.fork_rng), and so is torch's default dtype.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from ..case.model import Case
from .impl import resolve_impl, search_dirs


def materialize(case: Case) -> Case:
    """The case with every drawn input's value (and every point that kept the input's value) filled in."""
    drawn = [i for i in case.inputs if i.draw is not None]
    if not drawn:
        return case
    values: dict[str, np.ndarray] = {}
    module: Any = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(case.torch_seed or 0)
        for i in drawn:
            d = i.draw
            if d.kind == "module":
                if module is None:
                    assert case.impl is not None  # validated: draw: module needs the case's impl
                    module = resolve_impl(case.impl, case.impl_args, case.impl_kwargs, search=search_dirs(case))
                    if not isinstance(module, torch.nn.Module):
                        raise TypeError(f"draw: module needs an nn.Module impl; {case.impl} is "
                                        f"{type(module).__name__}")
                own = dict(module.named_parameters()) | dict(module.named_buffers())
                if d.param not in own:
                    raise TypeError(f"the module has no parameter {d.param!r}; its parameters and buffers: "
                                    f"{sorted(own)}")
                t = own[d.param].detach()
            elif d.kind == "rand":
                t = torch.rand(d.shape, dtype=torch.float32)
            elif d.kind == "randn":
                t = torch.randn(d.shape, dtype=torch.float32)
            else:
                t = torch.normal(d.mean * torch.ones(d.shape, dtype=torch.float32), d.std)
            if d.scale is not None:
                t = t * d.scale
            if d.shift is not None:
                t = t + d.shift
            if tuple(t.shape) != d.shape:
                raise TypeError(f"input {i.name!r}: {d.describe()} has shape {list(t.shape)}, the case says "
                                f"{list(d.shape)}")
            values[i.name] = t.to(torch.float64).numpy().copy()
    placeholders = {i.name: i.value for i in drawn}
    inputs = tuple(replace(i, value=values[i.name]) if i.name in values else i for i in case.inputs)
    points = tuple({n: (values[n] if n in placeholders and (v is placeholders[n] or np.isnan(v).all()) else v)
                    for n, v in p.items()} for p in case.points)
    return replace(case, inputs=inputs, points=points)

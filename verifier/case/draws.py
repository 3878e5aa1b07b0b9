"""Inputs drawn by torch's own generator, in the order the case lists them (`torch_seed:` and `draw:`).

A tutorial's data is what `torch.manual_seed(10); torch.rand(20, 1) * 10; torch.randn(20, 1); ...` returned: the
case names the same calls and torch makes the same numbers. This module only reads the YAML (the case stage never
imports torch); torchside/draws.py makes the values before either side runs, and the runner puts them in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .fields import Ctx, check_keys, kind, number

DRAWS = ("rand", "randn", "normal", "module")
DRAW_KEYS = ("draw", "shape", "scale", "shift", "mean", "std", "param", "requires_grad")
_PARAM_RE = re.compile(r"^(?!.*__)[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")  # features.weight, layers.0.bias


@dataclass(frozen=True)
class Draw:
    """One input drawn from the case's torch generator: `torch.rand(shape) * scale + shift`, `torch.randn`,
    `torch.normal(mean * ones(shape), std)`, or a parameter of the case's module as its constructor initialised it
    (the module is built once, when the first such input is reached, with the generator where the draws left it)."""

    kind: str
    shape: tuple[int, ...]
    scale: float | None = None
    shift: float | None = None
    mean: float = 0.0
    std: float = 1.0
    param: str | None = None

    def describe(self) -> str:
        if self.kind == "module":
            return f"the module's own initialisation of {self.param}"
        call = f"torch.normal({self.mean:g} * ones({list(self.shape)}), {self.std:g})" if self.kind == "normal" \
            else f"torch.{self.kind}({', '.join(map(str, self.shape))})"
        return call + (f" * {self.scale:g}" if self.scale is not None else "") + \
            (f" + {self.shift:g}" if self.shift is not None else "")


def is_draw(spec: Any) -> bool:
    return isinstance(spec, Mapping) and "draw" in spec


def parse_draw(ctx: Ctx, spec: Mapping[str, Any], key: str, torch_seed: int | None) -> tuple[Draw, np.ndarray, bool]:
    """The draw, a placeholder of its shape (NaN: the runner replaces it before anything reads it) and
    requires_grad."""
    check_keys(ctx, spec, DRAW_KEYS, key)  # a drawn input's keys (with did-you-mean), as every mapping's
    if torch_seed is None:
        raise ctx.error(f"{key}.draw", "a drawn input needs the case's torch_seed: the generator its values come "
                        "from (torch_seed: 10 is torch.manual_seed(10) before the first draw)", spec, "draw")
    what = spec["draw"]
    if what not in DRAWS:
        raise ctx.error(f"{key}.draw", f"draw is one of {', '.join(DRAWS)}, got {kind(what)}", spec, "draw")
    raw_shape = spec.get("shape")
    if not isinstance(raw_shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 10**6
                                                  for d in raw_shape) or len(raw_shape) > 8:
        raise ctx.error(f"{key}.shape", f"a drawn input needs its shape, a list of positive integers, got "
                        f"{kind(raw_shape)}", spec, "shape")
    shape = tuple(raw_shape)
    if math.prod(shape) > 10**7:
        raise ctx.error(f"{key}.shape", f"a drawn input of {math.prod(shape)} elements is over the limit of 10**7",
                        spec, "shape")
    values: dict[str, float] = {}
    for name in ("scale", "shift", "mean", "std"):
        if name in spec:
            if what == "module" or (name in ("mean", "std") and what != "normal"):
                raise ctx.error(f"{key}.{name}", f"{name} does not apply to draw: {what}", spec, name)
            try:
                values[name] = number(spec[name])
            except ValueError as exc:
                raise ctx.error(f"{key}.{name}", str(exc), spec, name) from None
            if not math.isfinite(values[name]) or (name == "std" and values[name] <= 0):
                raise ctx.error(f"{key}.{name}", f"{name} must be finite{' and > 0' if name == 'std' else ''}, got "
                                f"{spec[name]!r:.40}", spec, name)
    param = spec.get("param")
    if what == "module":
        if not isinstance(param, str) or not _PARAM_RE.match(param):
            raise ctx.error(f"{key}.param", f"draw: module names the module's parameter, e.g. features.weight, got "
                            f"{kind(param)}", spec, "param")
    elif param is not None:
        raise ctx.error(f"{key}.param", f"param applies to draw: module, not draw: {what}", spec, "param")
    requires_grad = spec.get("requires_grad", True)
    if not isinstance(requires_grad, bool):
        raise ctx.error(f"{key}.requires_grad", f"expected true or false, got {kind(requires_grad)}", spec,
                        "requires_grad")
    draw = Draw(what, shape, values.get("scale"), values.get("shift"), values.get("mean", 0.0),
                values.get("std", 1.0), param)
    return draw, np.full(shape, np.nan), requires_grad


def torch_seed_of(ctx: Ctx, doc: Mapping[str, Any]) -> int | None:
    seed = doc.get("torch_seed")
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ctx.error("torch_seed", f"torch_seed is torch.manual_seed's argument, an integer in [0, 2**63), got "
                        f"{kind(seed)}")
    return seed

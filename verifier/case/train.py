"""Training loops: the `train` section of a case, and the optimizer update rules applied to exact gradients.

Imports neither torch nor sympy: the exact loop is numbers; torch's loops live in autodiff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import CaseError
from ..language.analysis import infer_shape
from ..language.parse import parse
from .fields import VAR_RE, check_keys, kind, number

OPTIMIZERS = ("sgd", "adam")
TRAIN_KEYS = ("params", "optimizer", "lr", "momentum", "weight_decay", "betas", "eps", "steps", "stop_below", "step",
              "expect", "log_every", "metrics")
EXPECTATIONS = ("converges",)


@dataclass(frozen=True)
class TrainSpec:
    """What to train: which inputs are parameters, the optimizer and its settings, how many steps."""

    params: tuple[str, ...]
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    steps: int = 10
    stop_below: float | None = None
    step: Any = None  # "package.module:attr" or a callable: a user's step(params, loss_fn, lr) under test
    expect: str | None = None  # "converges": a loop that diverges (or never reaches stop_below) fails the check
    log_every: int | None = None  # the report's loss (and metrics) every this many iterations; None: about 5 rows
    metrics: tuple[tuple[str, Any, str], ...] = ()  # (name, Node, text): scalars of the inputs logged per step

    @property
    def plain_sgd(self) -> bool:
        return self.optimizer == "sgd" and self.momentum == 0 and self.weight_decay == 0


def parse_train(ctx: Any, raw: Any, inputs: Mapping[str, Any], output_shape: tuple[int, ...],
                shapes: Mapping[str, tuple[int, ...]] | None = None) -> TrainSpec:
    """Validate a case's `train` section (ctx is the loader's error context; shapes: the inputs' and defines')."""
    if not isinstance(raw, Mapping):
        raise ctx.error("train", f"train is a mapping (params, optimizer, lr, steps, ...), got {kind(raw)}")
    check_keys(ctx, raw, TRAIN_KEYS, "train")
    if output_shape != ():
        raise ctx.error("train", f"training needs a scalar loss; the function has shape {list(output_shape)}")
    grad_inputs = [n for n, i in inputs.items() if i.requires_grad]
    params = raw.get("params", grad_inputs)
    if not isinstance(params, list) or not params or any(p not in grad_inputs for p in params):
        raise ctx.error("train.params", f"params lists differentiable inputs ({', '.join(grad_inputs)}), "
                        f"got {params!r:.80}", raw, "params")
    optimizer = raw.get("optimizer", "sgd")
    if optimizer not in OPTIMIZERS:
        raise ctx.error("train.optimizer", f"optimizer is one of {', '.join(OPTIMIZERS)}, got {kind(optimizer)}",
                        raw, "optimizer")
    values: dict[str, Any] = {}
    for key, lo in (("lr", 0.0), ("momentum", 0.0), ("weight_decay", 0.0), ("eps", 0.0)):
        if key in raw:
            try:
                values[key] = number(raw[key])
            except ValueError as exc:
                raise ctx.error(f"train.{key}", str(exc), raw, key) from None
            if values[key] < lo or (key == "lr" and values[key] == 0):
                raise ctx.error(f"train.{key}", f"{key} must be {'> 0' if key == 'lr' else '>= 0'}, got {raw[key]}",
                                raw, key)
    if "betas" in raw:
        b = raw["betas"]
        try:
            if not isinstance(b, list) or len(b) != 2:
                raise ValueError(f"betas is [beta1, beta2], got {kind(b)}")
            values["betas"] = (number(b[0]), number(b[1]))
        except ValueError as exc:
            raise ctx.error("train.betas", str(exc), raw, "betas") from None
    steps = raw.get("steps", 10)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 10_000:
        raise ctx.error("train.steps", f"steps is an integer 1..10000, got {kind(steps)}", raw, "steps")
    stop = raw.get("stop_below")
    if stop is not None:
        try:
            stop = number(stop)
        except ValueError as exc:
            raise ctx.error("train.stop_below", str(exc), raw, "stop_below") from None
    step = raw.get("step")
    if step is not None:
        from .fields import IMPL_RE

        if not isinstance(step, str) or not IMPL_RE.match(step):
            raise ctx.error("train.step", f"step is 'package.module:attr', got {kind(step)}", raw, "step")
    expect = raw.get("expect")
    if expect is not None and expect not in EXPECTATIONS:
        raise ctx.error("train.expect", f"expect is {' or '.join(EXPECTATIONS)}, got {kind(expect)}", raw, "expect")
    log_every = raw.get("log_every")
    if log_every is not None and (isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1):
        raise ctx.error("train.log_every", f"log_every is a positive integer, got {kind(log_every)}", raw, "log_every")
    metrics = _metrics(ctx, raw.get("metrics", {}), shapes)
    spec = TrainSpec(params=tuple(params), optimizer=optimizer, steps=steps, stop_below=stop, step=step,
                     expect=expect, log_every=log_every, metrics=metrics, **values)
    if step is not None and not spec.plain_sgd:
        raise ctx.error("train.step", "a user's step is checked with plain SGD (no momentum or weight decay): the "
                        "gradient it used is read from the parameter change", raw, "step")
    return spec


def _metrics(ctx: Any, raw: Any, shapes: Mapping[str, tuple[int, ...]] | None) -> tuple[tuple[str, Any, str], ...]:
    """metrics: {accuracy: "expression"}: scalars of the inputs and defines, in the case language, logged per step."""
    if not isinstance(raw, Mapping):
        raise ctx.error("train.metrics", f"metrics maps a name to an expression, got {kind(raw)}")
    out = []
    for name, text in raw.items():
        if not isinstance(name, str) or not VAR_RE.match(name):
            raise ctx.error("train.metrics", f"a metric's name is a letter followed by letters, digits or '_', got "
                            f"{name!r:.40}", raw, name)
        if not isinstance(text, str):
            raise ctx.error(f"train.metrics.{name}", f"a metric is an expression (a string), got {kind(text)}", raw,
                            name)
        try:
            node = parse(text, set(shapes or {}))
            shape = infer_shape(node, dict(shapes or {}))
        except CaseError as exc:
            raise ctx.wrap(exc, f"train.metrics.{name}", raw, name) from None
        if shape != ():
            raise ctx.error(f"train.metrics.{name}", f"a metric is a scalar; {text!r:.60} has shape {list(shape)}",
                            raw, name)
        out.append((name, node, text))
    return tuple(out)

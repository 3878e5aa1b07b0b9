"""The train check: each step's gradient against the exact gradient, and the loop's trajectory against the exact-gradient loop."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..case.model import Tolerance
from ..compare import Diagnosis, Fact, compare
from ..dtypes import HALF
from ..results import CheckResult, TrainSummary
from ..torchside.impl import search_dirs
from ..values import Exact
from .context import Ctx


def check_train(ctx: Ctx, r: CheckResult) -> None:
    """Per step, the gradient each torch loop used against the exact gradient at that loop's own parameters; and
    the loss trajectory of torch.optim against the loop driven by exact gradients."""
    from ..reference.training import exact_loop
    from ..torchside.impl import resolve_impl

    spec = ctx.case.train
    if spec is None:
        r.skipped = "the case has no train section"
        return
    base = {n: np.asarray(v) for n, v in ctx.exact.point.items()}
    cache: dict[bytes, tuple[float, dict[str, np.ndarray]]] = {}
    slacks: dict[bytes, dict[str, np.ndarray]] = {}  # half precision: each step's rounding bound

    def key_of(params: dict[str, np.ndarray]) -> bytes:
        return b"".join(np.asarray(params[n], dtype=np.float64).tobytes() for n in spec.params)

    def loss_and_grad(params: dict[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        key = key_of(params)
        if key not in cache:
            at = ctx.exact.ref.at({**base, **params})
            at.rounding = ctx.exact.rounding
            grads = {n: at.jacobian(n) for n in spec.params}
            cache[key] = (float(at.value().lo), {n: g.lo.reshape(ctx.case.shapes[n]) for n, g in grads.items()})
            if all(g.slack is not None for g in grads.values()):
                slacks[key] = {n: g.slack.reshape(ctx.case.shapes[n]) for n, g in grads.items()}  # type: ignore[union-attr]  # all non-None: checked above
        return cache[key]

    label = {"optim": f"autograd + torch.optim.{'SGD' if spec.optimizer == 'sgd' else 'Adam'}",
             "manual": "autograd + manual p.data.sub_(lr * p.grad), p.grad.zero_()",
             "step": f"user step {getattr(spec.step, '__name__', spec.step)}"}
    modes = ["optim"] + (["manual"] if spec.plain_sgd else []) + (["step"] if spec.step else [])
    step_fn = spec.step if callable(spec.step) else (
        resolve_impl(spec.step, search=search_dirs(ctx.case)) if spec.step else None)
    runs: dict[str, list[dict]] = {}
    for mode in modes:
        records = runs[mode] = ctx.torch.train(spec, mode, step_fn, metrics=_metric_programs(ctx) if mode == "optim"
                                               else None)
        for name in spec.params:
            got = np.stack([rec["grads"][name] for rec in records])
            exact = np.stack([loss_and_grad(rec["params"])[1][name] for rec in records])
            keys = [key_of(rec["params"]) for rec in records]
            slack = np.stack([slacks[k][name] for k in keys]) if all(k in slacks for k in keys) else None
            c = ctx.cmp(Exact(exact, exact.copy(), slack=slack), got, "train", f"gradient used for {name} at each step",
                        label[mode], name)
            if not c.passed:
                bad = np.abs(got - exact) > c.tolerance.allowed(np.abs(exact), 0.0 if slack is None else slack)
                first = int(np.argwhere(bad.reshape(len(records), -1).any(axis=1))[0][0]) + 1
                c.label += f" (first wrong at step {first} of {len(records)})"
                # never zeroed: the gradient used at step t is the sum of the exact ones of steps 1..t, up to the
                # rounding of that sum in the dtype (terms of both signs: the bound follows their absolute sum)
                cumulative = np.cumsum(exact, axis=0)
                close = 1e-6 if ctx.dtype not in HALF else 0.05
                bound = 10 * max(close, c.tolerance.rtol) * np.cumsum(np.abs(exact), axis=0) + 1e-12 * np.abs(exact).max()
                if len(records) > 1 and bool(np.all(np.abs(got - cumulative) <= bound)):
                    c.diagnosis = Diagnosis("missing_zero_grad", count=first)
            r.comparisons.append(c)
    records = runs["optim"]
    trajectory, losses, last = exact_loop(spec, {n: base[n] for n in spec.params}, loss_and_grad)
    r.train = _summary(spec, records, losses, last)
    if spec.expect == "converges":
        reached = spec.stop_below is None or r.train.stopped == "stop_below"
        ok = reached and not r.train.diverged
        r.facts.append(Fact("train", "the loop converges" + (f" (its loss below {spec.stop_below:g})"
                                                             if spec.stop_below is not None else ""),
                            True, ok, passed=ok,
                            note="diverged: the loss grew without bound" if r.train.diverged else
                            None if reached else f"the loss never went below {spec.stop_below:g} in {spec.steps} steps"))
    if ctx.dtype in HALF:  # the trajectories: in float32 and float64 only
        return  # in half precision the rounding of every step compounds along the path; no bound follows it
    n = min(len(records), len(losses))
    drift = Tolerance(ctx.tolerance.rtol * 1e3, ctx.tolerance.atol * 1e3)  # rounding differences compound over steps
    got = np.array([rec["loss"] for rec in records[:n]])
    r.comparisons.append(compare(Exact(np.array(losses[:n]), np.array(losses[:n])), got, check="train",
                                 label=f"loss at each of {n} steps (exact-gradient loop vs torch)", path=label["optim"],
                                 wrt=None, tolerance=drift, dtype=ctx.dtype))
    for name in spec.params:
        exact = np.stack([t[name] for t in trajectory[:n]] + ([last[name]] if n == len(losses) else []))
        got = np.stack([rec["params"][name] for rec in records[:n]] +
                       ([_after(records, n - 1)[name]] if n == len(losses) else []))
        r.comparisons.append(compare(Exact(exact, exact.copy()), got, check="train",
                                     label=f"{name} at each of {n} steps and at the end (exact-gradient loop vs torch)",
                                     path=label["optim"], wrt=name, tolerance=drift, dtype=ctx.dtype))
    if len(records) != len(losses) and spec.stop_below is not None:
        r.facts.append(Fact("train", "iterations until the loss is below stop_below (exact-gradient loop vs torch)",
                            len(losses), len(records), passed=False,
                            note="the loops stopped at different iterations: their losses crossed the threshold apart"))


def _after(records: list[dict[str, Any]], k: int) -> dict[str, np.ndarray]:
    """The parameters step k left: the next step's starting point, or the end of the loop."""
    return records[k + 1]["params"] if k + 1 < len(records) else records[-1]["after"]


def _metric_programs(ctx: Ctx) -> dict[str, Any]:
    """The train section's metrics as torch programs of the inputs (the case's defines in scope)."""
    from dataclasses import replace

    from ..torchside.lowering import Program

    spec = ctx.case.train
    return {name: Program(replace(ctx.case, function=node, traced=False), ctx.dtype, ctx.torch.device)
            for name, node, _ in spec.metrics}


def diverged(losses: list[float]) -> bool:
    """The loss grew without bound: a non-finite loss, or the last one 100x the first and the highest of the last
    quarter (still rising). A loop that merely stalls, or oscillates near its start, has not diverged."""
    if not losses:
        return False
    if not all(np.isfinite(losses)):
        return True
    first, last = abs(losses[0]), abs(losses[-1])
    tail = losses[-max(2, len(losses) // 4):]
    return len(losses) > 2 and last > 100 * max(first, np.finfo(np.float64).tiny) and losses[-1] >= max(tail)


def _summary(spec: Any, records: list[dict[str, Any]], exact_losses: list[float],
             exact_last: dict[str, np.ndarray]) -> TrainSummary:
    losses = [rec["loss"] for rec in records]
    stopped = "stop_below" if spec.stop_below is not None and losses and losses[-1] < spec.stop_below else "steps"
    metrics = {name: [rec["metrics"][name] for rec in records] for name, _, _ in spec.metrics}
    every = spec.log_every or max(1, -(-len(records) // 5))
    return TrainSummary(iterations=len(records), stopped=stopped, stop_below=spec.stop_below, losses=losses,
                        exact_losses=list(exact_losses),
                        params={n: np.asarray(records[-1]["after"][n]).tolist() for n in spec.params},
                        exact_params={n: np.asarray(v).tolist() for n, v in exact_last.items()},
                        metrics=metrics, log_every=every, diverged=diverged(losses))

"""The train check: each step's gradient against the exact gradient, and the loop's trajectory against the exact-gradient loop."""

from __future__ import annotations

import numpy as np

from ..case.model import Tolerance
from ..compare import Diagnosis, compare
from ..dtypes import HALF
from ..results import CheckResult
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
    for mode in modes:
        records = ctx.torch.train(spec, mode, step_fn)
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
                cumulative = np.cumsum(exact, axis=0)
                close = 1e-6 if ctx.dtype not in HALF else 0.05
                if len(records) > 1 and np.allclose(got, cumulative, rtol=close, atol=1e-12 * np.abs(exact).max()):
                    c.diagnosis = Diagnosis("missing_zero_grad", count=first)
            r.comparisons.append(c)
    if ctx.dtype in HALF:  # the trajectories: in float32 and float64 only
        return  # in half precision the rounding of every step compounds along the path; no bound follows it
    trajectory, losses = exact_loop(spec, {n: base[n] for n in spec.params}, loss_and_grad)
    records = ctx.torch.train(spec, "optim")
    n = min(len(records), len(losses))
    drift = Tolerance(ctx.tolerance.rtol * 1e3, ctx.tolerance.atol * 1e3)  # rounding differences compound over steps
    got = np.array([rec["loss"] for rec in records[:n]])
    r.comparisons.append(compare(Exact(np.array(losses[:n]), np.array(losses[:n])), got, check="train",
                                 label=f"loss at each of {n} steps (exact-gradient loop vs torch)", path=label["optim"],
                                 wrt=None, tolerance=drift, dtype=ctx.dtype))
    for name in spec.params:
        exact = np.stack([t[name] for t in trajectory[:n]])
        got = np.stack([rec["params"][name] for rec in records[:n]])
        r.comparisons.append(compare(Exact(exact, exact.copy()), got, check="train",
                                     label=f"{name} at each of {n} steps (exact-gradient loop vs torch)",
                                     path=label["optim"], wrt=name, tolerance=drift, dtype=ctx.dtype))

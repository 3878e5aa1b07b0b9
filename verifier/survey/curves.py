"""The data behind `gradverify plot`: a one-input function over its domain, and a training run's curves."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..case.model import Case
from ..config import RunConfig
from ..dtypes import round_to
from ..errors import CaseError
from ..reference.choice import make_reference
from ..torchside.paths import Path


def sweep_1d(case: Case, n: int = 200, dtype: str | None = None) -> dict[str, Any]:
    """A function of one scalar input over its domain: exact value and derivative (one sided at kinks), torch's
    derivative by each path, and each path's error in ULPs. The data behind `gradverify plot`."""
    from ..compare import ulp
    from ..torchside.autodiff import TorchSide

    dtype = RunConfig(dtype=dtype).settle(case).dtype
    diff = case.differentiable
    if len(diff) != 1 or diff[0].value.size != 1 or int(np.prod(case.output_shape)) != 1:
        raise CaseError("plot draws functions of one scalar input with a scalar output; this case has "
                        f"{sum(i.value.size for i in diff)} differentiable elements and output shape "
                        f"{list(case.output_shape)}", file=case.file, line=case.line, case=case.name)
    name = diff[0].name
    x0 = float(diff[0].value.reshape(-1)[0])
    lo, hi = case.domain.get(name, (x0 - 3.0, x0 + 3.0))
    xs = round_to(np.linspace(lo, hi, n), dtype)
    reference = make_reference(case)
    base = {i.name: round_to(i.value, dtype) for i in case.inputs}
    shape = diff[0].shape
    out: dict[str, Any] = {"x": xs, "name": name, "function": case.function_text, "dtype": dtype}
    f: list[float] = []
    left: list[float] = []
    right: list[float] = []
    paths: dict[str, list[float]] = {}
    one = np.ones(case.output_shape)
    for x in xs:
        point = {**base, name: np.full(shape, x)}
        at = reference.at(point)
        f.append(float(at.value().lo.reshape(-1)[0]))
        d = at.jacobian(name)
        left.append(float(d.lo.reshape(-1)[0]))
        right.append(float(d.hi.reshape(-1)[0]))
        side = TorchSide(case, point, dtype)
        got = {
            "y.backward()": side.vjp(one)[Path.BACKWARD_V]()[name],
            "autograd.grad": side.grad(one if case.output_shape else None)[0][name],
            "forward_ad": side.jvp({name: np.ones(shape)})[Path.FORWARD_AD](),
            "torch.func.jacrev": side.jacobian()[Path.JACREV]()[name],
        }
        for label, value in got.items():
            paths.setdefault(label, []).append(float(np.asarray(value).reshape(-1)[0]))
    exact = np.array(left)
    values = {k: np.array(v) for k, v in paths.items()}
    out.update(f=np.array(f), exact=exact, exact_right=np.array(right), paths=values)
    tol = case.tolerance_for(dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        spacing = ulp(exact, dtype)
        out["ulps"] = {k: np.abs(v - exact) / spacing for k, v in values.items()}
        out["bad"] = {k: np.abs(v - exact) > tol.allowed(np.abs(exact)) for k, v in values.items()}
    return out


def training_curves(case: Case, dtype: str | None = None) -> dict[str, Any]:
    """Loss per step of the loop driven by exact gradients and of torch's loop, and the final parameters and data
    for the case's picture. The data behind `gradverify plot` for train cases."""
    from ..reference.training import exact_loop
    from ..torchside.autodiff import TorchSide

    if case.train is None:
        raise CaseError("this case has no train section", file=case.file, line=case.line, case=case.name)
    from ..torchside.draws import materialize

    case = materialize(case)  # the inputs torch's generator draws
    dtype = RunConfig(dtype=dtype).settle(case).dtype
    point = {n: round_to(v, dtype) for n, v in case.points[0].items()}
    reference = make_reference(case)

    def loss_and_grad(params: dict[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        at = reference.at({**point, **params})
        return float(at.value().lo), {n: at.jacobian(n).lo.reshape(case.shapes[n]) for n in case.train.params}

    _, losses, last = exact_loop(case.train, {n: point[n] for n in case.train.params}, loss_and_grad)
    side = TorchSide(case, point, dtype)
    records = side.train(case.train, "optim")
    final = {**point, **last}
    import torch

    with torch.no_grad():
        _, nodes, leaves = TorchSide(case, final, dtype).forward()
    values = {n: t.detach().numpy() for n, t in {**leaves, **nodes}.items()}
    return {"exact_loss": np.array(losses), "torch_loss": np.array([r["loss"] for r in records]),
            "values": values, "picture": dict(case.picture), "optimizer": case.train.optimizer}

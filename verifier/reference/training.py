"""The optimizer update rules applied to exact gradients: the exact side of a `train` case (numbers only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..case.train import TrainSpec


@dataclass
class Optimizer:
    """torch.optim.SGD (momentum, weight_decay; dampening 0, no nesterov) and Adam, on numpy arrays."""

    spec: TrainSpec
    state: dict[str, dict[str, Any]] = field(default_factory=dict)

    def step(self, params: dict[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        s, out = self.spec, {}
        for name, p in params.items():
            g = grads[name] + s.weight_decay * p
            st = self.state.setdefault(name, {"t": 0})
            st["t"] += 1
            if s.optimizer == "sgd":
                if s.momentum:
                    st["buf"] = g.copy() if "buf" not in st else s.momentum * st["buf"] + g
                    g = st["buf"]
                out[name] = p - s.lr * g
            else:
                b1, b2 = s.betas
                st["m"] = b1 * st.get("m", 0 * g) + (1 - b1) * g
                st["v"] = b2 * st.get("v", 0 * g) + (1 - b2) * g * g
                m_hat = st["m"] / (1 - b1 ** st["t"])
                v_hat = st["v"] / (1 - b2 ** st["t"])
                out[name] = p - s.lr * m_hat / (np.sqrt(v_hat) + s.eps)
        return out


def exact_loop(spec: TrainSpec, start: Mapping[str, np.ndarray],
               loss_and_grad: Any) -> tuple[list[dict[str, np.ndarray]], list[float], dict[str, np.ndarray]]:
    """Run the optimizer on exact gradients: the parameters before each step, the losses, and the parameters the
    loop ends with. Like a tutorial's loop, each iteration steps and then stops if its loss was below stop_below."""
    params = {n: np.asarray(start[n], dtype=np.float64).copy() for n in spec.params}
    opt = Optimizer(spec)
    trajectory, losses = [], []
    for _ in range(spec.steps):
        loss, grads = loss_and_grad(params)
        trajectory.append({n: v.copy() for n, v in params.items()})
        losses.append(loss)
        params = opt.step(params, grads)
        if spec.stop_below is not None and loss < spec.stop_below:
            break
    return trajectory, losses, params

"""Every composition of forward and reverse mode to order 3, through torch.func and through autograd (forward_ad
dual numbers with autograd.grad), on the scalar function of one flat vector of the differentiable inputs.

Nested dual levels (forward_ad over forward_ad) are not offered: torch 2.13 raises "Nested forward mode AD is not
supported" for every function, so forward over forward is verified through torch.func.jvp(jvp) alone.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
from torch.func import grad, jacfwd, jacrev, jvp, vjp

from .autodiff import numpy, quiet_batching
from .paths import NESTED, Path

if TYPE_CHECKING:
    from .autodiff import TorchSide


class _ProbeCube(torch.autograd.Function):
    """x³ with a right backward and a right, differentiable jvp: what torch.func makes of it says which nestings
    differentiate a custom Function's jvp again."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:  # the setup_context form
        return x**3

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 3 * x**2 * g

    @staticmethod
    def jvp(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 3 * x**2 * t


@functools.lru_cache(maxsize=1)
def not_nestable() -> frozenset[Path]:
    """The nested paths that get a wrong result through a custom Function with a right jvp (a probe, run once):
    torch 2.13's torch.func does not differentiate the jvp of an autograd.Function a second time in forward mode."""
    from .autodiff import TorchSide  # noqa: F401 - the probe runs on plain tensors

    x = torch.tensor([0.5, -1.25], dtype=torch.float64)
    u, w, z = (torch.tensor(v, dtype=torch.float64) for v in ([1.0, 0.5], [-0.75, 1.0], [0.25, 2.0]))
    g = lambda y: _ProbeCube.apply(y).sum()  # noqa: E731 - the probe's function
    want = {2: {"uw": (6 * x * u * w).sum(), "u": 6 * x * u, "w": 6 * x * w, "full": torch.diag(6 * x)},
            3: {"uw": (6 * u * w * z).sum(), "u": 6 * u * w,
                "full": torch.stack([torch.diag(6 * (torch.arange(2) == i).double()) for i in range(2)])}}
    bad = set()
    for order in (2, 3):
        for path, thunk in _paths(x, g, u, w, z, order).items():
            try:
                got = torch.as_tensor(thunk())
            except Exception:  # noqa: BLE001 - a path that raises is classified where it runs, not here
                continue
            expected = want[order][NESTED[path][1]]
            if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-9, atol=1e-12):
                bad.add(path)
    return frozenset(bad)


def nested(side: TorchSide, order: int, u: np.ndarray, w: np.ndarray, z: np.ndarray) -> dict[str, Callable[[], Any]]:
    """The order-k paths as thunks, each returning what torchside.paths.NESTED says (a number, a vector, a tensor)."""
    flat, g = side.flat_function()
    U, W, Z = (torch.as_tensor(t, dtype=side.dtype, device=side.device) for t in (u, w, z))
    paths = _paths(flat, g, U, W, Z, order)
    assert all(NESTED[p][0] == order for p in paths)
    return {p: quiet_batching(t) for p, t in paths.items()}


def _paths(flat: torch.Tensor, g: Callable[[torch.Tensor], torch.Tensor], U: torch.Tensor, W: torch.Tensor,
           Z: torch.Tensor, order: int) -> dict[Path, Callable[[], Any]]:

    def d1(f: Callable[[torch.Tensor], torch.Tensor], t: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """x -> D f(x)[t] by torch.func.jvp."""
        return lambda x: jvp(f, (x,), (t,))[1]

    def fwad_over(f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], t: torch.Tensor) -> np.ndarray:
        """The tangent t of f(dual, x), forward_ad around autograd: f differentiates w.r.t. the primal leaf x."""
        x = flat.clone().requires_grad_(True)
        with fwAD.dual_level():
            out = f(fwAD.make_dual(x, t), x)
            tangent = fwAD.unpack_dual(out).tangent
        return numpy(tangent) if tangent is not None else np.zeros(x.shape)

    def grads(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not y.requires_grad:
            return torch.zeros_like(x)
        (out,) = torch.autograd.grad(y, x, create_graph=True, allow_unused=True)
        return out if out is not None else torch.zeros_like(x)

    def grad_fwad() -> np.ndarray:
        x = flat.clone().requires_grad_(True)
        with fwAD.dual_level():
            tangent = fwAD.unpack_dual(g(fwAD.make_dual(x, U))).tangent
            if tangent is None or not tangent.requires_grad:
                return np.zeros(x.shape)
            (out,) = torch.autograd.grad(tangent, x, allow_unused=True)
        return numpy(out) if out is not None else np.zeros(x.shape)

    def vjp_jvp() -> np.ndarray:
        out, pull = vjp(d1(g, U), flat)[:2]
        return numpy(pull(torch.ones_like(out))[0])

    def hvp_u(y: torch.Tensor) -> torch.Tensor:
        return grad(g)(y) @ U

    if order == 2:
        paths: dict[Path, Callable[[], Any]] = {
            Path.JVP_JVP: lambda: numpy(jvp(d1(g, U), (flat,), (W,))[1]),
            Path.GRAD_JVP: lambda: numpy(grad(d1(g, U))(flat)),
            Path.VJP_JVP: vjp_jvp,
            Path.JVP_GRAD: lambda: numpy(jvp(grad(g), (flat,), (W,))[1]),
            Path.JACFWD_JACFWD: lambda: numpy(jacfwd(jacfwd(g))(flat)),
            Path.JACREV_JACFWD: lambda: numpy(jacrev(jacfwd(g))(flat)),
            Path.JACREV_JACREV: lambda: numpy(jacrev(jacrev(g))(flat)),
            Path.FWAD_GRAD: lambda: fwad_over(lambda d, x: grads(g(d), x), W),
            Path.GRAD_FWAD: grad_fwad,
        }
    else:
        paths = {
            Path.JVP3: lambda: numpy(jvp(d1(d1(g, U), W), (flat,), (Z,))[1]),
            Path.GRAD_JVP_JVP: lambda: numpy(grad(d1(d1(g, U), W))(flat)),
            Path.JVP_JVP_GRAD: lambda: numpy(jvp(d1(grad(g), U), (flat,), (W,))[1]),
            Path.JVP_GRAD_GRAD: lambda: numpy(jvp(grad(hvp_u), (flat,), (W,))[1]),
            Path.JACFWD_JACFWD_JACREV: lambda: numpy(jacfwd(jacfwd(jacrev(g)))(flat)),
            Path.JACREV3: lambda: numpy(jacrev(jacrev(jacrev(g)))(flat)),
            Path.FWAD_GRAD_GRAD: lambda: fwad_over(lambda d, x: grads(grads(g(d), x) @ U, x), W),
        }
    return paths


def batched_vjp(side: TorchSide, weights: list[np.ndarray]) -> dict[str, Callable[[], dict[str, np.ndarray]]]:
    """v^T J for several v at once (gradcheck's check_batched_grad): each input's rows, one per v, stacked."""
    V = torch.stack([torch.as_tensor(w, dtype=side.dtype, device=side.device) for w in weights])

    def grad_batched() -> dict[str, np.ndarray]:
        out, _, leaves = side.forward()
        grads = torch.autograd.grad(out, [leaves[n] for n in side.diff], grad_outputs=V, is_grads_batched=True,
                                    allow_unused=True)
        return {n: numpy(g) if g is not None else np.zeros((len(weights),) + tuple(leaves[n].shape))
                for n, g in zip(side.diff, grads)}

    def vmap_vjp() -> dict[str, np.ndarray]:
        pullback = vjp(side.function(), *side.primals())[1]
        rows = torch.func.vmap(pullback)(V)
        return {n: numpy(g) for n, g in zip(side.diff, rows)}

    return {Path.GRAD_BATCHED: quiet_batching(grad_batched), Path.VMAP_VJP: quiet_batching(vmap_vjp)}


def batched_jvp(side: TorchSide, tangents: list[dict[str, np.ndarray]]) -> dict[str, Callable[[], np.ndarray]]:
    """J u for several u at once by torch.func.vmap over jvp: the rows stacked."""
    stacks = [torch.stack([torch.as_tensor(t[n], dtype=side.dtype, device=side.device) for t in tangents])
              for n in side.diff]
    f, primals = side.function(), side.primals()

    def one(*ts: torch.Tensor) -> torch.Tensor:
        return jvp(f, primals, ts)[1]

    return {Path.VMAP_JVP: quiet_batching(lambda: numpy(torch.func.vmap(one)(*stacks)))}

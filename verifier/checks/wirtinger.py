"""The Wirtinger check: torch's complex gradients on complex leaves against both exact Wirtinger derivatives.

The exact reference works in real coordinates (z = x + iy). From its Jacobian, for each output s and input z:

    ds/dz = (ds/dx - i ds/dy) / 2,        ds/dz̄ = (ds/dx + i ds/dy) / 2.

PyTorch's documented convention (the "Autograd for Complex Numbers" note): backward with grad_output g gives

    z.grad = sum_s conj(ds/dz) g_s + conj(g_s) ds/dz̄

which for a real loss L (g = 1) is 2 dL/dz̄ = dL/dx + i dL/dy: the conjugate Wirtinger derivative, times 2, the
direction of steepest ascent. Forward mode with tangent u gives ds/dz u + ds/dz̄ conj(u). A holomorphic s has
ds/dz̄ = 0 (Cauchy-Riemann), and then conj(z.grad) with g = 1 is the complex derivative f'(z).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..case.complex import from_pairs, to_pairs
from ..compare import Diagnosis, Fact
from ..dtypes import COMPLEX_OF
from ..results import CheckResult
from ..torchside.autodiff import TorchSide
from ..torchside.devices import DTYPES
from ..torchside.paths import Path
from ..values import Exact
from .context import each_path

if TYPE_CHECKING:
    from .context import Ctx


CONVENTION = ("torch's convention: z.grad = sum over outputs of conj(ds/dz)·g + conj(g)·ds/dz̄ (for a real loss: "
              "2·dL/dz̄ = dL/dx + i·dL/dy, the conjugate Wirtinger derivative times 2); forward mode: ds/dz·u + "
              "ds/dz̄·conj(u)")


def wirtinger(ctx: Ctx, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(ds/dz, ds/dz̄) of every output element with respect to every element of input `name`, shape out + in (complex;
    NaN where a partial derivative does not exist)."""
    case = ctx.case
    jac = ctx.exact.jacobian(name).lo  # output pairs or reals, then input shape + (2,)
    dx, dy = jac[..., 0], jac[..., 1]
    if case.complex_output:
        axis = len(case.output_shape) - 1  # the (real, imaginary) axis of the output
        dx = np.take(dx, 0, axis=axis) + 1j * np.take(dx, 1, axis=axis)
        dy = np.take(dy, 0, axis=axis) + 1j * np.take(dy, 1, axis=axis)
    return (dx - 1j * dy) / 2, (dx + 1j * dy) / 2


def _exact(values: np.ndarray, pairs: bool) -> Exact:
    """A complex (or real) expected value as an Exact of real pairs, undefined where NaN."""
    arr = to_pairs(values) if pairs else np.real(values).astype(np.float64)
    undefined = {int(k): "a partial derivative does not exist here" for k in np.flatnonzero(np.isnan(arr))}
    return Exact(arr, arr.copy(), undefined)


def check_wirtinger(ctx: Ctx, r: CheckResult) -> None:
    import torch


    case = ctx.case
    if not case.complex_inputs:
        r.skipped = "the case has no complex inputs"
        return
    logical = case.output_shape[:-1] if case.complex_output else case.output_shape
    names = [i.name for i in case.differentiable if i.name in case.complex_inputs]  # real ones: the other checks
    cdtype = DTYPES[COMPLEX_OF[ctx.dtype]]
    device = ctx.torch.device

    def leaf(n: str, grad: bool) -> torch.Tensor:
        if n not in case.complex_inputs:  # a real input beside the complex ones
            return torch.tensor(ctx.torch.point[n], dtype=ctx.torch.dtype, device=device).requires_grad_(grad)
        return torch.tensor(from_pairs(ctx.torch.point[n]), dtype=cdtype, device=device).requires_grad_(grad)

    def leaves(grad: bool = True) -> dict[str, torch.Tensor]:
        """Fresh complex leaves of every input, the differentiable ones requiring grad (unless grad is False)."""
        return {i.name: leaf(i.name, grad and i.name in names) for i in case.inputs}

    if case.grad_output is not None:
        g = from_pairs(ctx.weights()) if case.complex_output else ctx.weights()
    elif case.complex_output:
        g = from_pairs(ctx.random(logical + (2,)))
    else:
        g = np.ones(logical)
    implicit = case.grad_output is None and not case.complex_output and logical == ()
    g_t = torch.tensor(g, dtype=cdtype if case.complex_output else ctx.torch.dtype, device=device)
    r.facts.append(Fact("wirtinger", "convention", CONVENTION, CONVENTION, True,
                        note="the gradient is compared with the exact Wirtinger derivatives under this convention"))

    derivs = {n: wirtinger(ctx, n) for n in names}
    out_axes = tuple(range(len(logical)))
    for n, (dz, dzbar) in derivs.items():
        gb = g.reshape(logical + (1,) * (dz.ndim - len(logical)))
        expected = (np.conj(dz) * gb + np.conj(gb) * dzbar).sum(axis=out_axes)
        # the derivative without the conjugate (ds/dz·g for a holomorphic s): a backward written for another convention
        unconjugated = (dz * gb + gb * np.conj(dzbar)).sum(axis=out_axes)
        label = f"grad wrt {n}: conj(ds/dz)·g + conj(g)·ds/dz̄" + (" (g = 1: 2·dL/dz̄)" if implicit else "")

        def paths(side: TorchSide, n: str = n) -> dict[str, Callable[[], Any]]:
            program = side.program

            def backward() -> Any:
                env = leaves()
                out, _ = program(env)
                out.backward() if implicit else out.backward(g_t)
                return env[n].grad

            def autograd_grad() -> Any:
                env = leaves()
                out, _ = program(env)
                return torch.autograd.grad(out, env[n], grad_outputs=None if implicit else g_t)[0]

            def func_vjp() -> Any:
                others = leaves(grad=False)
                fn = torch.func.vjp(lambda t: program({**others, n: t})[0], others[n])[1]  # (output, vjp_fn)
                return fn(torch.ones((), dtype=ctx.torch.dtype, device=device) if implicit else g_t)[0]

            return {f"{n}.grad after y.backward({'' if implicit else 'g'})": backward,
                    "torch.autograd.grad": autograd_grad, Path.FUNC_VJP: func_vjp}

        for path, got in each_path(ctx, r, paths):
            values = numpy_complex(got)
            c = ctx.cmp(_exact(expected, True), to_pairs(values), "wirtinger", label, path, n)
            if not c.passed and values.shape == expected.shape and np.allclose(
                    values, unconjugated, rtol=1e-3, atol=1e-6 * max(1.0, float(np.nanmax(np.abs(expected))))):
                c.diagnosis = Diagnosis("conjugate")
            r.comparisons.append(c)
        if case.complex_output and np.all(dzbar == 0):  # NaN (undefined somewhere) is not 0
            r.facts.append(Fact("wirtinger", f"ds/dz̄ = 0 for every element of {n} (holomorphic: Cauchy-Riemann holds)",
                                True, True, True))
    # forward mode: ds/dz·u + ds/dz̄·conj(u), summed over every differentiable input
    tangents = {n: from_pairs(ctx.random(case.shapes[n])) for n in names}
    expected = sum(((dz * t).reshape(dz.shape[:len(logical)] + (-1,)).sum(-1)
                    + (dzbar * np.conj(t)).reshape(dz.shape[:len(logical)] + (-1,)).sum(-1))
                   for (dz, dzbar), t in zip(derivs.values(), tangents.values()))
    primals = leaves(grad=False)
    u = tuple(torch.tensor(tangents[n], dtype=cdtype, device=device) for n in names)

    def jvp_paths(side: TorchSide) -> dict[str, Callable[[], Any]]:
        def f(*ts: Any) -> Any:
            return side.program({**primals, **dict(zip(names, ts))})[0]

        return {Path.FUNC_JVP: lambda: torch.func.jvp(f, tuple(primals[n] for n in names), u)[1]}

    for path, got in each_path(ctx, r, jvp_paths):
        values = numpy_complex(got)
        r.comparisons.append(ctx.cmp(_exact(np.asarray(expected), case.complex_output),
                                     to_pairs(values) if case.complex_output else np.real(values),
                                     "wirtinger", "J u: ds/dz·u + ds/dz̄·conj(u) (u = seeded random)", path))


def numpy_complex(t: Any) -> np.ndarray:
    """A (complex or real) tensor as a complex128 numpy array."""
    import torch

    t = t.detach().resolve_conj()
    if t.is_complex():
        return t.to(torch.complex128).cpu().numpy().copy()
    return t.to(torch.float64).cpu().numpy().astype(np.complex128)

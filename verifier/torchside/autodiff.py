"""Every way torch computes a derivative, run on one case at one point. Returns numbers; never imports sympy."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, overload

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
import torch.func

from ..case.model import Case
from .devices import DTYPES
from .graphs import custom_functions, has_saved_tensors
from .lowering import Program, Wrapped
from .paths import Path

Grads = dict[str, "np.ndarray | None"]

# torch.func's note that an op (e.g. soft_margin_loss's backward) has no batching rule and runs a slower loop: a
# performance remark about torch, not about the gradient being verified; silenced around the vmap-based paths only
# (never in the caller's process-wide filters)
SLOW_BATCHING = "There is a performance drop because we have not yet implemented the batching"


def quiet_batching(fn: Callable[[], Any]) -> Callable[[], Any]:
    """fn, with torch.func's slow-batching notice silenced while it runs."""
    def run() -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=SLOW_BATCHING)
            return fn()

    return run


class StateChanged(Exception):
    """A backward through a retained graph raised on call `call`, though the same graph ran backward before: the
    earlier backward changed something the graph needs (torch's saved-tensor version check, or the user's state)."""

    def __init__(self, call: int, error: str) -> None:
        super().__init__(error)
        self.call, self.error = call, error


@overload
def numpy(t: torch.Tensor, copy: bool = True) -> np.ndarray: ...
@overload
def numpy(t: None, copy: bool = True) -> None: ...


def numpy(t: torch.Tensor | None, copy: bool = True) -> np.ndarray | None:
    """A tensor as a float64 numpy array (None stays None); copy=False may share the tensor's memory."""
    if t is None:
        return None
    out = t.detach().to(torch.float64).cpu().numpy()
    return out.copy() if copy else out


def _grad_meta(g: torch.Tensor | None) -> tuple[str, tuple[int, ...]] | None:
    return None if g is None else (str(g.dtype).replace("torch.", ""), tuple(g.shape))


class TorchSide:
    """The torch computations of one case at one point, each on fresh leaf tensors."""
    functorch_refusal: str | None = None  # torch.func's refusal of a Function here (support.foreseen, remember)
    wrappings: tuple[str, ...] | None = None  # how the code wraps its computation (support.wrappings), read once

    def __init__(self, case: Case, point: Mapping[str, np.ndarray], dtype: str | None = None,
                 program: Program | None = None, device: str | None = None) -> None:
        self.case = case
        self.device = torch.device(device or case.device)
        self.program = program or Program(case, dtype, device=self.device)
        self.dtype_name = dtype or case.dtype
        self.dtype = DTYPES[self.dtype_name]
        self.point = point
        self.diff = tuple(i.name for i in case.differentiable)
        self.integers = frozenset(i.name for i in case.inputs if i.integer)

    # --- probes: the same computation elsewhere (torchside.support decides what torch supports with them) --------

    def is_lowered(self) -> bool:
        """Whether the program is the case's own definition lowered to torch (no user code)."""
        return type(self.program) is Program

    def lowered(self, how: str = "") -> TorchSide | None:
        """The case's definition lowered to torch, at the same point, dtype and device (how: run inside what the
        user's code wraps its computation in, lowering.Wrapped)."""
        try:
            program = Wrapped(Program(self.case, self.dtype_name, self.device), how) if how else None
            return TorchSide(self.case, self.point, self.dtype_name, program, str(self.device))
        except Exception:  # noqa: BLE001 - a definition that cannot be lowered offers no probe
            return None

    def at_dtype(self, dtype: str) -> TorchSide | None:
        """The same program in another dtype (the point's values are exact there: half values are float32 values),
        or None where the program cannot move (a compiled function)."""
        import copy

        from .impl import Implementation

        if self.is_lowered():
            return TorchSide(self.case, self.point, dtype, None, str(self.device))
        if type(self.program) is Implementation:
            impl = self.program.impl
            if isinstance(impl, torch.nn.Module):  # a copy: the user's module stays as it is
                impl = copy.deepcopy(impl).to(DTYPES[dtype])
            program = Implementation(self.case, impl, dtype, self.program.params, self.device)
            return TorchSide(self.case, self.point, dtype, program, str(self.device))
        return None

    def _t(self, value: Any) -> torch.Tensor:
        """A tensor of the case's dtype on its device (the values are float64 numbers already in that dtype)."""
        return torch.tensor(value, dtype=self.dtype, device=self.device)

    def _input(self, name: str) -> torch.Tensor:
        """An input's tensor: the case's dtype, or int64 for an integer input (labels, indices)."""
        if name in self.integers:
            return torch.tensor(self.point[name], dtype=torch.int64, device=self.device)
        return self._t(self.point[name])

    # --- building blocks ---------------------------------------------------------------------------------------

    def leaves(self) -> dict[str, torch.Tensor]:
        return {
            i.name: self._input(i.name).requires_grad_(i.requires_grad)
            for i in self.case.inputs
        }

    def forward(
        self, leaves: Mapping[str, torch.Tensor] | None = None, retain: tuple[str, ...] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        leaves = dict(leaves) if leaves is not None else self.leaves()
        out, nodes = self.program(leaves, retain=retain)
        return out, nodes, leaves

    def constants(self) -> dict[str, torch.Tensor]:
        return {i.name: self._input(i.name) for i in self.case.inputs if not i.requires_grad}

    def primals(self) -> tuple[torch.Tensor, ...]:
        return tuple(self._t(self.point[n]) for n in self.diff)

    def function(self) -> Callable[..., torch.Tensor]:
        return self.program.function(self.diff, self.constants())

    def after_inplace(self, weights: np.ndarray, shift: float) -> tuple[bool, Grads, str | None]:
        """v^T J by autograd.grad after every differentiable input was changed in place (x += shift under no_grad)
        between the forward and the backward: (ran, the gradients, torch's refusal as text)."""
        out, _, leaves = self.forward()
        with torch.no_grad():
            for n in self.diff:
                leaves[n].add_(shift)
        try:
            grads = torch.autograd.grad(out, [leaves[n] for n in self.diff], grad_outputs=self._t(weights),
                                        allow_unused=True)
        except RuntimeError as exc:
            from .support import first_line

            return False, {}, first_line(exc)
        return True, {n: _zeros_if_none(g, leaves[n]) for n, g in zip(self.diff, grads)}, None

    def weighted(self, weights: np.ndarray) -> TorchSide:
        """This side with the scalar sum(weights * out) as its function (higher orders of a non-scalar output)."""
        return Weighted(self, weights)

    def _grads(self, leaves: Mapping[str, torch.Tensor]) -> Grads:
        return {n: numpy(leaves[n].grad) for n in self.diff}

    # --- checks ------------------------------------------------------------------------------------------------

    def output_requires_grad(self) -> bool:
        if not hasattr(self, "_requires_grad"):  # asked before every check: answered once, by torch (the lowered
            self._probe()  # definition too: imag() of a real tensor is a constant whatever it reads)
        return self._requires_grad

    def _probe(self) -> None:
        """One forward answers output_requires_grad and, for torch's own ops, missing_derivatives; its graph is kept,
        untouched, for the backward check's paths (backward_on_one_graph), so a large case builds one graph fewer."""
        out, nodes, leaves = self.forward()
        self._requires_grad = bool(out.requires_grad)
        if self.is_lowered():
            self._missing = sorted(self.program.no_derivative)
            if out.requires_grad and "backward" in self.case.checks and self.one_graph() and torch.is_grad_enabled():
                self._pristine = (out, nodes, leaves)

    def one_graph(self) -> bool:
        """Whether backward_on_one_graph covers the backward check: torch's own ops, one call, one output element,
        the implicit grad_output."""
        c = self.case
        return self.is_lowered() and c.backward_calls == 1 and c.grad_output is None and math.prod(c.output_shape) == 1

    def backward_error(self, implicit: bool) -> str | None:
        """The error y.backward() (implicit) or y.backward(ones) raises; None if it does not raise."""
        out, _, _ = self.forward()
        try:
            out.backward() if implicit else out.backward(torch.ones_like(out))
        except RuntimeError as exc:
            return str(exc)
        return None

    def value(self) -> np.ndarray:
        with torch.no_grad():
            out, _, _ = self.forward()
        return numpy(out)

    def backward(self, calls: int = 1, zero_grad: bool = True) -> tuple[Grads, dict[str, np.ndarray | None]]:
        """.grad after `calls` calls of y.backward() (fresh graph each), zeroing in between when zero_grad.

        Returns the differentiable inputs' grads and the non-differentiable inputs' .grad (which must stay None).
        """
        leaves = self.leaves()
        for _ in range(calls):
            for n in self.diff if zero_grad else ():
                if (grad := leaves[n].grad) is not None:
                    grad.zero_()
            out, _, _ = self.forward(leaves)
            out.backward()
        others = {i.name: numpy(leaves[i.name].grad) for i in self.case.inputs if not i.requires_grad}
        return self._grads(leaves), others

    def grad_metadata(self) -> dict[str, tuple[str, tuple[int, ...]] | None]:
        """(dtype, shape) of each differentiable input's .grad after one backward with ones."""
        if getattr(self, "_metadata", None) is not None:  # recorded by backward_on_one_graph
            return self._metadata
        leaves = self.leaves()
        out, _, _ = self.forward(leaves)
        out.backward(torch.ones_like(out))
        return {n: _grad_meta(leaves[n].grad) for n in self.diff}

    def backward_on_one_graph(self, weights: np.ndarray) -> tuple[Grads, dict[str, Any], dict[str, Any]]:
        """For torch's own ops (a lowered definition): the backward check's paths on one forward graph, the cost of
        one forward and three backward passes instead of four and six. backward(w, retain_graph=True) is y.backward()
        for a one-element output (w = 1); then a second call (2x, the retained graph) and a third, which must raise
        when the graph saved tensors (the second freed them). Returns (.grad after the first, the non-differentiable
        inputs' .grad, second_backward's record)."""
        out, _, leaves = self.__dict__.pop("_pristine", None) or self.forward()
        saved = has_saved_tensors(out.grad_fn)
        out.backward(self._t(weights), retain_graph=True)
        once = self._grads(leaves)
        self._metadata = {n: _grad_meta(leaves[n].grad) for n in self.diff}
        others = {i.name: numpy(leaves[i.name].grad) for i in self.case.inputs if not i.requires_grad}
        try:
            out.backward(self._t(weights))
        except RuntimeError as exc:
            raise StateChanged(2, str(exc)) from exc
        twice = {}
        for n in self.diff:  # taken off the leaf, not copied: the third call accumulates into a fresh .grad
            g, leaves[n].grad = leaves[n].grad, None
            twice[n] = numpy(g, copy=False)
        try:
            out.backward(self._t(weights))
            error = None
        except RuntimeError as exc:
            error = str(exc)
        return once, others, {"saved": saved, "error": error, "freed": error is not None, "retained": twice}

    def second_backward(self, weights: np.ndarray) -> dict[str, Any]:
        """retain_graph semantics: a second backward without it, and with it."""
        out, _, leaves = self.forward()
        saved = has_saved_tensors(out.grad_fn)
        out.backward(self._t(weights))
        try:
            out.backward(self._t(weights))
            error = None
        except RuntimeError as exc:
            error = str(exc)
        out, _, leaves = self.forward()
        out.backward(self._t(weights), retain_graph=True)
        try:
            out.backward(self._t(weights))  # ran: so an error of the second call above came from the freed graph
        except RuntimeError as exc:  # the graph was kept and still refused: the first backward changed its state
            raise StateChanged(2, str(exc)) from exc
        return {"saved": saved, "error": error, "freed": error is not None, "retained": self._grads(leaves)}

    def vjp(self, weights: np.ndarray) -> dict[str, Callable[[], Grads]]:
        """v^T J three ways, each a thunk (a path may be unsupported by the implementation). Each path gets its own
        v tensor: a backward that modifies grad_output in place must not change what the next path receives (the
        repeat check names that bug)."""

        def backward() -> Grads:
            out, _, leaves = self.forward()
            out.backward(self._t(weights))
            return self._grads(leaves)

        def grad() -> Grads:
            out, _, leaves = self.forward()
            grads = torch.autograd.grad(out, [leaves[n] for n in self.diff], grad_outputs=self._t(weights),
                                        allow_unused=True)
            return {n: _zeros_if_none(g, leaves[n]) for n, g in zip(self.diff, grads)}

        def func_vjp() -> Grads:
            pullback = torch.func.vjp(self.function(), *self.primals())[1]  # (output, vjp_fn)
            return {n: numpy(g) for n, g in zip(self.diff, pullback(self._t(weights)))}

        return {Path.BACKWARD_V: backward, Path.GRAD_V: grad, Path.FUNC_VJP: func_vjp}

    def custom_functions(self) -> set[type]:
        """The custom autograd.Function classes one forward's graph holds (none where the forward fails), read once."""
        if "_functions" not in self.__dict__:
            try:
                self._functions = custom_functions(self.forward()[0])
            except Exception:  # noqa: BLE001 - the forward itself fails: no Function to read
                self._functions = set()
        return self._functions

    def missing_derivatives(self) -> list[str]:
        """The functions of the lowered definition that torch computes without a derivative (no backward node in the
        graph it builds, or its NotImplemented node): derivative checks have nothing of torch's to verify."""
        if not self.is_lowered():
            return []
        if not hasattr(self, "_missing"):
            self._probe()
        return self._missing

    def output_parts(self) -> tuple[tuple[int, ...], ...] | None:
        """The shapes of the user's outputs where it returns several tensors (None: one tensor)."""
        from .impl import Implementation

        if not isinstance(self.program, Implementation):
            return None
        if self.program.parts is None:
            self.forward()
        return self.program.parts

    def undefined(self, weights: np.ndarray, part: int) -> Grads:
        """v^T J of the other outputs only: autograd hands output ``part``'s backward an undefined grad_output (None,
        or zeros where the Function materialises it), as when a caller uses only some of a Function's outputs."""
        from .impl import Implementation

        assert isinstance(self.program, Implementation)  # output_parts said the implementation has several
        leaves = self.leaves()
        raw, _ = self.program.outputs(leaves)
        sizes = [o.numel() for o in raw]
        starts = np.cumsum([0] + sizes)
        used = [(o, self._t(weights.reshape(-1)[starts[j]:starts[j + 1]]).reshape(o.shape))
                for j, o in enumerate(raw) if j != part and o.requires_grad]
        if not used:
            return {n: np.zeros(np.shape(self.point[n])) for n in self.diff}
        grads = torch.autograd.grad([o for o, _ in used], [leaves[n] for n in self.diff],
                                    grad_outputs=[v for _, v in used], allow_unused=True)
        return {n: _zeros_if_none(g, leaves[n]) for n, g in zip(self.diff, grads)}

    def retained(self, weights: list[np.ndarray]) -> tuple[list[dict[str, np.ndarray]], list[bool]]:
        """v^T J for each v in turn through ONE retained graph (autograd.grad, retain_graph=True): a backward that
        changes its saved tensors in place is right the first time only, and only a v other than ones shows it.
        Also whether each grad_output tensor was left unchanged by the backward it was passed to."""
        out, _, leaves = self.forward()
        results: list[dict[str, np.ndarray]] = []
        intact: list[bool] = []
        for k, w in enumerate(weights):
            v = self._t(w)
            before = v.clone()
            try:
                grads = torch.autograd.grad(out, [leaves[n] for n in self.diff], grad_outputs=v, retain_graph=True,
                                            allow_unused=True)
            except RuntimeError as exc:
                if k == 0:
                    raise  # the first call itself fails: that is the check's error
                raise StateChanged(k + 1, str(exc)) from exc  # the same call ran before on this graph
            results.append({n: _zeros_if_none(g, leaves[n]) for n, g in zip(self.diff, grads)})
            intact.append(bool(torch.equal(v, before) or (v.isnan() & before.isnan()).all().item()))
        return results, intact

    def grad(self, weights: np.ndarray | None = None) -> tuple[Grads, bool]:
        """torch.autograd.grad (grad_outputs=weights for a non-scalar output); and whether it touched .grad."""
        out, _, leaves = self.forward()
        v = None if weights is None else self._t(weights)
        grads = torch.autograd.grad(out, [leaves[n] for n in self.diff], grad_outputs=v, allow_unused=True)
        touched = any(leaves[n].grad is not None for n in self.diff)
        return {n: _zeros_if_none(g, leaves[n]) for n, g in zip(self.diff, grads)}, touched

    def jvp(self, tangents: Mapping[str, np.ndarray]) -> dict[str, Callable[[], np.ndarray]]:
        """J u by forward-mode AD, two ways (thunks)."""
        u = tuple(self._t(tangents[n]) for n in self.diff)

        def forward_ad() -> np.ndarray:
            with fwAD.dual_level():
                env = {i.name: self._input(i.name) for i in self.case.inputs}
                for n, t in zip(self.diff, u):
                    env[n] = fwAD.make_dual(env[n], t)
                out, _ = self.program(env)
                tangent = fwAD.unpack_dual(out).tangent
                return numpy(tangent) if tangent is not None else np.zeros(tuple(out.shape))

        def func_jvp() -> np.ndarray:
            jvp_out = torch.func.jvp(self.function(), self.primals(), u)[1]  # (output, J u)
            return numpy(jvp_out)

        return {Path.FORWARD_AD: forward_ad, Path.FUNC_JVP: func_jvp}

    def jacobian(self) -> dict[str, Callable[[], Grads]]:
        """J by torch.func.jacrev and jacfwd, per input (shape out + input), as thunks."""
        argnums = tuple(range(len(self.diff)))

        def run(fn: Callable[..., Any]) -> Callable[[], Grads]:
            def thunk() -> Grads:
                jac = fn(self.function(), argnums=argnums)(*self.primals())
                return {n: numpy(j) for n, j in zip(self.diff, jac)}

            return thunk

        return {Path.JACREV: quiet_batching(run(torch.func.jacrev)), Path.JACFWD: quiet_batching(run(torch.func.jacfwd))}

    def flat_function(self) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """All differentiable inputs as one flat vector, and the scalar function of it."""
        shapes = [tuple(self.point[n].shape) for n in self.diff]
        sizes = [int(np.prod(s)) if s else 1 for s in shapes]
        primals = self.primals()
        flat = torch.cat([p.reshape(-1) for p in primals]) if primals else torch.zeros(0, dtype=self.dtype, device=self.device)
        f = self.function()

        def g(vec: torch.Tensor) -> torch.Tensor:
            parts = torch.split(vec, sizes)
            return f(*(p.reshape(s) for p, s in zip(parts, shapes)))

        return flat, g

    def derivatives(self, order: int) -> np.ndarray:
        """The order-k derivative tensor, shape (n,)*k, by repeated autograd.grad(create_graph=True)."""
        flat, g = self.flat_function()
        x = flat.clone().requires_grad_(True)
        n = x.numel()
        level = [g(x)]  # derivatives of order k-1, flattened
        for _ in range(order):
            nxt: list[torch.Tensor] = []
            for d in level:
                if d.requires_grad:
                    (gr,) = torch.autograd.grad(d, x, create_graph=True, allow_unused=True)
                    nxt.extend(gr if gr is not None else torch.zeros(n, dtype=self.dtype, device=self.device))
                else:
                    nxt.extend(torch.zeros(n, dtype=self.dtype, device=self.device))
            level = nxt
        return numpy(torch.stack(level)).reshape((n,) * order)

    def hvp(self, tangent: np.ndarray) -> np.ndarray:
        """H u by double backward: autograd.grad(autograd.grad(y, x, create_graph=True) . u, x)."""
        flat, g = self.flat_function()
        x = flat.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(g(x), x, create_graph=True)
        u = self._t(tangent)
        if not grad.requires_grad:
            return np.zeros(x.shape)
        (hu,) = torch.autograd.grad(grad @ u, x, allow_unused=True)
        return numpy(hu) if hu is not None else np.zeros(x.shape)

    def hessians(self) -> dict[str, Callable[[], np.ndarray]]:
        flat, g = self.flat_function()
        return {
            Path.FUNCTIONAL_HESSIAN: lambda: numpy(torch.autograd.functional.hessian(g, flat)),
            Path.FUNC_HESSIAN: quiet_batching(lambda: numpy(torch.func.hessian(g)(flat))),
        }

    def accumulate(self, calls: int, weights: np.ndarray) -> dict[Path, list[Grads]]:
        """.grad after each of `calls` backward calls: fresh graphs, one retained graph, and zeroing in between.
        Every call gets its own grad_output tensor: AccumulateGrad may adopt the incoming gradient as .grad (when the
        program's last op is a view) and accumulate into it later, which must not write into the next call's."""
        runs: dict[Path, list[Grads]] = {p: [] for p in (Path.ACCUMULATE_FRESH, Path.ACCUMULATE_RETAINED,
                                                          Path.ACCUMULATE_ZEROED)}
        leaves = self.leaves()
        for _ in range(calls):
            out, _, _ = self.forward(leaves)
            out.backward(self._t(weights))
            runs[Path.ACCUMULATE_FRESH].append(self._grads(leaves))
        out, _, leaves = self.forward()
        for k in range(calls):
            out.backward(self._t(weights), retain_graph=k < calls - 1)
            runs[Path.ACCUMULATE_RETAINED].append(self._grads(leaves))
        leaves = self.leaves()
        for _ in range(calls):
            for n in self.diff:
                grad = leaves[n].grad
                if grad is not None:
                    grad.zero_()
            out, _, _ = self.forward(leaves)
            out.backward(self._t(weights))
            runs[Path.ACCUMULATE_ZEROED].append(self._grads(leaves))
        return runs

    def graph(self, weights: np.ndarray) -> dict[str, dict[str, Any]]:
        """is_leaf, requires_grad, grad_fn and .grad of every node after one backward."""
        out, nodes, leaves = self.forward(retain=self.case.retain_grad)
        everything: dict[str, torch.Tensor] = {**leaves, **nodes, "output": out}
        facts: dict[str, dict[str, Any]] = {n: {"is_leaf": t.is_leaf, "requires_grad": t.requires_grad,
                     "grad_fn": type(t.grad_fn).__name__ if t.grad_fn is not None else None}
                 for n, t in everything.items()}
        if out.requires_grad:
            out.backward(self._t(weights))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reading .grad of a non-leaf warns; reading it is the point
            for n, t in everything.items():
                facts[n]["grad"] = numpy(t.grad)
        return facts

    def train(self, spec: Any, mode: str, step_fn: Callable[..., Any] | None = None,
              metrics: Mapping[str, Callable[..., Any]] | None = None) -> list[dict[str, Any]]:
        """Run a training loop; per step, the parameters before it, the gradient it used and the loss.

        mode: 'optim' (autograd + torch.optim, zero_grad() every step), 'manual' (p.data.sub_(lr * p.grad) then
        p.grad.zero_()), or 'step' (the user's step(params, loss_fn, lr); the gradient it used is read from the
        parameter change, for plain SGD). metrics: programs of each step's starting parameters (an accuracy), kept
        beside the loss. The last record also has "after": the parameters the loop ended with.
        """
        env = {i.name: self._input(i.name) for i in self.case.inputs}
        params = {n: env[n].clone().requires_grad_(True) for n in spec.params}
        for i in self.case.inputs:
            env[i.name].requires_grad_(i.requires_grad and i.name not in params)

        def loss_fn(current: Mapping[str, torch.Tensor]) -> torch.Tensor:
            return self.program({**env, **current})[0]

        opt = None
        if mode == "optim":
            group = list(params.values())
            opt = (torch.optim.SGD(group, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
                   if spec.optimizer == "sgd" else
                   torch.optim.Adam(group, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay))
        records: list[dict[str, Any]] = []
        for _ in range(spec.steps):
            before = {n: numpy(p) for n, p in params.items()}
            if mode == "step":
                loss = step_fn(params, loss_fn, spec.lr)  # type: ignore[misc]  # step_fn is set whenever mode is 'step'
                grads = {n: (before[n] - numpy(p)) / spec.lr for n, p in params.items()}
            else:
                if opt is not None:
                    opt.zero_grad()
                loss = loss_fn(params)
                loss.backward()
                grads = {n: numpy(p.grad) if p.grad is not None else np.zeros(p.shape) for n, p in params.items()}
            value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
            record = {"params": before, "grads": grads, "loss": value}
            if metrics:
                with torch.no_grad():
                    record["metrics"] = {k: float(m({**env, **params})[0]) for k, m in metrics.items()}
            records.append(record)
            if mode == "optim":
                opt.step()  # type: ignore[union-attr]  # opt is built whenever mode is 'optim'
            elif mode == "manual":
                for p in params.values():
                    grad = p.grad
                    assert grad is not None  # backward filled it
                    p.data.sub_(spec.lr * grad)
                    grad.zero_()
            if spec.stop_below is not None and value < spec.stop_below:  # a tutorial's loop: step, then test
                break
        if records:  # where the loop ended (each earlier step's end is the next one's "params")
            records[-1]["after"] = {n: numpy(p) for n, p in params.items()}
        return records

    def nograd(self) -> dict[str, Any]:
        with torch.no_grad():
            out, nodes, leaves = self.forward()
        free, _, _ = self.forward()
        detached = free.detach()
        return {
            "no_grad output requires_grad": out.requires_grad,
            # torch's rule, applied to what the program returned: under no_grad only an input itself, or a view of a
            # tensor that requires grad, requires grad (a view keeps its base's flag)
            "no_grad output is a view of a tensor requiring grad": _keeps_requires_grad(out, leaves),
            "no_grad intermediates requiring grad": sorted(n for n, t in nodes.items() if t.requires_grad),
            "detach() requires_grad": detached.requires_grad,
            "detach() shares storage": detached.data_ptr() == free.data_ptr(),
            "detach() value equal": bool(((detached == free) | (detached.isnan() & free.isnan())).all()),
        }


class Weighted(TorchSide):
    """A side whose function is sum(weights * f) for the function f of another side (its probes weighted too)."""

    def __init__(self, side: TorchSide, weights: np.ndarray) -> None:  # noqa: D107 - the other side's state, shared
        self.__dict__.update((k, v) for k, v in side.__dict__.items() if k != "_pristine")  # a graph is used once
        self.base, self.weights = side, weights

    def function(self) -> Callable[..., torch.Tensor]:
        f = self.base.function()
        v = self._t(self.weights)
        return lambda *args: (v * f(*args)).sum()

    def lowered(self, how: str = "") -> TorchSide | None:
        base = self.base.lowered(how)
        return None if base is None else Weighted(base, self.weights)

    def at_dtype(self, dtype: str) -> TorchSide | None:
        base = self.base.at_dtype(dtype)
        return None if base is None else Weighted(base, self.weights)


def _keeps_requires_grad(t: torch.Tensor, leaves: Mapping[str, torch.Tensor]) -> bool:
    """Whether torch's view rule makes t require grad under no_grad: t is an input that requires grad, or a view
    whose base requires grad."""
    if any(t is leaf for leaf in leaves.values()):
        return bool(t.requires_grad)
    base = t._base if t._is_view() else None
    return bool(base is not None and base.requires_grad)


def _zeros_if_none(g: torch.Tensor | None, like: torch.Tensor) -> np.ndarray:
    """autograd.grad(allow_unused=True) returns None for an input the output does not depend on: a zero gradient."""
    return numpy(g) if g is not None else np.zeros(tuple(like.shape))

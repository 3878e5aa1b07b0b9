"""The gradient checks: value, backward, vjp, grad, higher orders, jvp and the Jacobian, each against the exact quantity."""

from __future__ import annotations

import numpy as np

from ..compare import Diagnosis, Fact
from ..results import CheckResult
from ..torchside.autodiff import StateChanged, TorchSide
from ..torchside.paths import Path
from .context import MAX_BASIS, MAX_HIGHER, MAX_JACOBIAN, Ctx, each_path, scaled, weight_label
from .modes import MAX_ORDER as MAX_MODES
from .modes import check_modes, contract


def check_value(ctx: Ctx, r: CheckResult) -> None:
    value_function = ctx.case.value_function
    if value_function is not None:  # gradient_of: the derivatives are a surrogate's, the value the forward's own
        exact = ctx.exact.expression(value_function, ctx.case.output_shape)
        r.comparisons.append(ctx.cmp(exact, ctx.torch.value(), "value", "value", "forward"))
        return
    r.comparisons.append(ctx.cmp(ctx.exact.value(), ctx.torch.value(), "value", "value", "forward", formula="value"))


def check_backward(ctx: Ctx, r: CheckResult) -> None:
    case = ctx.case
    one_graph = None  # torch's own ops, one call: every path of this check on one forward graph
    if ctx.torch.one_graph():
        try:
            one_graph = ctx.torch.backward_on_one_graph(ctx.weights())
        except StateChanged:
            one_graph = None  # the separate calls below say what happened
    if int(np.prod(case.output_shape)) != 1:  # torch's rule: an implicit grad_output only for one element
        err = ctx.torch.backward_error(implicit=True)
        r.facts.append(Fact("backward", "y.backward() on an output of more than one element raises", True,
                            err is not None, err is not None, note=err))
    else:
        grads, others = one_graph[:2] if one_graph else ctx.torch.backward(case.backward_calls, case.zero_grad)
        path = str(Path.BACKWARD)
        calls = case.backward_calls
        if calls > 1:
            path += f" x{calls}" + ("" if case.zero_grad else " without zero_()")
        once = ctx.torch.backward(1, True)[0] if calls > 1 and not case.zero_grad else {}
        for name, got in grads.items():
            # y.backward() is v^T J with v = 1: no zero weight meets a pole of another input (jacobian() allows for
            # those, the Jacobian's own rule)
            exact = ctx.exact.vjp(np.ones(case.output_shape), name)
            c = ctx.cmp(exact, got, "backward", f"grad wrt {name}", path, name, formula="partials")
            c.reverse_ones = True
            if not c.passed and name in once and got is not None and np.allclose(got, calls * exact.lo, rtol=1e-6) \
                    and ctx.cmp(exact, once[name], "backward", "", path, name).passed:
                c.diagnosis = Diagnosis("accumulated", factor=float(calls), count=calls)  # the first call alone is right
            r.comparisons.append(c)
        for name, got in others.items():
            r.facts.append(Fact("backward", f"{name}.grad (requires_grad=False)", None, None if got is None else "a tensor",
                                got is None))
    for name, meta in ctx.torch.grad_metadata().items():
        want = (ctx.dtype, ctx.case.shapes[name])
        r.facts.append(Fact("backward", f"{name}.grad dtype and shape", want, meta, meta in (want, None),
                            note="a gradient must have its input's dtype and shape (a broadcast not reduced back?)"))
    w = ctx.weights()
    try:
        second = one_graph[2] if one_graph else ctx.torch.second_backward(w)
    except StateChanged as exc:
        r.facts.append(Fact("backward", "backward(retain_graph=True) then backward() runs", True, False, False,
                            note="the first call ran and the graph was retained: the backward changed a tensor the "
                                 f"graph saved (in place), and torch refused the second call ({exc.error[:160]})",
                            cause="mutated_state"))
        return
    got_error = second["error"] is not None
    # the probe: the same two calls with retain_graph=True ran, so an error without it is the freed graph's. The
    # graph's saved tensors are read from its nodes' _saved_* attributes; some torch versions do not list every one
    # there (cross_entropy's in torch 2.11), and a graph that was freed proves that something was saved
    freed = second["freed"]
    expected_error = bool(second["saved"]) or freed
    ok = got_error == expected_error and (not got_error or freed)
    why = "the graph saved tensors, which the first backward freed" if expected_error else \
        "no node of the graph saved a tensor, so nothing was freed"
    r.facts.append(Fact("backward", "second backward without retain_graph raises", expected_error, got_error, ok,
                        note=f"{why}; torch said: {second['error']}" if got_error else why))
    for name, got in second["retained"].items():
        r.comparisons.append(ctx.cmp(scaled(ctx.exact.vjp(w, name), 2), got, "backward", f"grad wrt {name}",
                                     "backward(retain_graph=True) then backward(): 2x", name))


def check_vjp(ctx: Ctx, r: CheckResult) -> None:
    weights = [("v = seeded random", ctx.random(ctx.case.output_shape), False)]
    if not ctx.scalar:  # a scalar output's v = 1 is the backward check; a random scalar v catches an ignored grad_output
        weights.insert(0, (weight_label(ctx), ctx.weights(), ctx.case.grad_output is None))
    for label, v, ones in weights:
        for path, grads in each_path(ctx, r, lambda side: side.vjp(v)):
            for name, got in grads.items():
                c = ctx.cmp(ctx.exact.vjp(v, name), got, "vjp", f"v^T J wrt {name} ({label})", path, name,
                            formula="partials", weights=v)
                c.reverse_ones = ones
                r.comparisons.append(c)
    check_batched(ctx, r)


BATCH = 3  # grad_outputs (tangents) at once in the batched paths
BATCH_STREAM = 1004


def check_batched(ctx: Ctx, r: CheckResult) -> None:
    """Several seeded random grad_outputs at once (autograd.grad's is_grads_batched, torch.func.vmap over vjp): each
    row against its own v^T J, as gradcheck's check_batched_grad asks of a batching rule."""
    from ..torchside.nested import batched_vjp

    rng = ctx.stream(BATCH_STREAM)
    vs = [ctx.random(ctx.case.output_shape, rng) for _ in range(BATCH)]
    for path, grads in each_path(ctx, r, lambda side: batched_vjp(side, vs), batched=True):
        for name, got in grads.items():
            for k, v in enumerate(vs):
                row = got[k] if got is not None and np.shape(got)[:1] == (BATCH,) else got
                r.comparisons.append(ctx.cmp(ctx.exact.vjp(v, name), row, "vjp",
                                             f"v_{k + 1}^T J wrt {name} ({BATCH} seeded random v at once)", path,
                                             name, formula="partials", weights=v))


REPEATS = 3  # distinct seeded random grad_outputs through one retained graph, then the first one again
REPEAT_STREAM = 1001  # the repeat check's own random stream
HIGHER_STREAM = 1003  # the v of a non-scalar output's higher orders


def check_repeated(ctx: Ctx, r: CheckResult) -> None:
    """Backward called again and again on one retained graph with distinct seeded random grad_outputs: each must be
    v^T J (a backward that changes its saved tensors in place is right only the first time, and only a v other
    than ones shows it), the first v again must give the first result (reproducible), and no grad_output may be
    changed by the backward it was passed to."""
    rng = ctx.stream(REPEAT_STREAM)
    vs = [ctx.random(ctx.case.output_shape, rng) for _ in range(REPEATS)]
    try:
        ran = each_path(ctx, r, lambda side: {Path.RETAINED: lambda: side.retained(vs + [vs[0]])})
    except StateChanged as exc:
        r.facts.append(Fact("repeat", f"backward call {exc.call} through one retained graph runs", True, False, False,
                            note="the first call ran: the backward changed a tensor the graph saved (in place, e.g. "
                                 f"grad = ctx.saved; grad *= grad_output), and torch refused the next call "
                                 f"({exc.error[:160]})", cause="mutated_state"))
        return
    if not ran:  # torch refuses autograd.grad on this code (recorded as unsupported, with the reason)
        return
    ((_, (grads, intact)),) = ran
    first_right: dict[str, bool] = {}
    for k, (v, got) in enumerate(zip(vs, grads), start=1):
        for name, g in got.items():
            c = ctx.cmp(ctx.exact.vjp(v, name), g, "repeat", f"v^T J wrt {name} (call {k} of {REPEATS}, v_{k} seeded "
                        "random)", Path.RETAINED, name, formula="partials", weights=v)
            if k == 1:
                first_right[name] = c.passed
            elif not c.passed and first_right.get(name) and (c.diagnosis is None or c.diagnosis.kind in
                                                            ("partial", "factor", "relative", "region")):
                c.diagnosis = Diagnosis("mutated_state", count=k)
            r.comparisons.append(c)
    for name, again in grads[-1].items():
        first = grads[0][name]
        with np.errstate(invalid="ignore"):
            same = (again == first) | (np.isnan(first) & np.isnan(again))  # inf twice, NaN twice: the same
            gap = np.where(same, 0.0, np.abs(again - first))
        diff = float(np.max(np.nan_to_num(gap, nan=np.inf))) if np.size(first) else 0.0
        with np.errstate(invalid="ignore"):
            bound = float(np.max(np.nan_to_num(ctx.tolerance.allowed(np.abs(first)), nan=0.0))) if np.size(first) else 0.0
        r.facts.append(Fact("repeat", f"the same v on the same graph gives the same grad wrt {name} (reproducible)",
                            "equal", "equal" if diff == 0 else f"differs by {diff:.3g}", diff == 0 or diff <= bound,
                            note="non-determinism within the tolerance passes" if 0 < diff <= bound else None))
    for k, ok in enumerate(intact[:REPEATS], start=1):
        if not ok:
            r.facts.append(Fact("repeat", f"grad_output v_{k} unchanged by the backward it was passed to", True, False,
                                False, note="the backward modified grad_output in place (e.g. grad_output.div_(n)): "
                                            "the caller's tensor is corrupted", cause="grad_output_modified"))
            break


def check_undefined(ctx: Ctx, r: CheckResult) -> None:
    """gradcheck's check_undefined_grad: a Function with several outputs, used only in part, gets an undefined
    grad_output (None) for the others; its backward must read it as zeros."""
    parts = ctx.torch.output_parts()
    if not parts or len(parts) < 2:
        r.skipped = "the implementation returns one tensor: no grad_output can be undefined"
        return
    w = ctx.weights() if ctx.case.grad_output is not None else ctx.random(ctx.case.output_shape)
    sizes = [int(np.prod(p, dtype=np.int64)) for p in parts]
    starts = np.cumsum([0] + sizes)
    for k in range(len(parts)):
        flat = w.reshape(-1).copy()
        flat[starts[k]:starts[k + 1]] = 0
        for name, got in ctx.torch.undefined(w, k).items():
            r.comparisons.append(ctx.cmp(ctx.exact.vjp(flat.reshape(w.shape), name), got, "undefined",
                                         f"v^T J wrt {name}, output {k + 1} unused (its grad_output undefined)",
                                         Path.UNDEFINED, name, formula="partials"))


def check_grad(ctx: Ctx, r: CheckResult) -> None:
    w = None if ctx.scalar else ctx.weights()
    path = "autograd.grad" if w is None else f"autograd.grad(grad_outputs={weight_label(ctx)})"
    for _, (grads, touched) in each_path(ctx, r, lambda side: {path: lambda: side.grad(w)}):
        for name, got in grads.items():
            exact = ctx.exact.vjp(np.ones(()) if w is None else w, name)  # a scalar's implicit grad_output is 1
            r.comparisons.append(ctx.cmp(exact, got, "grad", f"grad wrt {name}", path, name, formula="partials"))
        r.facts.append(Fact("grad", "autograd.grad leaves .grad untouched", False, touched, not touched))


def check_higher(ctx: Ctx, r: CheckResult) -> None:
    """Orders 2..N of a scalar output; of a non-scalar one, of sum(v * out) with v the case's grad_output or a seeded
    random v (every path then runs on that scalar: torch's rules for the output's ops are the ones exercised)."""
    n = sum(i.value.size for i in ctx.case.differentiable)
    if ctx.case.order < 2:
        r.skipped = "order is 1"
        return
    v = None if ctx.scalar else (ctx.weights() if ctx.case.grad_output is not None else
                                 ctx.random(ctx.case.output_shape, ctx.stream(HIGHER_STREAM)))
    of = "y" if v is None else "(v . y)"

    def on(side: TorchSide) -> TorchSide:
        return side if v is None else side.weighted(v)

    for k in range(2, ctx.case.order + 1):
        if n**k > MAX_HIGHER:
            r.skipped = f"the order-{k} derivative has {n**k} entries; the limit is {MAX_HIGHER}"
            return
        exact = ctx.exact.derivative(k, v) if v is not None else ctx.exact.derivative(k)
        for path, got in each_path(ctx, r, lambda side: {Path.CREATE_GRAPH: lambda: on(side).derivatives(k)}):
            r.comparisons.append(ctx.cmp(exact, got, "higher", f"d{k}{of} (order {k})", path))
        if r.unsupported and not r.comparisons:
            return
        if k == 2:
            for path, got in each_path(ctx, r, lambda side: on(side).hessians()):
                r.comparisons.append(ctx.cmp(exact, got, "higher", "Hessian" if v is None else "Hessian of v . y",
                                             path))
            u = ctx.random((n,))
            hu = contract(exact, u, ctx.dtype)  # H is symmetric: sum_j u_j H[j, .] = H u
            for path, got in each_path(ctx, r, lambda side: {Path.DOUBLE_BACKWARD: lambda: on(side).hvp(u)}):
                r.comparisons.append(ctx.cmp(hu, got, "higher", "H u (u = seeded random)", path))
        if k <= MAX_MODES:
            check_modes(ctx, r, k, exact, on)  # every composition of forward and reverse mode


def check_jvp(ctx: Ctx, r: CheckResult) -> None:
    from ..torchside.nested import batched_jvp

    u = {i.name: ctx.random(i.shape) for i in ctx.case.differentiable}
    exact = ctx.exact.jvp(u)
    for path, got in each_path(ctx, r, lambda side: side.jvp(u)):
        r.comparisons.append(ctx.cmp(exact, got, "jvp", "J u (u = seeded random)", path))
    rng = ctx.stream(BATCH_STREAM + 1)
    us = [{i.name: ctx.random(i.shape, rng) for i in ctx.case.differentiable} for _ in range(BATCH)]
    for path, rows in each_path(ctx, r, lambda side: batched_jvp(side, us), batched=True):
        for k, uk in enumerate(us):
            row = rows[k] if np.shape(rows)[:1] == (BATCH,) else rows
            r.comparisons.append(ctx.cmp(ctx.exact.jvp(uk), row, "jvp",
                                         f"J u_{k + 1} ({BATCH} seeded random u at once)", path))


def check_jacobian(ctx: Ctx, r: CheckResult) -> None:
    m, n = int(np.prod(ctx.case.output_shape)), sum(i.value.size for i in ctx.case.differentiable)
    if m * n > MAX_JACOBIAN:
        r.skipped = f"the Jacobian has {m * n} entries; the limit is {MAX_JACOBIAN}"
        return
    if max(m, n) ** 2 > MAX_BASIS:  # jacfwd builds an n x n basis of tangents, jacrev an m x m one
        r.skipped = (f"torch.func would build a {max(m, n)} x {max(m, n)} basis ({max(m, n) ** 2} entries); the "
                     f"limit is {MAX_BASIS}")
        return
    for path, grads in each_path(ctx, r, lambda side: side.jacobian(), batched=True):
        for name, got in grads.items():
            r.comparisons.append(ctx.cmp(ctx.exact.jacobian(name), got, "jacobian", f"J wrt {name}", path, name))


def check_constant_output(ctx: Ctx, r: CheckResult) -> None:
    """An output that requires no grad: backward must raise, and the exact derivative must be zero."""
    err = ctx.torch.backward_error(implicit=False)  # a RuntimeError's text, or None: torch's type for this rule
    r.facts.append(Fact("backward", "y.backward() raises: the output does not require grad", True, err is not None,
                        err is not None, note=err))
    w = ctx.weights()
    for i in ctx.case.differentiable:
        zero = np.zeros(i.shape)
        r.comparisons.append(ctx.cmp(ctx.exact.vjp(w, i.name), zero, "backward", f"grad wrt {i.name}",
                                     "exact derivative vs 0 (nothing reaches the input)", i.name))

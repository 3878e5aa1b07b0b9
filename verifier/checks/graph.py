"""The graph checks: accumulation without zero_(), the autograd graph's facts (is_leaf, grad_fn, .grad), no_grad and detach."""

from __future__ import annotations

import numpy as np

from ..case.model import Case
from ..compare import Diagnosis, Fact
from ..language.analysis import expected_grad_fn, grad_sources
from ..language.nodes import Call, Index, Name, Node
from ..results import CheckResult
from .context import Ctx, scaled


def check_accumulate(ctx: Ctx, r: CheckResult) -> None:
    w = ctx.weights()
    exact = {i.name: ctx.exact.vjp(w, i.name) for i in ctx.case.differentiable}
    for path, calls in ctx.torch.accumulate(ctx.case.accumulate_calls, w).items():
        zeroing = path.zeroes
        first_right: dict[str, bool] = {}
        for k, grads in enumerate(calls, start=1):
            for name, got in grads.items():
                target = exact[name] if zeroing else scaled(exact[name], k)
                factor = "" if zeroing else f" = {k} x grad"
                c = ctx.cmp(target, got, "accumulate", f"{name}.grad after call {k}{factor}", path, name)
                if k == 1:
                    first_right[name] = c.passed
                elif zeroing and not c.passed and first_right.get(name) and got is not None and \
                        np.allclose(got, scaled(exact[name], k).lo, rtol=1e-6, atol=0):
                    c.diagnosis = Diagnosis("accumulated", factor=float(k), count=k)  # the first call alone was right
                r.comparisons.append(c)


def check_graph(ctx: Ctx, r: CheckResult) -> None:
    case = ctx.case
    w = ctx.weights()
    facts = ctx.torch.graph(w)
    grad_names = {i.name for i in case.differentiable}
    expected: dict[str, dict[str, object]] = {}
    for i in case.inputs:
        expected[i.name] = {"is_leaf": True, "requires_grad": i.requires_grad, "grad_fn": None}
    nodes = [(d.name, d.node) for d in case.defines] + [("output", case.function)]
    source = alias_sources(case)
    reach: dict[str, set[str]] = {i.name: {i.name} for i in case.differentiable}  # node -> leaves its grad reaches
    for name, node in nodes:
        reach[name] = grad_sources(node, reach)
        if isinstance(node, Name):  # an alias is the very same tensor as its source
            expected[name] = dict(expected[node.id])
            continue
        req = bool(reach[name])
        # the node torch names is the last op of what ran: the reference's for the lowered definition; for a user's
        # implementation (a custom Function's node, its own ops) only that there is one
        fn = expected_grad_fn(node, {n for n, leaves in reach.items() if leaves}) if ctx.torch.is_lowered() else ""
        expected[name] = {"is_leaf": not req, "requires_grad": req, "grad_fn": fn if req else None}
    reached = reach["output"] if facts["output"]["requires_grad"] else set()
    for name, exp in expected.items():
        if name not in facts:  # a user's implementation computes its intermediates inside: torch shows none of them
            r.facts.append(Fact("graph", f"{name} (an intermediate of the reference)", "not exposed", "not exposed",
                                True, note="the implementation's own intermediates are not visible to the checks"))
            continue
        got = facts[name]
        for key in ("is_leaf", "requires_grad"):
            r.facts.append(Fact("graph", f"{name}.{key}", exp[key], got[key], exp[key] == got[key]))
        want = exp["grad_fn"]
        if want == "":
            r.facts.append(Fact("graph", f"{name}.grad_fn", "a backward node", got["grad_fn"], got["grad_fn"] is not None))
        else:
            r.facts.append(Fact("graph", f"{name}.grad_fn", want, got["grad_fn"], want == got["grad_fn"]))
        leaf_with_grad = exp["is_leaf"] and exp["requires_grad"] and source[name] in reached
        retained = source[name] in case.retain_grad and exp["requires_grad"] and bool(reached)
        if leaf_with_grad or retained:
            origin = source[name]
            exact = ctx.exact.vjp(w, origin) if origin in grad_names else ctx.exact.node_gradient(origin, w)
            if got["grad"] is None:
                r.facts.append(Fact("graph", f"{name}.grad", "a tensor", None, False))
            else:
                r.comparisons.append(ctx.cmp(exact, got["grad"], "graph", f"{name}.grad" +
                                             (" (retain_grad)" if retained else ""), "y.backward()", None))
        else:
            why = ("not a leaf and retain_grad() not called" if not exp["is_leaf"] else
                   "requires_grad is False" if not exp["requires_grad"] else
                   "no path without detach() leads from it to the output")
            r.facts.append(Fact("graph", f"{name}.grad", None, None if got["grad"] is None else "a tensor",
                                got["grad"] is None, note=why))


def alias_sources(case: Case) -> dict[str, str]:
    """Each input, intermediate and 'output' -> the node whose tensor it is (define a: x and function: a are the very
    tensor x)."""
    source = {i.name: i.name for i in case.inputs}
    for name, node in [(d.name, d.node) for d in case.defines] + [("output", case.function)]:
        source[name] = source[node.id] if isinstance(node, Name) else name
    return source


def _viewed(node: Node, source: dict[str, str]) -> str | None:
    """The input a node is a view of (indexing and transposes of it), else None."""
    if isinstance(node, Name):
        return source.get(node.id)
    if isinstance(node, Index):
        return _viewed(node.base, source)
    if isinstance(node, Call) and node.func == "transpose" and node.args:
        return _viewed(node.args[0], source)
    return None


def check_nograd(ctx: Ctx, r: CheckResult) -> None:
    facts = ctx.torch.nograd()
    grad_inputs = {i.name for i in ctx.case.differentiable}
    source = alias_sources(ctx.case)
    for name, node in [(d.name, d.node) for d in ctx.case.defines] + [("output", ctx.case.function)]:
        base = _viewed(node, source)  # a view made under no_grad keeps its base's requires_grad (torch's view rule)
        if base is not None:
            source[name] = base
    leaves = {n for n, origin in source.items() if origin in grad_inputs}  # require grad even under no_grad
    # the lowered definition is predicted from the expression; a user's implementation is judged by what it
    # returned (a Function returning x.view_as(x) keeps x's requires_grad under no_grad, whatever the reference)
    output = "output" in leaves if ctx.torch.is_lowered() else facts["no_grad output is a view of a tensor requiring grad"]
    want = {"no_grad output requires_grad": output,
            "no_grad intermediates requiring grad": sorted(d.name for d in ctx.case.defines if d.name in leaves),
            "detach() requires_grad": False, "detach() shares storage": True, "detach() value equal": True}
    for label, expected in want.items():
        r.facts.append(Fact("nograd", label, expected, facts[label], facts[label] == expected))

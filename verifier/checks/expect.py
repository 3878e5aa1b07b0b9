"""The expect check: hand-derived values three ways (hand vs sympy, hand vs autograd)."""

from __future__ import annotations

import numpy as np

from ..compare import Fact
from ..language.nodes import Node, unparse
from ..results import CheckResult
from ..torchside.paths import Path
from ..values import Exact
from .context import Ctx, scaled


def check_expect(ctx: Ctx, r: CheckResult) -> None:
    """Hand-derived values, three ways: hand vs sympy, hand vs autograd (and so sympy vs autograd, elsewhere)."""
    ex = ctx.case.expect
    if not ex:
        r.skipped = "the case gives no expect values"
        return
    if ctx.point > 0:
        r.skipped = "expect values refer to the first point"
        return
    def hand(value: np.ndarray | Node, shape: tuple[int, ...]) -> Exact:
        if isinstance(value, np.ndarray):
            return Exact(value.astype(np.float64), value.astype(np.float64))
        return ctx.exact.expression(value, shape)

    def label(value: np.ndarray | Node) -> str:
        return "hand value" if isinstance(value, np.ndarray) else f"hand formula {unparse(value)}"

    w = ctx.weights()
    if ex.value is not None:
        mine = hand(ex.value, ctx.case.output_shape)
        r.comparisons.append(ctx.cmp(ctx.exact.value(), mine.lo, "expect", "value", f"{label(ex.value)} vs sympy"))
        r.comparisons.append(ctx.cmp(mine, ctx.torch.value(), "expect", "value", f"{label(ex.value)} vs autograd",
                                     source="hand"))
    torch_grads = ctx.torch.vjp(w)[Path.BACKWARD_V]() if (ex.grad or ex.vjp) else {}
    for section, values in (("grad", ex.grad), ("vjp", ex.vjp)):
        for name, value in values.items():
            mine = hand(value, ctx.case.shapes[name])
            r.comparisons.append(ctx.cmp(ctx.exact.vjp(w, name), mine.lo, "expect", f"{section} wrt {name}",
                                         f"{label(value)} vs sympy", name))
            if ctx.scalar and section == "grad" and ctx.case.shapes[name] == () and r.comparisons[-1].formula is None:
                try:  # the table shows sympy's derivative beside the hand one
                    r.comparisons[-1].formula = ctx.exact.ref.column_formula(name, 0)
                except (ValueError, IndexError, AttributeError):
                    pass
            r.comparisons.append(ctx.cmp(mine, torch_grads[name], "expect", f"{section} wrt {name}",
                                         f"{label(value)} vs autograd", name, source="hand"))
    if ex.accumulate:
        calls = max(len(v) for v in ex.accumulate.values())
        runs = ctx.torch.accumulate(calls, w)
        run = runs[Path.ACCUMULATE_FRESH if ctx.scalar else Path.ACCUMULATE_RETAINED]
        for name, seq in ex.accumulate.items():
            e = ctx.exact.vjp(w, name)
            for k, value in enumerate(seq, start=1):
                r.comparisons.append(ctx.cmp(scaled(e, k), value, "expect", f"{name}.grad after call {k}",
                                             "hand value vs sympy", name))
                r.comparisons.append(ctx.cmp(hand(value, value.shape), run[k - 1][name], "expect", f"{name}.grad after call {k}",
                                             "hand value vs autograd", name, source="hand"))
    n = sum(i.value.size for i in ctx.case.differentiable)
    for order, value in ex.higher.items():
        mine = hand(value, (n,) * order)
        r.comparisons.append(ctx.cmp(ctx.exact.derivative(order), mine.lo, "expect", f"order-{order} derivative",
                                     f"{label(value)} vs sympy"))
        r.comparisons.append(ctx.cmp(mine, ctx.torch.derivatives(order), "expect", f"order-{order} derivative",
                                     f"{label(value)} vs autograd", source="hand"))
    if ex.graph:
        facts = ctx.torch.graph(w)
        for node, wanted in ex.graph.items():
            for key, value in wanted.items():
                got = facts[node][key]
                if key == "grad" and value is not None and got is not None:
                    r.comparisons.append(ctx.cmp(hand(value, got.shape), got, "expect", f"{node}.grad", "hand value vs autograd",
                                                 source="hand"))
                else:
                    shown = got if key != "grad" else (None if got is None else "a tensor")
                    r.facts.append(Fact("expect", f"{node}.{key}", value, shown, value == shown))

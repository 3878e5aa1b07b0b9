"""The expect section of a case: hand-derived values and formulas, checked against the output's and inputs' shapes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import CaseError
from ..language.analysis import infer_shape
from ..language.parse import parse
from ..language.shapes import Shape
from .fields import Ctx, check_keys, kind, number, tensor
from .model import MAX_ORDER, Expect, Input
from .points import fit_value


def _hand(ctx: Ctx, raw: Any, shape: Shape, key: str, mapping: Any, subkey: Any, shapes: dict[str, Shape]) -> Any:
    """A hand-derived value: a number, a nested list, or a formula in the case language (the manual derivative)."""
    if isinstance(raw, str) and not _is_number(raw):
        try:
            node = parse(raw, set(shapes))
            got = infer_shape(node, shapes)
        except CaseError as exc:
            raise ctx.wrap(exc, key, mapping, subkey) from None
        if got != shape and got != ():
            raise ctx.error(key, f"formula {raw!r:.60} has shape {list(got)}, expected {list(shape)}", mapping, subkey)
        return node
    return fit_value(ctx, raw, shape, key, mapping, subkey)


def _is_number(text: str) -> bool:
    try:
        number(text, finite=False)
    except ValueError:
        return False
    return True


def parse_expect(ctx: Ctx, raw: Any, inputs: dict[str, Input], defines: set[str], output_shape: Shape,
            shapes: dict[str, Shape] | None = None) -> Expect:
    if raw is None:
        return Expect()
    if not isinstance(raw, Mapping):
        raise ctx.error("expect", f"expect is a mapping of check: values, got {kind(raw)}")
    check_keys(ctx, raw, ("value", "grad", "vjp", "accumulate", "higher", "graph"), "expect")
    diff = {n: i for n, i in inputs.items() if i.requires_grad}

    def per_input(key: str) -> dict[str, Any]:
        section = raw.get(key, {})
        if not isinstance(section, Mapping):
            raise ctx.error(f"expect.{key}", f"expected a mapping {{input: value}}, got {kind(section)}", raw, key)
        for n in section:
            if n not in diff:
                raise ctx.error(f"expect.{key}", f"{n!r} is not a differentiable input; those are: "
                                f"{', '.join(diff) or '(none)'}", section, n)
        return dict(section)

    shapes = shapes or {}
    value = _hand(ctx, raw["value"], output_shape, "expect.value", raw, "value", shapes) if "value" in raw else None
    grad = {n: _hand(ctx, v, diff[n].shape, f"expect.grad.{n}", raw.get("grad"), n, shapes)
            for n, v in per_input("grad").items()}
    vjp = {n: _hand(ctx, v, diff[n].shape, f"expect.vjp.{n}", raw.get("vjp"), n, shapes)
           for n, v in per_input("vjp").items()}
    accumulate = {}
    for n, seq in per_input("accumulate").items():
        if not isinstance(seq, list) or not seq:
            raise ctx.error(f"expect.accumulate.{n}", f"expected a list, one value per backward call, got {kind(seq)}",
                            raw.get("accumulate"), n)
        accumulate[n] = tuple(fit_value(ctx, v, diff[n], f"expect.accumulate.{n}", raw.get("accumulate"), n) for v in seq)
    higher = {}
    section = raw.get("higher", {})
    if not isinstance(section, Mapping):
        raise ctx.error("expect.higher", f"expected a mapping {{order: value}}, got {kind(section)}", raw, "higher")
    n_diff = sum(i.value.size for i in diff.values())
    for order, v in section.items():
        if isinstance(order, bool) or not isinstance(order, int) or not 2 <= order <= MAX_ORDER:
            raise ctx.error("expect.higher", f"orders are integers 2..{MAX_ORDER}, got {order!r:.20}", section, order)
        higher[order] = _hand(ctx, v, (n_diff,) * order, f"expect.higher.{order}", section, order, shapes)
    graph = {}
    section = raw.get("graph", {})
    if not isinstance(section, Mapping):
        raise ctx.error("expect.graph", f"expected a mapping {{node: facts}}, got {kind(section)}", raw, "graph")
    for node, facts in section.items():
        if node not in inputs and node not in defines and node != "output":
            raise ctx.error("expect.graph", f"{node!r} is not a node; nodes: {', '.join([*inputs, *defines, 'output'])}",
                            section, node)
        if not isinstance(facts, Mapping):
            raise ctx.error(f"expect.graph.{node}", f"expected a mapping of facts, got {kind(facts)}", section, node)
        check_keys(ctx, facts, ("is_leaf", "requires_grad", "grad_fn", "grad"), f"expect.graph.{node}")
        checked: dict[str, Any] = {}
        for k, v in facts.items():
            if k in ("is_leaf", "requires_grad") and not isinstance(v, bool):
                raise ctx.error(f"expect.graph.{node}.{k}", f"expected true or false, got {kind(v)}", facts, k)
            if k == "grad_fn" and v is not None and not isinstance(v, str):
                raise ctx.error(f"expect.graph.{node}.grad_fn", f"expected a class name or null, got {kind(v)}",
                                facts, k)
            if k == "grad" and v is not None:
                try:
                    v = tensor(v)
                except ValueError as exc:
                    raise ctx.error(f"expect.graph.{node}.grad", str(exc), facts, k) from None
            checked[k] = v
        graph[node] = checked
    return Expect(value=value, grad=grad, vjp=vjp, accumulate=accumulate, higher=higher, graph=graph)

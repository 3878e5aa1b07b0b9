"""Walks over an autograd graph: the nodes behind an output, what they saved, which custom Functions they are."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


def graph_nodes(fn: Any) -> Iterator[Any]:
    """Every node of the graph behind grad_fn ``fn``, once each (depth first)."""
    stack, seen = [fn], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(n for n, _ in getattr(node, "next_functions", ()))


def custom_functions(output: Any) -> set[type]:
    """The custom autograd.Function classes whose backward nodes are in the graph of output."""
    found: set[type] = set()
    for node in graph_nodes(getattr(output, "grad_fn", None)):
        cls = getattr(node, "_forward_cls", None)  # BackwardCFunction nodes of custom Functions carry their class
        if isinstance(cls, type) and issubclass(cls, torch.autograd.Function):
            found.add(cls)
    return found


def has_saved_tensors(fn: Any) -> bool:
    """True when some node of the graph saved a tensor for backward (so backward frees something)."""
    for node in graph_nodes(fn):
        try:
            if getattr(node, "saved_tensors", ()):  # a custom autograd.Function's ctx.save_for_backward
                return True
        except RuntimeError:
            return True
        for attr in dir(node):
            if attr.startswith("_saved_"):
                try:
                    value = getattr(node, attr)
                except RuntimeError:
                    return True
                values = value if isinstance(value, (tuple, list)) else (value,)
                if any(isinstance(v, torch.Tensor) for v in values):
                    return True
    return False

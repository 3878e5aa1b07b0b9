"""The arguments of a traced aten op, read as case-language nodes, and the table the translations register in
(:mod:`verifier.torchside.aten_math`, :mod:`verifier.torchside.aten_layers`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..language.nodes import Bin, Call, Cmp, Node, Num
from .tracing import FALSE, TRUE, Failure, Tracer, elements, number


class NoTranslation(Exception):
    """An argument has no translation: the op's outputs carry the reason."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class Args:
    """An op's arguments by their schema names, read as nodes."""

    def __init__(self, tracer: Tracer, func: Any, bound: dict[str, Any], outs: list[torch.Tensor]) -> None:
        self.tracer, self.func, self.bound, self.outs = tracer, func, bound, outs
        self.live = False

    def v(self, name: str, default: Any = None) -> Any:
        value = self.bound.get(name, default)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            where = self.tracer.escaped.get(id(value)) or self.tracer.escaped_values.get(float(value))
            if where is not None:  # the same object, or the same number (torch hands a new Python float on)
                raise NoTranslation(Failure(f"a tensor's value used as a plain number ({where}): the trace cannot follow it"))
        return value

    def real(self, name: str) -> Any:
        return self.bound.get(name)

    def n(self, name: str) -> Node:
        """A tensor argument's node (a number: its constant), for arithmetic: booleans count 1 and 0."""
        value = self.v(name)
        if isinstance(value, torch.Tensor):
            node = self.read(value)
            return Call("where", (node, Num("1"), Num("0"))) if value.dtype == torch.bool else node
        return self.const(value)

    def cond(self, name: str) -> Node:
        """A condition argument: a boolean tensor as it is, any other as `!= 0`."""
        value = self.v(name)
        if isinstance(value, torch.Tensor):
            node = self.read(value)
            return node if value.dtype == torch.bool else Cmp("!=", node, Num("0"))
        return TRUE if value else FALSE

    def read(self, t: torch.Tensor) -> Node:
        value = self.tracer.read(t)
        self.live |= value.live
        if isinstance(value.node, Failure):
            raise NoTranslation(value.node)
        return value.node

    @staticmethod
    def const(value: Any) -> Node:
        node = number(value)
        if isinstance(node, Failure):
            raise NoTranslation(node)
        return node

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.bound[name].shape)

    def out_shape(self, k: int = 0) -> tuple[int, ...]:
        return tuple(self.outs[k].shape)


Handler = Callable[[Args], Any]
TABLE: dict[str, Handler] = {}


def op(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for name in names:
            TABLE[name] = fn
        return fn

    return register


def call(name: str, *args: Node, axis: Any = None) -> Node:
    return Call(name, tuple(args), axis)


def scaled(factor: Any, node: Node) -> Node:
    return node if factor == 1 else Bin("*", Args.const(factor), node)


def reshaped(node: Node, shape: tuple[int, ...]) -> Node:
    """The same elements in another shape (keepdim's ones, an unsqueeze)."""
    size = int(np.prod(shape, dtype=np.int64))
    return elements([node], np.zeros(size, dtype=np.int64), np.arange(size), shape)


def dims(value: Any, ndim: int) -> int | tuple[int, ...] | None:
    """aten's dim argument as the case language's axis: None, [] and every axis mean all of them."""
    if value is None:
        return None
    if isinstance(value, int):
        value = [value]
    axes = sorted({int(d) % max(ndim, 1) for d in value})
    if not axes or len(axes) == ndim:
        return None
    return axes[0] if len(axes) == 1 else tuple(axes)



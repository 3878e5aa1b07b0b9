"""What torch supports for a program, decided by capability, never by the wording of an error.

A path that raises is *unsupported* (not a failure) when the exception's type says so (NotImplementedError), when a
custom autograd.Function in the program lacks what the path needs (read off the class: its jvp, setup_context, vmap
and backward), or when the same path also raises on the case's own definition lowered to torch (torch itself lacks
the rule). A half-precision failure that float32 does not share is a missing kernel for the dtype. Each reason is
data (a kind and the names involved); report/ words it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch

from .paths import Need, Path


class Why(Enum):
    """Why a path is not verified."""

    NOT_IMPLEMENTED = "torch raised NotImplementedError"
    FUNCTION_LACKS = "a custom autograd.Function lacks what the path needs"
    TORCH_LACKS = "the path fails on the case's own definition too: torch lacks the rule"
    NO_KERNEL = "torch has no kernel for the dtype (float32 runs)"


@dataclass(frozen=True)
class Unsupported:
    """A path torch (or the user's Function) does not support: why, and the names involved."""

    path: str
    why: Why
    functions: tuple[str, ...] = ()
    needs: tuple[Need, ...] = ()
    error: str = field(default="", compare=False)  # the exception's type and first line, shown as evidence only


class NoKernel(Exception):
    """torch has no kernel for the dtype on some op the check needs: the check is skipped, not failed."""

    def __init__(self, dtype: str, error: str) -> None:
        super().__init__(f"{dtype}: {error}")
        self.dtype, self.error = dtype, error


def custom_functions(output: Any) -> set[type]:
    """The custom autograd.Function classes whose backward nodes are in the graph of output."""
    found: set[type] = set()
    stack = [getattr(output, "grad_fn", None)]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        cls = getattr(node, "_forward_cls", None)  # BackwardCFunction nodes of custom Functions carry their class
        if isinstance(cls, type) and issubclass(cls, torch.autograd.Function):
            found.add(cls)
        stack.extend(n for n, _ in getattr(node, "next_functions", ()))
    return found


def _overrides(cls: type, name: str) -> bool:
    return getattr(cls, name, None) is not getattr(torch.autograd.Function, name, None)


def lacks(cls: type, need: Need) -> bool:
    """Whether the custom Function class lacks a capability (read off the class, as torch itself decides)."""
    from torch.autograd.function import _is_setup_context_defined

    functorch = _is_setup_context_defined(getattr(cls, "setup_context", None))
    if need is Need.JVP:
        return not _overrides(cls, "jvp")
    if need is Need.FUNCTORCH:
        return not functorch
    if need is Need.VMAP:
        return not functorch or not (getattr(cls, "generate_vmap_rule", False) or _overrides(cls, "vmap"))
    # Need.TWICE: @once_differentiable wraps backward in torch's own wrapper
    backward = getattr(cls, "backward", None)
    return getattr(backward, "__wrapped__", None) is not None and \
        getattr(backward, "__module__", "") == torch.autograd.function.__name__


def missing(functions: set[type], path: Path | str) -> tuple[tuple[str, ...], tuple[Need, ...]]:
    """The Functions lacking something the path needs, and what they lack."""
    needs = Path(path).needs if path in Path._value2member_map_ else frozenset()
    names, lacked = [], []
    for cls in sorted(functions, key=lambda c: c.__qualname__):
        gaps = [n for n in sorted(needs, key=lambda n: n.name) if lacks(cls, n)]
        if gaps:
            names.append(cls.__qualname__)
            lacked.extend(g for g in gaps if g not in lacked)
    return tuple(names), tuple(lacked)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:160] if text else ''}"

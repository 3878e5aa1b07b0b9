"""The torch paths, as data: each path's identity, what it needs from a custom autograd.Function, and what it does
to .grad. The words shown for a path are its value (report/ prints them); checks decide on the members' fields."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Need(Enum):
    """A capability a path needs from every custom autograd.Function in the program."""

    JVP = "a jvp staticmethod (forward-mode AD)"
    FUNCTORCH = "a setup_context staticmethod (torch.func transforms)"
    VMAP = "a vmap staticmethod or generate_vmap_rule = True (torch.func.vmap and the transforms built on it)"
    TWICE = "a backward that is itself differentiable (not @once_differentiable)"


class Path(str, Enum):
    """One way torch computes a derivative. The value is the path's label in reports and JSON."""

    BACKWARD = "y.backward()"
    BACKWARD_V = "y.backward(v)"
    GRAD_V = "autograd.grad(grad_outputs=v)"
    FUNC_VJP = "torch.func.vjp"
    FORWARD_AD = "forward_ad"
    FUNC_JVP = "torch.func.jvp"
    JACREV = "torch.func.jacrev"
    JACFWD = "torch.func.jacfwd"
    CREATE_GRAPH = "autograd.grad(create_graph=True)"
    FUNCTIONAL_HESSIAN = "autograd.functional.hessian"
    FUNC_HESSIAN = "torch.func.hessian"
    DOUBLE_BACKWARD = "double backward: grad(grad(y, create_graph=True) . u)"
    ACCUMULATE_FRESH = "fresh graph each call, no zero_()"
    ACCUMULATE_RETAINED = "one graph, retain_graph=True, no zero_()"
    ACCUMULATE_ZEROED = "grad.zero_() before each call"
    RETAINED = "one retained graph, autograd.grad with a new seeded random v each call"

    def __str__(self) -> str:
        return str(self.value)

    @property
    def needs(self) -> frozenset[Need]:
        return NEEDS.get(self, frozenset())

    @property
    def zeroes(self) -> bool:
        """Whether .grad is zeroed between the calls of this path (else the gradients accumulate)."""
        return self is Path.ACCUMULATE_ZEROED


NEEDS: dict[Path, frozenset[Need]] = {
    Path.FORWARD_AD: frozenset({Need.JVP}),
    Path.FUNC_JVP: frozenset({Need.FUNCTORCH, Need.JVP}),
    Path.FUNC_VJP: frozenset({Need.FUNCTORCH}),
    Path.JACREV: frozenset({Need.FUNCTORCH, Need.VMAP}),
    Path.JACFWD: frozenset({Need.FUNCTORCH, Need.VMAP, Need.JVP}),
    Path.FUNC_HESSIAN: frozenset({Need.FUNCTORCH, Need.VMAP, Need.JVP}),
    Path.CREATE_GRAPH: frozenset({Need.TWICE}),
    Path.FUNCTIONAL_HESSIAN: frozenset({Need.TWICE}),
    Path.DOUBLE_BACKWARD: frozenset({Need.TWICE}),
}


class Why(Enum):
    """Why a torch path was not verified (set where it is known; report/ words it)."""

    NOT_IMPLEMENTED = "not_implemented"  # torch raised NotImplementedError
    FUNCTION_LACKS = "function_lacks"  # a custom autograd.Function lacks what the path needs (jvp, setup_context, vmap)
    TORCH_LACKS = "torch_lacks"  # the path fails on the case's own definition lowered to torch too
    GRAPH_BREAKS = "graph_breaks"  # torch.compile split the function; the parts between ran eagerly


@dataclass(frozen=True)
class Unsupported:
    """A torch path that was not verified, and why, as data: the path, the reason, the custom Functions and the
    capabilities involved (the names of torchside.paths.Need members); error is torch's exception, shown as evidence
    and never read."""

    path: str
    why: Why
    functions: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    error: str = ""
    count: int = 0  # graph breaks

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
    UNDEFINED = "autograd.grad of the other outputs (this one's grad_output undefined)"
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
    GRAD_BATCHED = "autograd.grad(is_grads_batched=True): several grad_outputs at once"
    VMAP_VJP = "torch.func.vmap(vjp): several grad_outputs at once"
    VMAP_JVP = "torch.func.vmap(jvp): several tangents at once"
    # order 2: every composition of forward and reverse mode (torch.func, and autograd's forward_ad with grad)
    JVP_JVP = "torch.func.jvp(jvp): forward over forward"
    GRAD_JVP = "torch.func.grad(jvp): reverse over forward"
    VJP_JVP = "torch.func.vjp(jvp): reverse over forward"
    JVP_GRAD = "torch.func.jvp(grad): forward over reverse (hvp)"
    JACFWD_JACFWD = "torch.func.jacfwd(jacfwd)"
    JACREV_JACFWD = "torch.func.jacrev(jacfwd)"
    JACREV_JACREV = "torch.func.jacrev(jacrev)"
    FWAD_GRAD = "forward_ad over autograd.grad(create_graph=True): forward over reverse"
    GRAD_FWAD = "autograd.grad over forward_ad: reverse over forward"
    # order 3
    JVP3 = "torch.func.jvp(jvp(jvp)): forward over forward over forward"
    GRAD_JVP_JVP = "torch.func.grad(jvp(jvp)): reverse over forward over forward"
    JVP_JVP_GRAD = "torch.func.jvp(jvp(grad)): forward over forward over reverse"
    JVP_GRAD_GRAD = "torch.func.jvp(grad(grad)): forward over reverse over reverse"
    JACFWD_JACFWD_JACREV = "torch.func.jacfwd(jacfwd(jacrev))"
    JACREV3 = "torch.func.jacrev(jacrev(jacrev))"
    FWAD_GRAD_GRAD = "forward_ad over autograd.grad(create_graph=True) twice: forward over reverse over reverse"

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
    Path.GRAD_BATCHED: frozenset({Need.FUNCTORCH, Need.VMAP}),
    Path.VMAP_VJP: frozenset({Need.FUNCTORCH, Need.VMAP}),
    Path.VMAP_JVP: frozenset({Need.FUNCTORCH, Need.VMAP, Need.JVP}),
    Path.JVP_JVP: frozenset({Need.FUNCTORCH, Need.JVP}),
    Path.GRAD_JVP: frozenset({Need.FUNCTORCH, Need.JVP}),
    Path.VJP_JVP: frozenset({Need.FUNCTORCH, Need.JVP}),
    Path.JVP_GRAD: frozenset({Need.FUNCTORCH, Need.JVP}),
    Path.JACFWD_JACFWD: frozenset({Need.FUNCTORCH, Need.VMAP, Need.JVP}),
    Path.JACREV_JACFWD: frozenset({Need.FUNCTORCH, Need.VMAP, Need.JVP}),
    Path.JACREV_JACREV: frozenset({Need.FUNCTORCH, Need.VMAP, Need.TWICE}),
    Path.FWAD_GRAD: frozenset({Need.JVP, Need.TWICE}),
    Path.GRAD_FWAD: frozenset({Need.JVP}),
    Path.JVP3: frozenset({Need.FUNCTORCH, Need.JVP}),
    Path.GRAD_JVP_JVP: frozenset({Need.FUNCTORCH, Need.JVP}),
    Path.JVP_JVP_GRAD: frozenset({Need.FUNCTORCH, Need.JVP}),
    Path.JVP_GRAD_GRAD: frozenset({Need.FUNCTORCH, Need.JVP, Need.TWICE}),
    Path.JACFWD_JACFWD_JACREV: frozenset({Need.FUNCTORCH, Need.VMAP, Need.JVP}),
    Path.JACREV3: frozenset({Need.FUNCTORCH, Need.VMAP, Need.TWICE}),
    Path.FWAD_GRAD_GRAD: frozenset({Need.JVP, Need.TWICE}),
}

# The paths whose function torch.func itself calls under a transform, where autograd.Function.apply refuses a Function
# without setup_context whatever its inputs (autograd.grad's is_grads_batched is not one: its forward runs outside,
# only the backward under vmap)
UNDER_TRANSFORM = frozenset(p for p, needs in NEEDS.items() if Need.FUNCTORCH in needs) - {Path.GRAD_BATCHED}

# What each nested path returns, for a scalar f with seeded tangents u, w, z (flat over the differentiable inputs):
# "uw" the number D^2 f[u, w] (D^3 f[u, w, z] at order 3), "u" the vector D^k f[u, (w,) .], "full" the whole tensor.
NESTED: dict[Path, tuple[int, str]] = {
    Path.JVP_JVP: (2, "uw"), Path.GRAD_JVP: (2, "u"), Path.VJP_JVP: (2, "u"), Path.JVP_GRAD: (2, "w"),
    Path.JACFWD_JACFWD: (2, "full"), Path.JACREV_JACFWD: (2, "full"), Path.JACREV_JACREV: (2, "full"),
    Path.FWAD_GRAD: (2, "w"), Path.GRAD_FWAD: (2, "u"),
    Path.JVP3: (3, "uw"), Path.GRAD_JVP_JVP: (3, "u"), Path.JVP_JVP_GRAD: (3, "u"), Path.JVP_GRAD_GRAD: (3, "u"),
    Path.JACFWD_JACFWD_JACREV: (3, "full"), Path.JACREV3: (3, "full"), Path.FWAD_GRAD_GRAD: (3, "u"),
}


class Why(Enum):
    """Why a torch path was not verified (set where it is known; report/ words it)."""

    NOT_IMPLEMENTED = "not_implemented"  # torch raised NotImplementedError
    FUNCTION_LACKS = "function_lacks"  # a custom autograd.Function lacks what the path needs (jvp, setup_context, vmap)
    TORCH_LACKS = "torch_lacks"  # the path fails on the case's own definition lowered to torch too
    GRAPH_BREAKS = "graph_breaks"  # torch.compile split the function; the parts between ran eagerly
    NOT_BATCHABLE = "not_batchable"  # the code raises under vmap (batched grad_outputs, tangents, Jacobians)
    NOT_NESTABLE = "not_nestable"  # torch.func does not differentiate a custom Function's jvp again (a probe says so)
    SAVED_TENSOR_HOOKS = "saved_tensor_hooks"  # the code installs saved-tensor hooks; the path refuses them (a probe)
    REENTRANT_CHECKPOINT = "reentrant_checkpoint"  # reentrant torch.utils.checkpoint refuses the path (a probe)
    MUTATES_HELD = "mutates_held"  # the code updates a tensor it holds in place; the path refuses that (a probe)


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

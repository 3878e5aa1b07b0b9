"""What the case language's AST says before anything runs: shapes, which leaves a gradient reaches, the grad_fn torch names."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import CaseError
from .nodes import Bin, Call, Cmp, Const, Index, Name, Neg, Node, Num, children, unparse
from .ops import ELEMENTWISE, OPS, REDUCTION
from .parse import literal_value
from .shapes import Shape, broadcast_shapes, kept_shape


def is_elementwise(nodes: Iterable[Node]) -> bool:
    """Every operation acts element by element: no indexing, no matrix product, only element-wise calls (max and min
    of two arguments included), so the expression runs unchanged on tensors of any one shape."""
    for n in nodes:
        if isinstance(n, Index) or (isinstance(n, Bin) and n.op == "@"):
            return False
        if isinstance(n, Call) and (n.func not in OPS or OPS[n.func].kind != ELEMENTWISE) and \
                not (n.func in ("max", "min") and len(n.args) == 2):
            return False
    return True


# --- shapes -------------------------------------------------------------------------------------------------------


def infer_shape(node: Node, shapes: dict[str, Shape]) -> Shape:
    """The shape of the value of ``node`` given the shapes of the names; CaseError on a mismatch."""
    if isinstance(node, (Num, Const)):
        return ()
    if isinstance(node, Name):
        return shapes[node.id]
    if isinstance(node, Neg):
        return infer_shape(node.operand, shapes)
    try:
        if isinstance(node, (Bin, Cmp)):
            left, right = infer_shape(node.left, shapes), infer_shape(node.right, shapes)
            if isinstance(node, Bin) and node.op == "@":
                return OPS["matmul"].shape(left, right)  # type: ignore[misc]  # matmul's row has a shape rule
            return broadcast_shapes(left, right)
        if isinstance(node, Index):
            base = infer_shape(node.base, shapes)
            if len(node.index) > len(base):
                raise ValueError(f"{len(node.index)} indices for a tensor of shape {list(base)}")
            for i, dim in zip(node.index, base):
                if not -dim <= i < dim:
                    raise ValueError(f"index {i} is out of range for an axis of size {dim} (shape {list(base)})")
            return base[len(node.index):]
        assert isinstance(node, Call)
        op = OPS[node.func]
        args = [infer_shape(a, shapes) for a in node.args]
        kw = node.keywords()
        if op.kind == ELEMENTWISE:
            return broadcast_shapes(*args)
        if kw.pop("keepdim", False):
            return kept_shape(args[0], kw.get("axis"))
        if op.kind == REDUCTION or op.shape is not None:
            return op.shape(*args, **kw)  # type: ignore[misc]  # reductions always have a shape rule
        return broadcast_shapes(*args)
    except ValueError as exc:
        raise CaseError(f"shape mismatch in {unparse(node)!r}: {exc}") from None


# --- what the definition implies for the torch graph --------------------------------------------------------------

_BIN_GRAD_FN = {"+": "AddBackward0", "-": "SubBackward0", "*": "MulBackward0", "/": "DivBackward0"}


def needs_grad(node: Node, grad_names: set[str] | frozenset[str]) -> bool:
    """Whether torch's value of the node requires grad: it depends on a differentiable name other than via detach."""
    return bool(grad_sources(node, {n: {n} for n in grad_names}))


def grad_sources(node: Node, reach: dict[str, set[str]]) -> set[str]:
    """The differentiable leaves whose gradient flows from this node (paths through detach or a condition carry none).

    ``reach`` maps each name to its own sources (an input: itself, if it requires grad).
    """
    if isinstance(node, Name):
        return set(reach.get(node.id, set()))
    if isinstance(node, Cmp) or (isinstance(node, Call) and node.func == "detach"):
        return set()
    kids = node.args[1:] if isinstance(node, Call) and node.func == "where" else children(node)
    out: set[str] = set()
    for child in kids:
        out |= grad_sources(child, reach)
    return out


def expected_grad_fn(node: Node, grad_names: set[str] | frozenset[str]) -> str | None:
    """The grad_fn class name torch gives the node's value, '' where any non-None name will do, None for no grad."""
    if not needs_grad(node, grad_names):
        return None
    if isinstance(node, Bin):
        if node.op == "**":
            return "PowBackward0" if not needs_grad(node.right, grad_names) and literal_value(node.right) is not None \
                else ("PowBackward1" if needs_grad(node.left, grad_names) else "")
        return _BIN_GRAD_FN.get(node.op, "")
    if isinstance(node, Neg):
        return "NegBackward0"
    if isinstance(node, Index):
        return "SelectBackward0"
    if isinstance(node, Call):
        op = OPS[node.func]
        if node.params:
            return ""  # torch's node class depends on the parameters (clamp(x, min=0): ClampMinBackward0)
        if op.grad_fn and node.axis is not None and op.grad_fn in ("SumBackward0", "MeanBackward0"):
            return op.grad_fn[:-1] + "1"
        if node.func in ("prod", "logsumexp", "norm", "transpose") or (node.func == "prod" and node.axis is not None):
            return ""  # the class depends on axis and rank
        return op.grad_fn or ""
    return ""

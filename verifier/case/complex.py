"""Complex cases in the case model: which nodes are complex, which functions accept complex arguments, and the
storage of a complex tensor as real pairs.

A complex input of shape S is stored as a float array of shape S + (2,) (real part, imaginary part: torch's
view_as_real), and so is a complex output. Everything downstream then works on real numbers: the exact reference
differentiates with respect to the real and imaginary parts (Wirtinger calculus in real coordinates), torch's side
wraps the pairs with view_as_complex and view_as_real, and every comparison is between real arrays. For a real loss L
of complex z, torch's z.grad is dL/dx + i dL/dy (the pairs' gradient), which is 2 dL/dz̄: the conjugate Wirtinger
derivative, times 2.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from ..dtypes import COMPLEX
from ..errors import CaseError
from ..language.nodes import Bin, Call, Cmp, Name, Node, children
from .catalog import COMPLEX_DEFAULT, NOT_COMPLEX
from .fields import Ctx
from .model import Case

COMPLEX_DTYPES = COMPLEX  # complex dtype -> the dtype of the parts (dtypes.COMPLEX)
# functions whose complex meaning sympy and torch share (principal branches) and whose gradient torch defines
COMPLEX_FUNCTIONS = frozenset({
    "exp", "log", "sin", "cos", "tan", "sinh", "cosh", "tanh", "sqrt", "rsqrt", "reciprocal", "square", "abs",
    "real", "imag", "conj", "sum", "mean", "matmul", "transpose", "dot", "sigmoid", "expm1", "log1p",
})
REAL_VALUED = frozenset({"abs", "real", "imag"})  # complex in, real out


def is_complex(node: Node, complex_names: Iterable[str]) -> bool:
    """Whether the node's value is complex, given the names (inputs, defines) that are."""
    return id(node) in _complex_nodes(node, set(complex_names))


def _complex_nodes(node: Node, names: set[str]) -> set[int]:
    """The ids of the nodes whose value is complex, found in one pass from the leaves up."""
    found: set[int] = set()
    order, stack = [], [node]
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(children(n))
    for n in reversed(order):  # children before their parents
        if isinstance(n, Name):
            complex_ = n.id in names
        elif isinstance(n, Call) and n.func in REAL_VALUED:
            complex_ = False
        else:
            complex_ = any(id(c) in found for c in children(n))
        if complex_:
            found.add(id(n))
    return found


def check_complex_function(node: Node, complex_names: Iterable[str]) -> None:
    """CaseError where a complex value meets a comparison, or a function without a complex meaning here."""
    names = set(complex_names)
    found = _complex_nodes(node, names)
    nodes, stack = [], [node]
    while stack:
        n = stack.pop()
        stack.extend(children(n))
        if any(id(c) in found for c in children(n)):
            nodes.append(n)
    for n in nodes:
        if isinstance(n, Cmp):
            raise CaseError("complex numbers have no order: a comparison of complex values is not defined")
    for n in nodes:
        if isinstance(n, Call) and n.func not in COMPLEX_FUNCTIONS:
            raise CaseError(f"{n.func}() is not verified for complex arguments here; with complex values use "
                            f"{', '.join(sorted(COMPLEX_FUNCTIONS))}, and + - * / ** @")
        if isinstance(n, Bin) and n.op == "**" and id(n.right) in found:
            raise CaseError("a complex exponent (z ** w) is not supported; write exp(w * log(z))")


def as_complex_case(ctx: Ctx, doc: Mapping[str, Any], case: Case, only: tuple[str, ...] | None = None) -> Case:
    """A case with complex inputs (every input, or ``only`` these beside real ones): checked for what complex values
    support, and stored as real pairs."""
    chosen = tuple(i.name for i in case.inputs) if only is None else only
    names = set(chosen)
    for d in case.defines:
        try:
            check_complex_function(d.node, names)
        except CaseError as exc:
            raise ctx.wrap(exc, f"define.{d.name}") from None
        if is_complex(d.node, names):
            names.add(d.name)
    try:
        check_complex_function(case.function, names)
    except CaseError as exc:
        raise ctx.wrap(exc, "function") from None
    for key, what in (("retain_grad", case.retain_grad), ("expect", case.expect), ("train", case.train),
                      ("compile", case.compile), ("op", case.op)):
        if what:
            raise ctx.error(key, f"{key} is not supported with complex inputs yet (complex cases verify the definition "
                                 "through every autograd path and the Wirtinger check)")
    unsupported = [c for c in NOT_COMPLEX if c in case.checks]
    if doc.get("checks") is not None and unsupported:
        raise ctx.error("checks", f"{', '.join(unsupported)} is not available for complex inputs (torch sees them through "
                                  "view_as_complex)")
    checks = tuple(c for c in case.checks if c not in unsupported)
    if doc.get("checks") is None:
        checks = checks + COMPLEX_DEFAULT
    complex_output = is_complex(case.function, names)
    output_shape = case.output_shape + ((2,) if complex_output else ())
    grad_output = case.grad_output
    if grad_output is not None:
        if not complex_output and np.any(np.imag(grad_output) != 0):
            raise ctx.error("grad_output", "the output is real: grad_output must be real")
        grad_output = to_pairs(grad_output) if complex_output else np.real(grad_output).astype(np.float64)
    def stored(name: str, v: Any) -> np.ndarray:
        if name in names:
            return to_pairs(v)
        if np.any(np.imag(v) != 0):
            raise ctx.error("points", f"{name} is a real input: its values must be real")
        return np.real(v).astype(np.float64)

    pairs = {i.name: to_pairs(i.value) for i in case.inputs if i.name in names}
    return replace(
        case, checks=checks, complex_output=complex_output, output_shape=output_shape, grad_output=grad_output,
        inputs=tuple(replace(i, value=pairs[i.name]) if i.name in pairs else i for i in case.inputs),
        complex_inputs=chosen,
        shapes={**case.shapes, **{n: v.shape for n, v in pairs.items()}},
        points=tuple({n: stored(n, v) for n, v in p.items()} for p in case.points))


def to_pairs(values: np.ndarray) -> np.ndarray:
    """A complex array as real pairs, shape S + (2,)."""
    values = np.asarray(values, dtype=np.complex128)
    return np.stack([values.real, values.imag], axis=-1)


def from_pairs(pairs: np.ndarray) -> np.ndarray:
    """Real pairs (..., 2) as a complex array."""
    pairs = np.asarray(pairs, dtype=np.float64)
    return pairs[..., 0] + 1j * pairs[..., 1]

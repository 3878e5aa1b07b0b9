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

from collections.abc import Iterable

import numpy as np

from .errors import CaseError
from .expr import Bin, Call, Cmp, Name, Node, children

COMPLEX_DTYPES = {"complex128": "float64", "complex64": "float32"}  # the dtype of the parts
# functions whose complex meaning sympy and torch share (principal branches) and whose gradient torch defines
COMPLEX_FUNCTIONS = frozenset({
    "exp", "log", "sin", "cos", "tan", "sinh", "cosh", "tanh", "sqrt", "rsqrt", "reciprocal", "square", "abs",
    "real", "imag", "conj", "sum", "mean", "matmul", "transpose", "dot", "sigmoid", "expm1", "log1p",
})
REAL_VALUED = frozenset({"abs", "real", "imag"})  # complex in, real out


def is_complex(node: Node, complex_names: Iterable[str]) -> bool:
    """Whether the node's value is complex, given the names (inputs, defines) that are."""
    names = set(complex_names)
    if isinstance(node, Name):
        return node.id in names
    if isinstance(node, Call) and node.func in REAL_VALUED:
        return False
    return any(is_complex(c, names) for c in children(node))


def check_complex_function(node: Node, complex_names: Iterable[str]) -> None:
    """CaseError where a complex value meets a comparison, or a function without a complex meaning here."""
    names = set(complex_names)
    nodes, stack = [], [node]
    while stack:
        n = stack.pop()
        stack.extend(children(n))
        if any(is_complex(c, names) for c in children(n)):
            nodes.append(n)
    for n in nodes:
        if isinstance(n, Cmp):
            raise CaseError("complex numbers have no order: a comparison of complex values is not defined")
    for n in nodes:
        if isinstance(n, Call) and n.func not in COMPLEX_FUNCTIONS:
            raise CaseError(f"{n.func}() is not verified for complex arguments here; with complex values use "
                            f"{', '.join(sorted(COMPLEX_FUNCTIONS))}, and + - * / ** @")
        if isinstance(n, Bin) and n.op == "**" and is_complex(n.right, names):
            raise CaseError("a complex exponent (z ** w) is not supported; write exp(w * log(z))")


def to_pairs(values: np.ndarray) -> np.ndarray:
    """A complex array as real pairs, shape S + (2,)."""
    values = np.asarray(values, dtype=np.complex128)
    return np.stack([values.real, values.imag], axis=-1)


def from_pairs(pairs: np.ndarray) -> np.ndarray:
    """Real pairs (..., 2) as a complex array."""
    pairs = np.asarray(pairs, dtype=np.float64)
    return pairs[..., 0] + 1j * pairs[..., 1]

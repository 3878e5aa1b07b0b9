"""THE list of checks: each one's name, what it verifies, whether it needs a differentiable input, whether it runs by
default and whether it applies to complex cases.

Every other list derives from this table: the loader's allowed and default checks, the runner's order, the checks'
dispatch (a test ties ``checks.run`` to it), the helper's defaults, the JSON Schema's enum (a test ties it) and the
README's table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One row of the catalog.

    name: the key a case writes under ``checks:``. doc: what it verifies (one line). needs_grad: skipped where no
    input requires grad. backward_based: runs a backward pass (skipped, or the constant-output rule, where the output
    does not require grad). default: runs when a case names no checks. complex_safe: applies to complex inputs.
    helper: run by ``assert_gradients_match`` by default.
    """

    name: str
    doc: str
    needs_grad: bool = True
    backward_based: bool = False
    default: bool = True
    complex_safe: bool = True
    helper: bool = False
    complex_default: bool = False  # added to the defaults of complex cases


CATALOG: tuple[Check, ...] = (
    Check("value", "the forward value against the exact value", needs_grad=False, helper=True),
    Check("backward", "y.backward() fills every leaf's .grad; retain_graph semantics", backward_based=True,
          helper=True),
    Check("vjp", "y.backward(v), autograd.grad(grad_outputs=v) and torch.func.vjp give v^T J (non-scalar outputs); "
          "several v at once (autograd.grad is_grads_batched, torch.func.vmap) give each v^T J",
          backward_based=True, helper=True),
    Check("grad", "torch.autograd.grad returns the gradient and leaves .grad untouched", backward_based=True,
          helper=True),
    Check("repeat", "backward again and again on one retained graph with distinct seeded random grad_outputs gives "
          "v^T J every time, the same v gives the same result, and no grad_output is changed in place",
          backward_based=True, helper=True),
    Check("higher", "orders 2..N by create_graph=True; the Hessian by autograd.functional.hessian and "
          "torch.func.hessian; to order 3 every composition of forward and reverse mode (jvp/grad/vjp/jacfwd/jacrev "
          "nestings, forward_ad around autograd.grad); a non-scalar output through v . y", backward_based=True),
    Check("jvp", "forward-mode AD (torch.autograd.forward_ad and torch.func.jvp) gives J u; several u at once "
          "(torch.func.vmap) give each J u", helper=True),
    Check("jacobian", "torch.func.jacrev and torch.func.jacfwd give J", helper=True),
    Check("accumulate", "k backward calls without zero_() give k x the gradient; with zero_() the gradient each time",
          backward_based=True, helper=True),
    Check("graph", "is_leaf, requires_grad, grad_fn and .grad (retain_grad) of every input and intermediate",
          needs_grad=False, complex_safe=False),
    Check("nograd", "torch.no_grad() and .detach() give results that do not require grad", needs_grad=False,
          helper=True),
    Check("expect", "the hand-derived values in `expect` against the exact derivative and against autograd",
          needs_grad=False),
    Check("train", "a training loop (torch.optim, manual updates, or a user's step) against the loop driven by exact "
          "gradients", default=False, complex_safe=False),
    Check("compile", "torch.compile(fn): value, y.backward(), y.backward(v) and autograd.grad of the compiled function "
          "against the exact derivative, and its gradient against eager torch's", needs_grad=False, default=False,
          complex_safe=False),
    Check("wirtinger", "complex inputs: both Wirtinger derivatives from the exact reference; torch's z.grad, "
          "autograd.grad and torch.func.vjp against conj(ds/dz) g + conj(g) ds/dz̄, its jvp against ds/dz u + ds/dz̄ "
          "conj(u)", backward_based=True, default=False, complex_default=True),
    Check("positions", "equal inputs give equal gradients (reverse and forward mode) at every position, for tensor "
          "lengths across the SIMD widths (1, 7, 8, 9, 15, 16, 17, 31, 33, 65) of element-wise functions",
          default=False, complex_safe=False),
    Check("undefined", "a Function with several outputs, used only in part: its backward gets None (undefined) for the "
          "unused outputs' grad_outputs and must read them as zeros (gradcheck's check_undefined_grad)",
          backward_based=True, default=False, helper=True, complex_safe=False),
    Check("inplace", "an input changed in place between forward and backward: backward is refused (torch's version "
          "counter) or gives the gradient at the original point, never a stale one (compiled graphs too)",
          backward_based=True, default=False, complex_safe=False),
)

BY_NAME = {c.name: c for c in CATALOG}
CHECKS = tuple(BY_NAME)  # every check, in the order the runner runs them
CHECK_DOCS = {c.name: c.doc for c in CATALOG}
DEFAULT = tuple(c.name for c in CATALOG if c.default)
COMPLEX_DEFAULT = tuple(c.name for c in CATALOG if c.complex_default)
NOT_COMPLEX = tuple(c.name for c in CATALOG if not c.complex_safe)
NEEDS_GRAD = frozenset(c.name for c in CATALOG if c.needs_grad)
BACKWARD_BASED = frozenset(c.name for c in CATALOG if c.backward_based)
HELPER = tuple(c.name for c in CATALOG if c.helper)

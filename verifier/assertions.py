"""assert_gradients_match: check a user's implementation against the exact derivative, inside their own tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .case.catalog import HELPER
from .case.model import DEFAULT_TOLERANCES, DTYPES, Tolerance
from .errors import CaseError, GradientMismatch, Untraceable
from .results import CaseResult

# What the helper checks by default: the forward value, backward (grad_output ones, .grad shape and dtype, a second
# backward), random grad_outputs, autograd.grad, repeated backward calls, forward mode and torch.func where the
# implementation supports them, no_grad; plus, for order >= 2, double backward (Hessian and Hessian-vector products).


def assert_gradients_match(
    impl: Callable[..., Any],
    reference: str | None = None,
    inputs: Mapping[str, Any] | None = None,
    *,
    order: int = 1,
    checks: Iterable[str] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
    strict: bool = False,
    timeout: float | None = 120.0,
    grad_output: Any = None,
    define: Mapping[str, str] | None = None,
    gradient_of: str | None = None,
    params: bool | None = None,
) -> CaseResult:
    """Assert that ``impl``'s gradients equal the exact derivatives of ``reference`` at ``inputs``.

    Args:
        impl: a callable taking the input tensors positionally, in the order of ``inputs`` (a custom Function's
            ``apply``, an ``nn.Module``, a function), returning a tensor.
        reference: an expression of the case language over the input names (the same parser and op table). None:
            the exact reference is derived from ``impl``'s own forward, traced at each point (a custom Function's
            ``forward``: its hand-written ``backward`` is then checked against the derivative of what forward
            computes).
        gradient_of: the function whose derivatives the backward is meant to return, where that is not the forward's
            own (a straight-through estimator: ``"x"``; gradient reversal: ``"-x"``); the forward's value is still
            checked, against ``reference`` or the traced forward.
        params: for an ``nn.Module``, whether its parameters are differentiated inputs (their ``.grad`` checked;
            named by ``named_parameters()`` with ``.`` as ``_``: ``linear.weight`` is ``linear_weight``). Default:
            when the reference is traced. The module runs on copies of its parameters and buffers
            (torch.func.functional_call): its own are never changed, nor their ``.grad``.
        inputs: name -> tensor (one floating dtype for all; copied, never modified). As torch (and gradcheck) read
            them: where some floating input has requires_grad=True, exactly those are differentiated and the others
            are constants passed to ``impl`` (targets, masks); where none has, every floating input is
            differentiated. Integer tensors (class labels, indices) are constants, passed as int64.
        order: the highest derivative order to check; >= 2 adds double backward through create_graph=True.
        checks: a subset of the checks to run (default: all that apply to an implementation).
        rtol, atol: override the dtype's default tolerance.
        seed: seed of the random grad_outputs and tangents.
        strict: fail at kinks instead of accepting a value between the one-sided derivatives.
        timeout: seconds before the check stops with a failure.
        grad_output: the v of y.backward(v) for a non-scalar output (default: a seeded random v, and ones).
        define: intermediates of the reference, name -> expression (like a YAML case's ``define``).
    Returns:
        The CaseResult, when everything matches.
    Raises:
        GradientMismatch: (an AssertionError) with the comparator's report.
        CaseError: the reference or the inputs are malformed.
        Untraceable: (a CaseError) no reference, and the forward does something its trace cannot state exactly: the
            message names the aten op and the line of ``impl`` that called it (give ``reference=``).
    """
    __tracebackhide__ = True
    from .runner import verify_implementation

    if inputs is None:
        raise CaseError("inputs is missing: give name -> tensor, in the order impl takes them")
    dtype = _dtype(inputs)
    values = _input_specs(inputs)
    module_params = _module_inputs(impl, values, dtype, reference is None if params is None else params)
    tolerance = None
    if rtol is not None or atol is not None:
        base = DEFAULT_TOLERANCES[dtype]
        tolerance = Tolerance(base.rtol if rtol is None else float(rtol), base.atol if atol is None else float(atol))
    wanted = tuple(checks) if checks is not None else HELPER + (("higher",) if order >= 2 else ())
    result = verify_implementation(impl, reference, values, dtype=dtype, order=order, checks=wanted,
                                   tolerance=tolerance, seed=seed, strict=strict, timeout=timeout,
                                   define=dict(define) if define else None,
                                   grad_output=None if grad_output is None else _array("grad_output", grad_output),
                                   gradient_of=gradient_of, module_params=module_params)
    if isinstance(result.error, Untraceable):  # the forward could not be traced: say which op, and where
        raise result.error
    if result.status != "pass":
        from .report.text import case_text

        raise GradientMismatch(case_text(result) or f"verdict: {result.status}", result)
    return result


def _module_inputs(impl: Any, specs: dict[str, Any], dtype: str, differentiate: bool) -> dict[str, str]:
    """An nn.Module's parameters and buffers as inputs (added to ``specs``): module name -> input name."""
    import torch

    if not isinstance(impl, torch.nn.Module):
        return {}
    mapping: dict[str, str] = {}
    named = [(n, p, True) for n, p in impl.named_parameters()] + [(n, b, False) for n, b in impl.named_buffers()]
    for name, tensor, is_param in named:
        base = "_".join(part for part in name.replace(".", "_").split("_") if part) or "param"
        base = base if base[0].isalpha() else f"p_{base}"
        input_name, k = base, 1
        while input_name in specs:
            k += 1
            input_name = f"{base}_{k}"
        value = _array(input_name, tensor)
        if _is_integer(tensor):
            specs[input_name] = {"value": value, "requires_grad": False, "integer": True}
        elif is_param and differentiate and tensor.requires_grad:
            specs[input_name] = value if all(not isinstance(v, dict) or v.get("requires_grad", True)
                                             for v in specs.values()) else {"value": value, "requires_grad": True}
        else:
            specs[input_name] = {"value": value, "requires_grad": False}
        mapping[name] = input_name
    return mapping


def _is_integer(t: Any) -> bool:
    import torch

    return isinstance(t, torch.Tensor) and not (t.is_floating_point() or t.is_complex())


def _input_specs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs as case input specs: which are differentiated, which are constants, which are integers."""
    import torch

    floating = {n: t for n, t in inputs.items() if not _is_integer(t)}
    marked = any(isinstance(t, torch.Tensor) and t.requires_grad for t in floating.values())
    specs: dict[str, Any] = {}
    for name, t in inputs.items():
        value = _array(name, t)
        if _is_integer(t):
            specs[name] = {"value": value, "requires_grad": False, "integer": True}
        elif marked and not (isinstance(t, torch.Tensor) and t.requires_grad):
            specs[name] = {"value": value, "requires_grad": False}
        else:
            specs[name] = value
    return specs


def _dtype(inputs: Mapping[str, Any]) -> str:
    import torch

    if not inputs:
        raise CaseError("inputs is empty: give at least one tensor")
    kinds = {str(t.dtype).replace("torch.", "") if isinstance(t, torch.Tensor) else "float64" for t in inputs.values()
             if not _is_integer(t)}
    if len(kinds) != 1 or not kinds <= set(DTYPES):
        raise CaseError(f"inputs must all be tensors of one dtype, one of {', '.join(DTYPES)}; got {sorted(kinds)}")
    return kinds.pop()


def _array(name: str, value: Any) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy().copy()
    return np.asarray(value, dtype=np.float64)


def assert_training_step_matches(
    step_fn: Callable[..., Any],
    reference: str,
    inputs: Mapping[str, Any],
    *,
    params: Iterable[str],
    lr: float,
    steps: int = 5,
    rtol: float | None = None,
    atol: float | None = None,
) -> CaseResult:
    """Assert that a training step uses the exact gradient at every step (plain SGD).

    ``step_fn(params, loss_fn, lr)`` updates the parameter tensors in ``params`` (a dict of leaves) in place and
    returns the loss; ``loss_fn(params)`` computes the loss ``reference`` at them. The gradient the step used is read
    from the parameter change, step by step, and compared with the exact gradient there; a step that forgets
    ``zero_grad()`` is named as such.

    Raises:
        GradientMismatch: with the report (the first step where the gradient used is wrong, and the diagnosis).
    """
    __tracebackhide__ = True
    from dataclasses import replace

    from .case.train import TrainSpec
    from .case.validate import case_from_expression
    from .runner import verify_case

    dtype = _dtype(inputs)
    names = tuple(params)
    values = {n: _array(n, t).tolist() for n, t in inputs.items()}
    case = case_from_expression(reference, {n: v if n in names else {"value": v, "requires_grad": False}
                                            for n, v in values.items()},
                                name="training_step", file="<assert_training_step_matches>", dtype=dtype,
                                checks=["value"])
    tolerance = None
    if rtol is not None or atol is not None:
        base = DEFAULT_TOLERANCES[dtype]
        tolerance = Tolerance(base.rtol if rtol is None else float(rtol), base.atol if atol is None else float(atol))
    spec = TrainSpec(params=names, lr=float(lr), steps=int(steps), step=step_fn)
    case = replace(case, train=spec, checks=("train",), tolerance=tolerance)
    result = verify_case(case)
    if result.status != "pass":
        from .report.text import case_text

        raise GradientMismatch(case_text(result) or f"verdict: {result.status}", result)
    return result

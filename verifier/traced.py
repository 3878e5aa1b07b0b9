"""Cases whose function is traced from the implementation's forward (issue 15): one case per point from the traces,
the words that say what was derived. Composed by the runner (the trace needs the implementation's program and the
points as the run's dtype holds them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from .case.model import Case
from .config import Settled
from .dtypes import round_to
from .errors import CaseError
from .results import CaseResult


def rounded_point(case: Case, raw: Mapping[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    """A point's values as the dtype holds them (labels stay exact)."""
    integers = {i.name for i in case.inputs if i.integer}
    return {n: v if n in integers or (dtype == "float64" and v.dtype == np.float64) else round_to(v, dtype)
            for n, v in raw.items()}


def derived_text(case: Case, reference: Any) -> str:
    """What a traced case verified, as the report shows it: the code and the formula derived from its forward."""
    if case.surrogate:
        return (f"value: the forward of {case.derived_from}, traced; derivatives: of gradient_of = "
                f"{case.function_text}")
    try:
        formula = reference.value_formula(0)
    except Exception:  # noqa: BLE001 - the text is for reading; the verdict does not depend on it
        formula = "(no readable form)"
    if len(formula) > 300:
        formula = formula[:297] + "..."
    first = "out[0] = " if int(np.prod(case.output_shape)) > 1 else "out = "
    return f"the forward of {case.derived_from}, traced: {first}{formula}"


def traced_variants(case: Case, result: CaseResult, run: Settled, program: Callable[[Case], object] | None) -> list[Case]:
    """A case without a written function, one per point: its impl's forward traced there (torchside.tracing).
    Points whose traces are equal share one case (and one exact reference); where they differ (Python control flow
    on tensor values took another branch) each point is checked against its own trace, and the result says so."""
    import torch

    from .errors import Untraceable
    from .language.analysis import infer_shape
    from .torchside.devices import DTYPES
    from .torchside.forward_trace import trace_forward

    if program is None:
        raise CaseError("a case without a function needs an implementation to trace (impl:)")
    if case.complex_inputs:
        raise CaseError("a complex case needs a written function: the trace is of real floating-point forwards")
    prog = program(case)
    grads = {i.name for i in case.differentiable}
    distinct: list[tuple[Any, Case]] = []
    variants: list[Case] = []
    where: list[str] = []
    cuts: list[str] = []
    for raw in case.points:
        point = rounded_point(case, raw, run.dtype)
        env = {n: torch.as_tensor(v, dtype=torch.int64 if np.issubdtype(np.asarray(v).dtype, np.integer) or
                                  n in {i.name for i in case.inputs if i.integer} else DTYPES[run.dtype],
                                  device=run.device) for n, v in point.items()}
        try:
            trace = trace_forward(lambda e: prog(e)[0], env, grads)  # type: ignore[operator]  # an Implementation
        except Untraceable as exc:
            raise Untraceable(f"{case.derived_from or case.impl or 'the implementation'}: {exc.reason}") from None
        where.extend(w for w in trace.data_dependent if w not in where)
        cuts.extend(w for w in trace.no_grad_cuts if w not in cuts)
        same = next((c for node, c in distinct if node == trace.node), None)
        if same is None:
            same = traced_variant(case, trace, infer_shape)
            distinct.append((trace.node, same))
        variants.append(same)
    if cuts:  # torch's forward mode differentiates through no_grad blocks (reverse mode does not): not compared
        forward = {"jvp", "jacobian", "higher"}
        kept = {id(c): replace(c, checks=tuple(k for k in c.checks if k not in forward)) for _, c in distinct}
        variants = [kept[id(v)] for v in variants]
        result.trace_note = (f"plain code reads a torch.no_grad() block's result ({cuts[0]}): a constant for reverse "
                             "mode, which torch's forward mode differentiates through; the forward-mode checks (jvp, "
                             "jacobian, higher) are not run. ")
    if len(distinct) > 1:
        result.trace_note += (f"the forward's trace differs between points ({len(distinct)} different traces at "
                             f"{len(variants)} points; it reads tensor values: {'; '.join(where[:2]) or 'control flow'}"
                             "): each point is checked against its own trace")
    elif where:
        result.trace_note += (f"the forward reads tensor values ({'; '.join(where[:2])}): traced at each of the "
                             f"{len(variants)} point(s), the same trace at all")
    return variants


def traced_variant(case: Case, trace: Any, infer_shape: Callable[..., Any]) -> Case:
    from .language.nodes import unparse

    shapes = dict(case.shapes)
    if case.surrogate:
        shape = infer_shape(case.function, shapes)
        if shape != trace.shape:
            raise CaseError(f"gradient_of has the shape {list(shape)}, the traced forward returns {list(trace.shape)}")
        return replace(case, value_function=trace.node, output_shape=trace.shape, traced=False,
                       derived_from=case.derived_from or case.impl or "the implementation")
    derived = infer_shape(trace.node, shapes)
    assert derived == trace.shape, (derived, trace.shape, unparse(trace.node)[:400])  # the trace's own invariant
    return replace(case, function=trace.node, function_text=unparse(trace.node), output_shape=trace.shape,
                   traced=False, derived_from=case.derived_from or case.impl or "the implementation")

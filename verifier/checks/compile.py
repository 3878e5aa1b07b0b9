"""The compile check: torch.compile(fn) against the exact derivative and against eager torch."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..case.catalog import NEEDS_GRAD
from ..compare import Fact, compare
from ..results import CheckResult
from ..torchside.autodiff import TorchSide
from ..torchside.paths import Unsupported, Why
from ..values import Exact
from .context import Ctx
from .gradients import check_grad, check_value, check_vjp
from .inplace import check_inplace

# the checks check_compile runs as they are on the compiled function
COMPILED = {"value": check_value, "vjp": check_vjp, "grad": check_grad, "inplace": check_inplace}


def check_compile(ctx: Ctx, r: CheckResult) -> None:
    """torch.compile(fn) against the exact derivative, and against eager torch (compilation must not change the
    gradient). A failure to compile or to run is a failing fact with torch's message."""
    from dataclasses import replace as _replace

    from ..torchside.lowering import Compiled

    case = ctx.case
    eager = ctx.torch
    try:
        backend = (ctx.run.compile if ctx.run is not None else case.compile) or "auto"
        program = Compiled(eager.program, backend)
        side = TorchSide(case, eager.point, ctx.dtype, program, str(eager.device))
        side.forward()  # compiles (the case's time limit covers it)
    except Exception as exc:  # noqa: BLE001 - torch.compile's failure is this check's verdict
        text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
        r.facts.append(Fact("compile", f"torch.compile(backend={backend}) compiles and runs the function", True,
                            False, False, note=text))
        return
    label = f"torch.compile[{program.backend}]"
    breaks = program.graph_breaks()
    if breaks:
        reason = next(iter(breaks)).splitlines()[0][:200]
        r.unsupported.append(Unsupported(label, Why.GRAPH_BREAKS, error=reason, count=sum(breaks.values())))
    sub = _replace(ctx, torch=side)
    grads: dict[str, Any] = {}
    if ctx.scalar and case.differentiable and eager.output_requires_grad():
        # y.backward() once: a compiled backward donates its buffers, so retain_graph=True is not for it
        grads, _ = side.backward(1, True)
        for name, got in grads.items():
            r.comparisons.append(ctx.cmp(ctx.exact.vjp(np.ones(()), name), got, "compile", f"grad wrt {name}",
                                         f"{label} y.backward()", name, formula="partials"))
    for name, check in COMPILED.items():
        part = CheckResult(check=name, point=ctx.point)
        if name in NEEDS_GRAD and (not case.differentiable or not eager.output_requires_grad()):
            continue
        check(sub, part)
        for c in part.comparisons:
            c.check, c.path = "compile", f"{label} {c.path}"
            r.comparisons.append(c)
        for f in part.facts:
            f.check, f.label = "compile", f"{label} {f.label}"
            r.facts.append(f)
        r.unsupported.extend(_replace(u, path=f"{label} {u.path}") for u in part.unsupported)
    if grads:  # side by side: the compiled gradient against eager's
        want, _ = eager.backward(1, True)
        for name, g in grads.items():
            w = want[name]
            if w is None or g is None:
                continue
            # each is within the rounding bound of the exact gradient: they may differ by twice it
            bound = ctx.exact.vjp(np.ones(()), name).slack
            r.comparisons.append(compare(Exact(w, w, slack=None if bound is None else 2 * bound), g, check="compile",
                                         label=f"grad wrt {name}: compiled vs eager",
                                         path=f"{label} y.backward()", wrt=name, tolerance=ctx.tolerance, dtype=ctx.dtype))

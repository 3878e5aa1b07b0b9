"""Catalog name -> check function, and the runner of one check (an exception becomes that check's verdict)."""

from __future__ import annotations

import traceback
from typing import Callable

from ..case.catalog import BACKWARD_BASED, NEEDS_GRAD
from ..errors import LimitError
from ..reference.base import NotVectorisable
from ..results import CheckResult
from .compile import check_compile
from .context import NO_KERNEL, NO_KERNEL_SKIP, Ctx
from .expect import check_expect
from .gradients import (
    check_backward,
    check_constant_output,
    check_grad,
    check_higher,
    check_jacobian,
    check_jvp,
    check_value,
    check_vjp,
)
from .graph import check_accumulate, check_graph, check_nograd
from .train import check_train
from .wirtinger import check_wirtinger

CHECKS: dict[str, Callable[[Ctx, CheckResult], None]] = {
    "value": check_value, "backward": check_backward, "vjp": check_vjp, "grad": check_grad, "higher": check_higher,
    "jvp": check_jvp, "jacobian": check_jacobian, "accumulate": check_accumulate, "graph": check_graph,
    "nograd": check_nograd, "expect": check_expect, "train": check_train, "compile": check_compile,
    "wirtinger": check_wirtinger,
}


def run_check(name: str, ctx: Ctx) -> CheckResult:
    """One check; an exception becomes an 'error' verdict with its traceback, never a crash of the run."""
    r = CheckResult(check=name, point=ctx.point)
    if name in NEEDS_GRAD and not ctx.case.differentiable:
        r.skipped = "no input requires grad"
        return r
    try:
        if name in BACKWARD_BASED and not ctx.torch.output_requires_grad():
            if name == "backward":
                check_constant_output(ctx, r)
            else:
                r.skipped = ("the output does not depend on a differentiable input (other than through detach): "
                             "y.backward() raises by design; the backward check verifies that")
            return r
        CHECKS[name](ctx, r)
    except LimitError:
        raise  # a limit is the case's verdict, not one check's
    except NotVectorisable as exc:  # the large-tensor reference does not cover this quantity
        r.skipped = str(exc)
    except (RuntimeError, NotImplementedError) as exc:
        if not any(p in str(exc) for p in NO_KERNEL):
            r.error = traceback.format_exc(limit=8)
        else:  # torch has no kernel for this dtype: nothing to verify, and no fault of the gradient
            r.skipped = f"{NO_KERNEL_SKIP} {ctx.dtype} kernel for this: {str(exc).strip().splitlines()[0][:200]}"
    except Exception:  # noqa: BLE001 - reported as this check's verdict
        r.error = traceback.format_exc(limit=8)
    return r

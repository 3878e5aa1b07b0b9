"""Catalog name -> check function, and the runner of one check (an exception becomes that check's verdict)."""

from __future__ import annotations

import traceback
from typing import Callable

from ..case.catalog import BACKWARD_BASED, NEEDS_GRAD
from ..compare import Fact
from ..dtypes import HALF
from ..errors import LimitError
from ..reference.base import NotVectorisable
from ..results import CheckResult
from ..torchside.support import NoKernel, first_line
from .compile import check_compile
from .context import Ctx
from .expect import check_expect
from .gradients import (
    check_backward,
    check_constant_output,
    check_grad,
    check_higher,
    check_jacobian,
    check_jvp,
    check_repeated,
    check_undefined,
    check_value,
    check_vjp,
)
from .graph import check_accumulate, check_graph, check_nograd
from .inplace import check_inplace
from .positions import check_positions
from .train import check_train
from .wirtinger import check_wirtinger

CHECKS: dict[str, Callable[[Ctx, CheckResult], None]] = {
    "value": check_value, "backward": check_backward, "vjp": check_vjp, "grad": check_grad,
    "repeat": check_repeated, "higher": check_higher,
    "jvp": check_jvp, "jacobian": check_jacobian, "accumulate": check_accumulate, "graph": check_graph,
    "nograd": check_nograd, "expect": check_expect, "train": check_train, "compile": check_compile,
    "wirtinger": check_wirtinger, "positions": check_positions, "undefined": check_undefined,
    "inplace": check_inplace,
}


def run_check(name: str, ctx: Ctx) -> CheckResult:
    """One check; an exception becomes an 'error' verdict with its traceback, never a crash of the run."""
    r = CheckResult(check=name, point=ctx.point)
    if name in NEEDS_GRAD and not ctx.case.differentiable:
        r.skipped = "no input requires grad"
        return r
    try:
        missing = ctx.torch.missing_derivatives() if name not in ("value", "nograd") else []
        if missing:
            r.skipped = (f"not supported: torch has no derivative for {', '.join(missing)} (it builds no backward for "
                         "it)")
            return r
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
    except NoKernel as exc:  # torch has no kernel for this dtype: nothing to verify, and no fault of the gradient
        r.skipped, r.no_kernel = no_kernel_text(ctx.dtype, exc.error), True
    except (RuntimeError, NotImplementedError) as exc:
        if _is_linalg_error(exc):  # by its type: torch's LinAlgError (a singular matrix, a failed factorisation)
            _linalg_fact(ctx, r, exc)
            return r
        if ctx.dtype in HALF and _runs_in_float32(name, ctx):  # the probe: the failure is the dtype's alone
            r.comparisons, r.facts, r.unsupported = [], [], []
            r.skipped, r.no_kernel = no_kernel_text(ctx.dtype, first_line(exc)), True
        elif isinstance(exc, NotImplementedError) and ctx.torch.is_lowered():  # by its type: torch lacks the formula
            r.comparisons, r.facts = [], []
            r.skipped = f"not supported: torch raised NotImplementedError ({first_line(exc)})"
        else:
            r.error = error_text(exc, users=not ctx.torch.is_lowered())
    except Exception as exc:  # noqa: BLE001 - reported as this check's verdict
        r.error = error_text(exc, users=not ctx.torch.is_lowered())
    return r


def _is_linalg_error(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.linalg.LinAlgError)


def _linalg_fact(ctx: Ctx, r: CheckResult, exc: BaseException) -> None:
    """torch refused the point (LinAlgError): right where the exact function does not exist there either (a singular
    matrix), wrong where it does."""
    undefined = ctx.exact.value().undefined
    why = next(iter(undefined.values()), None)
    r.facts.append(Fact(r.check, "torch raises LinAlgError only where the exact function does not exist",
                        "undefined here" if why else "defined here", "torch raised", why is not None,
                        note=f"exact: {why or 'the value exists here'}; torch: {first_line(exc)}"))


def _runs_in_float32(name: str, ctx: Ctx) -> bool:
    """Whether the same check runs without an exception on the same program in float32 (its verdict is not used)."""
    from dataclasses import replace

    side = ctx.torch.at_dtype("float32")
    if side is None:
        return False
    try:
        CHECKS[name](replace(ctx, torch=side, dtype="float32"), CheckResult(check=name, point=ctx.point))
    except Exception:  # noqa: BLE001 - any failure in float32 too: the error is not the dtype's
        return False
    return True


def error_text(exc: BaseException, users: bool) -> str:
    """The traceback of an exception a check caught. Where the code under test is the user's (users) and the
    exception passed through it, the verifier's own frames are left out: the user's frames and the exception are
    what there is to read. Otherwise (a bug of ours, or of a library under us) the whole traceback."""
    import os

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    torch_dir = os.sep + "torch" + os.sep
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if not f.filename.startswith(package) and torch_dir not in f.filename]
    if not users or not mine:
        return traceback.format_exc(limit=8)
    outside = [f for f in frames if not f.filename.startswith(package)]
    start = next(k for k, f in enumerate(outside) if f in mine)  # from the user's first frame on
    kept = traceback.StackSummary.from_list(outside[start:][-8:])
    return "Traceback (the user's frames; the verifier's and torch's own before them left out):\n" + "".join(kept.format()) + \
        "".join(traceback.format_exception_only(type(exc), exc))


def no_kernel_text(dtype: str, error: str) -> str:
    return f"torch has no {dtype} kernel for this: {error[:200]}"

"""The engine: the only module that composes the stages. YAML -> Case -> (exact reference, torch) -> compare.

The CLI, the pytest plugin and the assertion helper are thin faces over :func:`verify_case` and :func:`run`.
"""

from __future__ import annotations

import fnmatch
import platform
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from . import __version__
from .case import CHECKS, Case
from .checks import Ctx, run_check
from .errors import CaseError, LimitError
from .loading import collect
from .results import CaseResult, RunResult
from .symbolic import DIGITS, Reference

DEFAULT_TIMEOUT = 120.0  # seconds per case
EVALUATION = f"exact: sympy derivatives evaluated with mpmath at {DIGITS} digits"


class CaseTimeout(Exception):
    """Raised inside a case that ran past its time limit."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Interrupt the block after `seconds` (SIGALRM; only in the main thread of a Unix process, else no limit)."""
    usable = seconds and hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise CaseTimeout()

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)  # type: ignore[arg-type]
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def versions() -> dict[str, str]:
    import sympy
    import torch

    return {"gradverify": __version__, "torch": torch.__version__, "sympy": sympy.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def verify_case(
    case: Case,
    *,
    dtype: str | None = None,
    seed: int | None = None,
    checks: Iterable[str] | None = None,
    strict: bool | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> CaseResult:
    """Verify one case at each of its points; every check is a verdict of its own.

    Args:
        case: the case to verify.
        dtype: override the case's dtype ('float64' or 'float32').
        seed: override the seed of the random grad_outputs and tangents.
        checks: run only these checks (default: the case's).
        strict: fail at kinks instead of accepting a value between the one-sided derivatives.
        timeout: seconds before the case is stopped with a 'timeout' verdict (None: no limit).
    Returns:
        The CaseResult.
    """
    dtype = dtype or case.dtype
    wanted = [c for c in (checks or case.checks) if c in case.checks or checks is not None]
    result = CaseResult(name=case.name, case=case, evaluation=EVALUATION, dtype=dtype)
    start = time.perf_counter()
    try:
        with time_limit(timeout):
            _verify(case, result, dtype, seed, wanted, case.strict if strict is None else strict)
    except CaseTimeout:
        result.timed_out = timeout
    except LimitError as exc:
        result.error = exc.located(file=case.file, line=case.line, case=case.name)
    except CaseError as exc:
        result.error = exc.located(file=case.file, line=case.line, case=case.name)
    except Exception:  # noqa: BLE001 - a bug of ours, reported as this case's verdict
        result.crashed = traceback.format_exc(limit=10)
    result.seconds = time.perf_counter() - start
    return result


def _verify(case: Case, result: CaseResult, dtype: str, seed: int | None, wanted: list[str], strict: bool) -> None:
    from .autodiff import TorchSide

    reference = Reference(case)
    tolerance = case.tolerance_for(dtype)
    for k, raw in enumerate(case.points):
        point = {n: v.astype(dtype).astype(np.float64) for n, v in raw.items()}
        result.points.append({n: v.tolist() for n, v in point.items()})
        rng = np.random.default_rng([case.seed if seed is None else seed, k])
        ctx = Ctx(case, k, reference.at(point), TorchSide(case, point, dtype), dtype, tolerance, strict, rng)
        for name in CHECKS:
            if name in wanted:
                result.checks.append(run_check(name, ctx))


def select(cases: list[Case], pattern: str | None) -> list[Case]:
    """Cases whose name contains the pattern (or matches it as a glob when it has * ? [)."""
    if not pattern:
        return cases
    if any(ch in pattern for ch in "*?["):
        return [c for c in cases if fnmatch.fnmatchcase(c.name, pattern)]
    return [c for c in cases if pattern in c.name]


def run(
    paths: Iterable[str | Path],
    *,
    pattern: str | None = None,
    dtype: str | None = None,
    seed: int | None = None,
    strict: bool | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    progress: Callable[[CaseResult, int, int], None] | None = None,
) -> RunResult:
    """Load every case under the paths and verify each; broken cases are reported, the rest still run.

    A KeyboardInterrupt stops the run and returns what finished, marked incomplete.
    """
    start = time.perf_counter()
    found = collect(paths)
    out = RunResult(errors=list(found.errors), seed=seed if seed is not None else 0, versions=versions())
    chosen = select(found.cases, pattern)
    try:
        for i, case in enumerate(chosen, start=1):
            res = verify_case(case, dtype=dtype, seed=seed, strict=strict, timeout=timeout)
            out.cases.append(res)
            if progress:
                progress(res, i, len(chosen))
    except KeyboardInterrupt:
        out.incomplete = True
    out.seconds = time.perf_counter() - start
    return out


def verify(target: Case | str | Path, **options: object) -> CaseResult | RunResult:
    """Verify a Case (-> CaseResult) or every case under a file or directory (-> RunResult)."""
    if isinstance(target, Case):
        return verify_case(target, **options)  # type: ignore[arg-type]
    return run([target], **options)  # type: ignore[arg-type]

"""The engine: the only module that composes the stages. YAML -> Case -> (exact reference, torch) -> compare.

The CLI, the pytest plugin and the assertion helper are thin faces over :func:`verify_case` and :func:`run`.
"""

from __future__ import annotations

import platform
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any, Iterator

import numpy as np

from .case.catalog import CHECKS
from .case.loading import collect, select
from .case.model import Case, Input, Tolerance
from .checks.context import Ctx
from .checks.run import run_check
from .config import DEFAULT_TIMEOUT, RunConfig, Settled
from .dtypes import HALF
from .errors import CaseError, DeviceUnavailable, LimitError
from .reference.choice import make_reference, point_quantities
from .reference.expanded.reference import EVALUATION
from .results import CaseResult, RunResult, died_result, stuck_result
from .torchside.devices import check_device
from .torchside.draws import materialize
from .torchside.impl import implementation_program
from .traced import derived_text, rounded_point, traced_variants
from .version import __version__


class CaseTimeout(BaseException):  # not an Exception: no handler of a check may swallow it
    """Raised inside a case that ran past its time limit."""


def limit_enforceable() -> bool:
    """Whether a time limit can interrupt a case here: SIGALRM exists and this is the main thread (not so in a
    thread of the caller's; run() in worker processes enforces it by killing the worker instead)."""
    return hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Interrupt the block after `seconds` (SIGALRM; only in the main thread of a Unix process, else no limit).

    The caller's own interval timer and SIGALRM handler (pytest-timeout's signal method, a user's alarm) are left as
    they were: their remaining time keeps running while the block runs, an alarm of theirs due inside the block is
    delivered to their handler on time, and whatever remains is re-armed afterwards.
    """
    usable = seconds and limit_enforceable()
    if not usable:
        yield
        return
    assert seconds is not None
    start = time.monotonic()
    theirs = signal.getitimer(signal.ITIMER_REAL)  # (remaining, interval); (0, 0) when not armed
    theirs_first = 0 < theirs[0] < seconds
    old = signal.getsignal(signal.SIGALRM)

    def expire(signum: int, frame: FrameType | None) -> None:
        if theirs_first:  # the caller's alarm, not ours: hand it back and let their handler run
            signal.signal(signal.SIGALRM, old)
            signal.setitimer(signal.ITIMER_REAL, *((theirs[1], theirs[1]) if theirs[1] else (0, 0)))
            if callable(old):
                old(signum, frame)
            return
        raise CaseTimeout()

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, theirs[0] if theirs_first else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if signal.getsignal(signal.SIGALRM) is expire:
            signal.signal(signal.SIGALRM, old)
            if theirs[0] > 0:  # re-arm the caller's timer with what is left of it (a moment, if it is due)
                left = max(theirs[0] - (time.monotonic() - start), 1e-6)
                signal.setitimer(signal.ITIMER_REAL, left, theirs[1])


_WARM = False


def warm_up() -> None:
    """Import torch and the parts torch.func imports lazily before any clock starts: a time-limit alarm that lands
    inside an import leaves the module half-initialised for every later case."""
    global _WARM
    if _WARM:
        return
    import torch

    from .torchside import autodiff  # noqa: F401

    with quiet_torch():
        x = torch.ones(1, dtype=torch.float64)
        torch.func.hessian(lambda t: (t**3).sum())(x)
        torch.func.jacfwd(torch.sin)(x)
        torch.func.jvp(torch.sin, (x,), (x,))
    _WARM = True


@contextmanager
def quiet_torch() -> Iterator[None]:
    """torch's own deprecation notices about its internals (its forward-mode decompositions call torch.jit.script
    when first imported: 18 warnings) stay out of the user's run; the user's code's warnings pass through, and the
    caller's warning filters are restored afterwards."""
    import warnings

    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=r"torch(\.|$)")
        yield


def versions() -> dict[str, str]:
    import mpmath
    import sympy
    import torch

    return {"gradverify": __version__, "torch": torch.__version__, "sympy": sympy.__version__,
            "numpy": np.__version__, "mpmath": mpmath.__version__, "python": platform.python_version()}


def verify_case(
    case: Case,
    *,
    dtype: str | None = None,
    seed: int | None = None,
    checks: Iterable[str] | None = None,
    strict: bool | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    program: Callable[[Case], object] | None = None,
    device: str | None = None,
    compile: str | None = None,
) -> CaseResult:
    """Verify one case at each of its points; every check is a verdict of its own.

    Args:
        case: the case to verify.
        dtype: override the case's dtype ('float64', 'float32', 'float16', 'bfloat16').
        seed: override the seed of the random grad_outputs and tangents.
        checks: run only these checks (default: the case's).
        strict: fail at kinks instead of accepting a value between the one-sided derivatives.
        timeout: seconds before the case is stopped with a 'timeout' verdict (None: no limit).
        program: builds the torch side (default: the case's definition lowered to torch).
        device: override the case's device ('cpu', 'cuda', 'cuda:N'): where the torch side runs.
        compile: also verify torch.compile of the function with this backend ('auto', 'inductor', 'aot_eager').
    Returns:
        The CaseResult.
    """
    config = RunConfig(dtype=dtype, seed=seed, strict=strict, timeout=timeout, device=device, compile=compile,
                       checks=None if checks is None else tuple(checks))
    return verify_with(case, config, program)


def verify_with(case: Case, config: RunConfig, program: Callable[[Case], object] | None = None) -> CaseResult:
    """verify_case with the run's options as one frozen RunConfig (what run() and the faces pass)."""
    run = config.settle(case)
    result = CaseResult(name=case.name, case=case, evaluation=EVALUATION, dtype=run.dtype, device=run.device)
    if case.complex_inputs and run.dtype in HALF:  # torch's complex32 has almost no kernels: nothing to run there
        result.skipped = (f"complex inputs run in complex128 or complex64 (float64 or float32 parts), not {run.dtype} "
                          "parts")
        return result
    try:
        check_device(run.device)
    except DeviceUnavailable as exc:
        if run.device_asked:  # asked for on the command line: the run cannot do what it was told
            result.error = exc.located(file=case.file, line=case.line, case=case.name, key="device")
        else:  # the case's own device key: skipped where that device is missing (a CPU-only CI)
            result.skipped = str(exc.reason)
        return result
    warm_up()
    start = time.perf_counter()
    if case.torch_seed is not None:
        try:
            case = result.case = materialize(case)  # the inputs torch's generator draws, before either side runs
        except CaseError as exc:
            result.error = exc.located(file=case.file, line=case.line, case=case.name, key="impl")
            return result
        except Exception:  # noqa: BLE001 - the user's module failed to build: this case's verdict
            result.user_error = traceback.format_exc(limit=6)
            return result
    if program is None and case.impl:
        try:
            program = implementation_program(case, run.dtype, run.device)
        except CaseError as exc:  # the impl key names nothing loadable: bad input (exit 2), one line
            result.error = exc.located(file=case.file, line=case.line, case=case.name, key="impl")
            result.seconds = time.perf_counter() - start
            return result
        except Exception:  # noqa: BLE001 - the user's code failed to import or build: this case's verdict
            result.user_error = traceback.format_exc(limit=6)
            result.seconds = time.perf_counter() - start
            return result
    result.strict = run.strict
    result.limit_enforced = not run.timeout or limit_enforceable()
    try:
        with time_limit(run.timeout), quiet_torch():
            _verify(case, result, run, program)
    except CaseTimeout:
        result.timed_out = run.timeout
    except LimitError as exc:
        result.error = exc.located(file=case.file, line=case.line, case=case.name)
    except CaseError as exc:
        result.error = exc.located(file=case.file, line=case.line, case=case.name)
    except Exception:  # noqa: BLE001 - a bug of ours, reported as this case's verdict
        result.crashed = traceback.format_exc(limit=10)
    result.seconds = time.perf_counter() - start
    return result


def verify_implementation(
    impl: Callable[..., object],
    reference: str | None,
    values: dict[str, np.ndarray],
    *,
    dtype: str,
    order: int,
    checks: Iterable[str],
    tolerance: Tolerance | None,
    seed: int,
    strict: bool,
    timeout: float | None,
    define: Mapping[str, str] | None = None,
    grad_output: np.ndarray | None = None,
    gradient_of: str | None = None,
    module_params: Mapping[str, str] | None = None,
) -> CaseResult:
    """Verify a user's callable against the exact derivatives of a reference expression (the assertion helper); no
    reference: of its own forward, traced."""
    from .case.validate import case_from_expression
    from .torchside.impl import Implementation

    case = case_from_expression(reference, dict(values), name="implementation",
                                file="<assert_gradients_match>", dtype=dtype, order=max(order, 1),
                                checks=list(checks), seed=seed, define=define, grad_output=grad_output,
                                gradient_of=gradient_of)
    case = replace(case, tolerance=tolerance, strict=strict, derived_from=_name_of(impl) if case.traced else None)
    params = dict(module_params or {})
    if case.traced:
        traced = _traced_for_helper(case, impl, dtype, params, seed)
        if isinstance(traced, CaseResult):
            return traced
        case = traced
    if order >= 2 and case.output_shape != ():
        # double backward of a non-scalar output: check the scalar sum(w * out) with a seeded random w
        return _scalarized(impl, case, dtype, seed, timeout, params)
    return verify_case(case, seed=seed, timeout=timeout, program=lambda c: Implementation(c, impl, dtype, params))


def _name_of(impl: Callable[..., object]) -> str:
    """How the report names a user's callable (a Function's apply by its class)."""
    owner = getattr(impl, "__self__", None)
    if isinstance(owner, type):
        return owner.__qualname__
    if not hasattr(impl, "__qualname__"):
        return type(impl).__name__
    return getattr(impl, "__qualname__", "the implementation")


def _traced_for_helper(case: Case, impl: Callable[..., object], dtype: str, params: Mapping[str, str],
                       seed: int) -> Case | CaseResult:
    """The helper's case with its function traced at its one point: the output's shape is needed before the checks
    are planned (a non-scalar output at order >= 2 is checked through sum(w * out))."""
    from .config import RunConfig
    from .torchside.impl import Implementation

    result = CaseResult(name=case.name, case=case, dtype=dtype)
    run = RunConfig(dtype=dtype, seed=seed).settle(case)
    try:
        variants = traced_variants(case, result, run, lambda c: Implementation(c, impl, dtype, params))
    except CaseError as exc:
        result.error = exc.located(file=case.file, case=case.name)
        return result
    return variants[0]


def _scalarized(impl: Callable[..., object], case: Case, dtype: str, seed: int, timeout: float | None,
                params: Mapping[str, str] | None = None) -> CaseResult:
    import torch

    from .language.nodes import Bin, Call, Name
    from .torchside.impl import Implementation

    weight = "grad_output_weight"
    w = np.random.default_rng([seed, 99]).standard_normal(case.output_shape)
    inputs = case.inputs + (Input(weight, w, requires_grad=False),)
    value_function = None if case.value_function is None else \
        Call("sum", (Bin("*", Name(weight), case.value_function),))
    scalar = replace(case, inputs=inputs, function=Call("sum", (Bin("*", Name(weight), case.function),)),
                     value_function=value_function,
                     output_shape=(), shapes={**case.shapes, weight: case.output_shape},
                     points=tuple({**p, weight: w} for p in case.points))

    def weighted(*tensors: object) -> object:
        *args, wt = tensors
        return (wt * impl(*args)).sum()  # type: ignore[operator]  # the user's impl returns a tensor (checked by Implementation)

    if params:  # a module: functional_call needs the module itself, so the weighting wraps its forward
        module = impl

        class Weighted(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = module

            def forward(self, *tensors: object) -> object:
                *args, wt = tensors
                return (wt * self.inner(*args)).sum()  # type: ignore[operator]  # a tensor (checked by Implementation)

        wrapped = Weighted()
        inner = {f"inner.{k}": v for k, v in params.items()}
        return verify_case(scalar, seed=seed, timeout=timeout,
                           program=lambda c: Implementation(c, wrapped, dtype, inner))
    return verify_case(scalar, seed=seed, timeout=timeout, program=lambda c: Implementation(c, weighted, dtype))


def _verify(case: Case, result: CaseResult, run: Settled, program: Callable[[Case], object] | None = None) -> None:
    from .torchside.autodiff import TorchSide

    dtype = run.dtype
    variants = traced_variants(case, result, run, program) if case.traced else [case] * len(case.points)
    case = result.case = variants[0] if variants else case
    if case.checks != result.case.checks or any(v.checks != case.checks for v in variants):
        run = replace(run, checks=tuple(c for c in run.checks if all(c in v.checks for v in variants)))
    references: dict[int, object] = {}

    def reference_of(c: Case) -> Any:
        if id(c) not in references:
            references[id(c)] = make_reference(c)
        return references[id(c)]

    reference = reference_of(case)
    if case.derived_from:
        result.derived = derived_text(case, reference)
    tolerance = case.tolerance_for(dtype)
    planned = [(p, "", run.checks, variants[k]) for k, p in enumerate(case.points)]
    if case.auto_points:
        planned += [(p, kind, tuple(c for c in run.checks if c in AUTO_CHECKS), case)
                    for p, kind in _auto(case, reference)]
    for k, (raw, kind, checks, case_k) in enumerate(planned):
        point = rounded_point(case, raw, dtype)
        result.points.append(point)
        result.point_kinds.append(kind)
        rng = np.random.default_rng([run.seed, k])
        torch_side = TorchSide(case_k, point, dtype, program(case_k) if program else None, run.device)  # type: ignore[arg-type]  # a factory of Programs, typed loosely for users
        at = point_quantities(reference_of(case_k), point, dtype if dtype in HALF or tolerance.derived else None)
        ctx = Ctx(case_k, k, at, torch_side, dtype, tolerance, run.strict, rng, run)
        for name in CHECKS:
            if name in checks:
                began = time.perf_counter()
                result.checks.append(run_check(name, ctx))
                result.checks[-1].seconds = time.perf_counter() - began
    no_kernel = [c.skipped for c in result.checks if c.no_kernel]
    if no_kernel and all(c.skipped for c in result.checks):  # nothing ran: the case is skipped, not passed
        result.skipped = no_kernel[0]
    result.evaluation = reference.describe()
    result.reference = reference.kind.value


# The checks run at the points `points: auto` adds (first derivatives in every mode: the points are for the
# derivative's own faults; the case's own points carry the rest)
AUTO_CHECKS = frozenset({"value", "backward", "vjp", "grad", "jvp", "jacobian", "positions"})


def _auto(case: Case, reference: object) -> list[tuple[dict[str, np.ndarray], str]]:
    """The points that expose bugs (reference.autopoints), the tails only where the exact value exists."""
    from .reference.autopoints import auto_points
    from .reference.expanded.reference import Reference

    flat_out = reference.flat_out if isinstance(reference, Reference) else []
    symbols = reference.symbols if isinstance(reference, Reference) else {}
    out: list[tuple[dict[str, np.ndarray], str]] = []
    try:
        found = auto_points(case, flat_out, symbols, case.points[0])
    except Exception:  # noqa: BLE001 - the extra points are an addition: the case's own points still run
        found = []
    for point, kind in found:
        if any(all(np.array_equal(np.asarray(point[n]), np.asarray(p[n])) for n in point) for p in case.points):
            continue  # the case lists it already
        if kind.startswith("in the tail"):
            try:
                value = reference.at(point).value()  # type: ignore[attr-defined]  # an ExactReference
            except Exception:  # noqa: BLE001 - no exact value there: not a tail to test
                continue
            if value.undefined or not np.all(np.isfinite(value.lo)):
                continue
        out.append((point, kind))
    return out


def run(
    paths: Iterable[str | Path],
    *,
    pattern: str | None = None,
    dtype: str | None = None,
    seed: int | None = None,
    strict: bool | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    progress: Callable[[CaseResult, int, int], None] | None = None,
    jobs: int = 1,
    device: str | None = None,
    compile: str | None = None,
    isolate: bool | None = None,
    scheduler: str | None = None,
    shard: tuple[int, int] | None = None,
) -> RunResult:
    """Load every case under the paths and verify each; broken cases are reported, the rest still run.

    With jobs > 1 the cases run in that many processes; the results, in case order, are those of a serial run.
    With isolate (default: when jobs > 1 or a case names user code with impl:), each case runs in a worker process:
    a case that kills its process is that case's 'crashed' verdict, and one stuck past its time limit (inside one C
    call, where no alarm lands) is killed within about a second; the other cases run on, the report is written.

    With scheduler (a dask scheduler's address, or 'local[:N]'), each case is a task on that cluster, isolated in
    the worker as above; the results are those of a serial run, each with the worker it ran on. With shard (K, N),
    only the K-th of N deterministic shares of the cases (by name; a case's dtype variants stay together) runs.

    A KeyboardInterrupt stops the run and returns what finished, marked incomplete.
    """
    start = time.perf_counter()
    found = collect(paths)
    out = RunResult(errors=list(found.errors), seed=seed if seed is not None else 0, versions=versions())
    chosen = select(found.cases, pattern)
    if shard is not None:
        from .cluster import in_shard

        chosen = [c for c in chosen if in_shard(c.family or c.name, shard)]
        out.shard = shard
    config = RunConfig(dtype=dtype, seed=seed, strict=strict, timeout=timeout, device=device, compile=compile)
    if device is not None:  # the run was told where to run: one error before any case, not one per case
        try:
            check_device(device)
        except DeviceUnavailable as exc:
            out.errors.append(exc.located(file="<command line>", key="--device"))
            out.seconds = time.perf_counter() - start
            return out
    if isolate is None:
        isolate = jobs > 1 or any(c.impl for c in chosen)
    try:
        if scheduler and chosen:
            from .cluster import run_on_cluster

            run_on_cluster(chosen, scheduler, config, out, progress, verify=verify_with, warm=warm_up)
        elif isolate and chosen:
            from .parallel import run_isolated

            def died(case: Case, how: str) -> CaseResult:
                return died_result(case, config.settle(case).dtype, how)

            def stuck(case: Case, limit: float) -> CaseResult:
                return stuck_result(case, config.settle(case).dtype, limit)

            results: dict[int, CaseResult] = {}
            try:
                cases = list(chosen)
                for done, (k, res) in enumerate(run_isolated(verify_with, cases, jobs, lambda c: config.timeout,
                                                             died, stuck, warm_up, config=config), start=1):
                    results[k] = res
                    if progress:
                        progress(res, done, len(chosen))
            finally:  # an interrupt keeps what finished, in case order
                out.cases.extend(results[k] for k in sorted(results))
        else:
            for i, case in enumerate(chosen, start=1):
                res = verify_with(case, config)
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
        return verify_case(target, **options)  # type: ignore[arg-type]  # verify_case's keywords, as documented
    return run([target], **options)  # type: ignore[arg-type]  # run's keywords, as documented

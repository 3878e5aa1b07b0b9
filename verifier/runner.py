"""The engine: the only module that composes the stages. YAML -> Case -> (exact reference, torch) -> compare.

The CLI, the pytest plugin and the assertion helper are thin faces over :func:`verify_case` and :func:`run`.
"""

from __future__ import annotations

import fnmatch
import os
import platform
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np

from . import __version__
from .case import CHECKS, Case, Input, Tolerance
from .checks import NO_KERNEL_SKIP, Ctx, run_check
from .dtypes import HALF, round_to
from .errors import CaseError, DeviceUnavailable, LimitError
from .limits import LIMITS, flag
from .loading import collect
from .results import CaseResult, RunResult
from .symbolic import DIGITS, Reference

DEFAULT_TIMEOUT = 120.0  # seconds per case
EVALUATION = f"exact: sympy derivatives evaluated with mpmath at {DIGITS} digits"


class CaseTimeout(BaseException):  # not an Exception: no handler of a check may swallow it
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


_WARM = False


def _warm_up() -> None:
    """Import torch and the parts torch.func imports lazily before any clock starts: a time-limit alarm that lands
    inside an import leaves the module half-initialised for every later case."""
    global _WARM
    if _WARM:
        return
    import torch

    from . import autodiff  # noqa: F401

    x = torch.ones(1, dtype=torch.float64)
    torch.func.hessian(lambda t: (t**3).sum())(x)
    torch.func.jacfwd(torch.sin)(x)
    torch.func.jvp(torch.sin, (x,), (x,))
    _WARM = True


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
    dtype = dtype or case.dtype
    if device is not None and device != case.device:
        case = replace(case, device=device)
    if compile:
        case = replace(case, compile=compile, checks=case.checks + (() if "compile" in case.checks else ("compile",)))
    wanted = [c for c in (checks or case.checks) if c in case.checks or checks is not None]
    if compile and "compile" not in wanted:
        wanted.append("compile")
    result = CaseResult(name=case.name, case=case, evaluation=EVALUATION, dtype=dtype)
    if case.complex_inputs and dtype in HALF:  # torch's complex32 has almost no kernels: nothing to run there
        result.skipped = f"complex inputs run in complex128 or complex64 (float64 or float32 parts), not {dtype} parts"
        return result
    try:
        check_device(case.device)
    except DeviceUnavailable as exc:
        if device is not None:  # asked for on the command line: the run cannot do what it was told
            result.error = exc.located(file=case.file, line=case.line, case=case.name, key="device")
        else:  # the case's own device key: skipped where that device is missing (a CPU-only CI)
            result.skipped = str(exc.reason)
        return result
    _warm_up()
    start = time.perf_counter()
    if program is None and case.impl:
        try:
            program = _implementation(case, dtype)
        except Exception:  # noqa: BLE001 - the user's code failed to import or build: this case's verdict
            result.user_error = traceback.format_exc(limit=6)
            result.seconds = time.perf_counter() - start
            return result
    result.strict = case.strict if strict is None else strict
    try:
        with time_limit(timeout):
            _verify(case, result, dtype, seed, wanted, result.strict, program)
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


def check_device(device: str) -> None:
    """DeviceUnavailable unless torch can run on the device here."""
    if not device.startswith("cuda"):
        return
    import torch

    built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    if not torch.cuda.is_available():
        raise DeviceUnavailable(f"device {device}: CUDA is not available on this machine (torch {torch.__version__}, "
                                f"{built}); run on a machine with a GPU, or without --device / device:")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise DeviceUnavailable(f"device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def verify_implementation(
    impl: Callable[..., object],
    reference: str,
    values: dict[str, np.ndarray],
    *,
    dtype: str,
    order: int,
    checks: Iterable[str],
    tolerance: Tolerance | None,
    seed: int,
    strict: bool,
    timeout: float | None,
) -> CaseResult:
    """Verify a user's callable against the exact derivatives of a reference expression (the assertion helper)."""
    from .lowering import Implementation
    from .validation import case_from_expression

    case = case_from_expression(reference, dict(values), name="implementation",
                                file="<assert_gradients_match>", dtype=dtype, order=max(order, 1),
                                checks=list(checks), seed=seed)
    case = replace(case, tolerance=tolerance, strict=strict)
    if order >= 2 and case.output_shape != ():
        # double backward of a non-scalar output: check the scalar sum(w * out) with a seeded random w
        return _scalarized(impl, case, dtype, seed, timeout)
    return verify_case(case, seed=seed, timeout=timeout, program=lambda c: Implementation(c, impl, dtype))


def _implementation(case: Case, dtype: str) -> Callable[[Case], object]:
    """Import the case's impl (only now, for this case) and build the torch program that calls it."""
    import torch

    from .checks import _search_dirs
    from .lowering import DTYPES, Implementation, resolve_impl

    impl = resolve_impl(case.impl, case.impl_args, case.impl_kwargs, search=_search_dirs(case))  # type: ignore[arg-type]
    if isinstance(impl, torch.nn.Module):
        complex_dtype = {"float64": torch.complex128, "float32": torch.complex64}.get(dtype)
        impl = impl.to(complex_dtype if case.complex_inputs and complex_dtype else DTYPES[dtype])
    Implementation(case, impl, dtype, case.module_params)  # validates module_params now, as this case's verdict
    return lambda c: Implementation(c, impl, dtype, case.module_params)


def _scalarized(impl: Callable[..., object], case: Case, dtype: str, seed: int, timeout: float | None) -> CaseResult:
    from .expr import Bin, Call, Name
    from .lowering import Implementation

    weight = "grad_output_weight"
    w = np.random.default_rng([seed, 99]).standard_normal(case.output_shape)
    inputs = case.inputs + (Input(weight, w, requires_grad=False),)
    scalar = replace(case, inputs=inputs, function=Call("sum", (Bin("*", Name(weight), case.function),)),
                     output_shape=(), shapes={**case.shapes, weight: case.output_shape},
                     points=tuple({**p, weight: w} for p in case.points))

    def weighted(*tensors: object) -> object:
        *args, wt = tensors
        return (wt * impl(*args)).sum()  # type: ignore[operator]

    return verify_case(scalar, seed=seed, timeout=timeout, program=lambda c: Implementation(c, weighted, dtype))


def _verify(case: Case, result: CaseResult, dtype: str, seed: int | None, wanted: list[str], strict: bool,
            program: Callable[[Case], object] | None = None) -> None:
    from .autodiff import TorchSide

    reference = make_reference(case)
    tolerance = case.tolerance_for(dtype)
    for k, raw in enumerate(case.points):
        point = {n: v if dtype == "float64" and v.dtype == np.float64 else round_to(v, dtype)
                 for n, v in raw.items()}
        result.points.append(point)
        rng = np.random.default_rng([case.seed if seed is None else seed, k])
        torch_side = TorchSide(case, point, dtype, program(case) if program else None)  # type: ignore[arg-type]
        at = reference.at(point)
        if dtype in HALF:
            at.rounding = dtype  # each exact quantity carries the error rounding in this dtype can do to it
        ctx = Ctx(case, k, at, torch_side, dtype, tolerance, strict, rng)
        for name in CHECKS:
            if name in wanted:
                result.checks.append(run_check(name, ctx))
    no_kernel = [c.skipped for c in result.checks if c.skipped and c.skipped.startswith(NO_KERNEL_SKIP)]
    if no_kernel and all(c.skipped for c in result.checks):  # nothing ran: the case is skipped, not passed
        result.skipped = no_kernel[0]
    result.evaluation = describe(reference)


EXPAND_UP_TO = 32  # input (and output) elements up to which element expansion (exact everywhere) is the reference


def make_reference(case: Case) -> object:
    """The exact reference for a case: element expansion for small tensors (exact everywhere, kinks per element),
    the vectorised formulas for large element-wise / reduction cases, the matrix calculus for large linear algebra.
    A case's ``reference:`` key forces one."""
    from .matrix import MatrixReference
    from .vectorised import NotVectorisable, VectorReference

    choice = getattr(case, "reference", "auto")
    total = sum(i.value.size for i in case.inputs)
    if choice == "expand":
        return _expanded(case, "forced by the case's reference key")
    small = total <= EXPAND_UP_TO and int(np.prod(case.output_shape)) <= EXPAND_UP_TO
    if choice == "auto" and small:
        return _expanded(case, f"{total} input element(s): small enough to expand")
    reasons = []
    order = [("vectorised", VectorReference), ("matrix", MatrixReference)]
    if _uses_linear_algebra(case):  # closed forms from sympy's matrix calculus first, where they apply
        order.reverse()
    for kind, build in order:
        if choice not in ("auto", kind):
            continue
        try:
            return build(case)
        except NotVectorisable as exc:
            if choice == kind:
                raise CaseError(f"reference: {kind} does not apply: {exc}") from None
            reasons.append(f"{kind}: {exc}")
    if total > LIMITS.symbols:
        raise LimitError(f"the inputs have {total} elements; element-wise expansion is limited to {LIMITS.symbols} "
                         f"(raise it with {flag('symbols')}), and neither large-tensor reference applies ("
                         + "; ".join(reasons) + ")")
    return _expanded(case, "; ".join(reasons))


def _expanded(case: Case, why: str) -> Reference:
    ref = Reference(case)
    ref.why = why  # type: ignore[attr-defined]
    return ref


def _uses_linear_algebra(case: Case) -> bool:
    from .expr import Bin, Call, walk

    nodes = [n for node in [d.node for d in case.defines] + [case.function] for n in walk(node)]
    return any((isinstance(n, Bin) and n.op == "@") or (isinstance(n, Call) and n.func in
               ("matmul", "transpose", "dot", "trace", "det", "inv")) for n in nodes)


def describe(reference: object) -> str:
    if hasattr(reference, "describe"):
        return reference.describe()  # type: ignore[no-any-return]
    why = getattr(reference, "why", None)
    return f"{EVALUATION} (element expansion: {why})" if why else EVALUATION


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
    jobs: int = 1,
    device: str | None = None,
    compile: str | None = None,
) -> RunResult:
    """Load every case under the paths and verify each; broken cases are reported, the rest still run.

    With jobs > 1 the cases run in that many processes; the results, in case order, are those of a serial run.

    A KeyboardInterrupt stops the run and returns what finished, marked incomplete.
    """
    start = time.perf_counter()
    found = collect(paths)
    out = RunResult(errors=list(found.errors), seed=seed if seed is not None else 0, versions=versions())
    chosen = select(found.cases, pattern)
    options = {"dtype": dtype, "seed": seed, "strict": strict, "timeout": timeout, "device": device,
               "compile": compile}
    try:
        if jobs > 1 and len(chosen) > 1:
            _run_parallel(chosen, options, jobs, out, progress)
        else:
            for i, case in enumerate(chosen, start=1):
                res = verify_case(case, **options)  # type: ignore[arg-type]
                out.cases.append(res)
                if progress:
                    progress(res, i, len(chosen))
    except KeyboardInterrupt:
        out.incomplete = True
    out.seconds = time.perf_counter() - start
    return out


def _worker_init(limits: dict[str, int], threads: int) -> None:
    import torch

    from .limits import configure

    configure(**limits)
    torch.set_num_threads(threads)  # the cores are shared between the workers: no oversubscription


def _run_parallel(cases: list[Case], options: dict[str, object], jobs: int, out: RunResult,
                  progress: Callable[[CaseResult, int, int], None] | None) -> None:
    """Verify cases in worker processes (spawned: torch must not be forked once initialised)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from dataclasses import asdict

    from .limits import LIMITS

    results: dict[int, CaseResult] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init,
                             initargs=(asdict(LIMITS), max(1, (os.cpu_count() or 1) // jobs))) as pool:
        futures = {pool.submit(verify_case, case, **options): k for k, case in enumerate(cases)}  # type: ignore[arg-type]
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if progress:
                    progress(results[futures[future]], done, len(cases))
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            out.cases.extend(results[k] for k in sorted(results))
            raise
    out.cases.extend(results[k] for k in sorted(results))


def verify(target: Case | str | Path, **options: object) -> CaseResult | RunResult:
    """Verify a Case (-> CaseResult) or every case under a file or directory (-> RunResult)."""
    if isinstance(target, Case):
        return verify_case(target, **options)  # type: ignore[arg-type]
    return run([target], **options)  # type: ignore[arg-type]


def sweep_1d(case: Case, n: int = 200, dtype: str | None = None) -> dict[str, object]:
    """A function of one scalar input over its domain: exact value and derivative (one sided at kinks), torch's
    derivative by each path, and each path's error in ULPs. The data behind `gradverify plot`."""
    from .autodiff import TorchSide
    from .compare import ulp
    from .errors import CaseError

    dtype = dtype or case.dtype
    diff = case.differentiable
    if len(diff) != 1 or diff[0].value.size != 1 or int(np.prod(case.output_shape)) != 1:
        raise CaseError("plot draws functions of one scalar input with a scalar output; this case has "
                        f"{sum(i.value.size for i in diff)} differentiable elements and output shape "
                        f"{list(case.output_shape)}", file=case.file, line=case.line, case=case.name)
    name = diff[0].name
    x0 = float(diff[0].value.reshape(-1)[0])
    lo, hi = case.domain.get(name, (x0 - 3.0, x0 + 3.0))
    xs = round_to(np.linspace(lo, hi, n), dtype)
    reference = make_reference(case)
    base = {i.name: round_to(i.value, dtype) for i in case.inputs}
    shape = diff[0].shape
    out: dict[str, object] = {"x": xs, "name": name, "function": case.function_text, "dtype": dtype}
    f, left, right, paths = [], [], [], {}
    one = np.ones(case.output_shape)
    for x in xs:
        point = {**base, name: np.full(shape, x)}
        at = reference.at(point)
        f.append(float(at.value().lo.reshape(-1)[0]))
        d = at.jacobian(name)
        left.append(float(d.lo.reshape(-1)[0]))
        right.append(float(d.hi.reshape(-1)[0]))
        side = TorchSide(case, point, dtype)
        got = {
            "y.backward()": side.vjp(one)["y.backward(v)"]()[name],
            "autograd.grad": side.grad(one if case.output_shape else None)[0][name],
            "forward_ad": side.jvp({name: np.ones(shape)})["forward_ad"](),
            "torch.func.jacrev": side.jacobian()["torch.func.jacrev"]()[name],
        }
        for label, value in got.items():
            paths.setdefault(label, []).append(float(np.asarray(value).reshape(-1)[0]))
    exact = np.array(left)
    out.update(f=np.array(f), exact=exact, exact_right=np.array(right), paths={k: np.array(v) for k, v in paths.items()})
    tol = case.tolerance_for(dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        spacing = ulp(exact, dtype)
        out["ulps"] = {k: np.abs(v - exact) / spacing for k, v in out["paths"].items()}  # type: ignore[union-attr]
        out["bad"] = {k: np.abs(v - exact) > tol.atol + tol.rtol * np.abs(exact)
                      for k, v in out["paths"].items()}  # type: ignore[union-attr]
    return out


def training_curves(case: Case, dtype: str | None = None) -> dict[str, object]:
    """Loss per step of the loop driven by exact gradients and of torch's loop, and the final parameters and data
    for the case's picture. The data behind `gradverify plot` for train cases."""
    from .autodiff import TorchSide
    from .errors import CaseError
    from .training import exact_loop

    if case.train is None:
        raise CaseError("this case has no train section", file=case.file, line=case.line, case=case.name)
    dtype = dtype or case.dtype
    point = {n: round_to(v, dtype) for n, v in case.points[0].items()}
    reference = make_reference(case)

    def loss_and_grad(params: dict[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        at = reference.at({**point, **params})
        return float(at.value().lo), {n: at.jacobian(n).lo.reshape(case.shapes[n]) for n in case.train.params}

    trajectory, losses = exact_loop(case.train, {n: point[n] for n in case.train.params}, loss_and_grad)
    side = TorchSide(case, point, dtype)
    records = side.train(case.train, "optim")
    final = {**point, **{n: v for n, v in trajectory[-1].items()}}
    import torch

    with torch.no_grad():
        _, nodes, leaves = TorchSide(case, final, dtype).forward()
    values = {n: t.detach().numpy() for n, t in {**leaves, **nodes}.items()}
    return {"exact_loss": np.array(losses), "torch_loss": np.array([r["loss"] for r in records]),
            "values": values, "picture": dict(case.picture), "optimizer": case.train.optimizer}

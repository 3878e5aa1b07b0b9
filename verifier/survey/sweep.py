"""Accuracy sweeps: torch's gradient at many points of a case's domain against the exact derivative, in ULPs.

The exact side is the case's element expansion (sympy's Jacobian) evaluated at every sample point in mpmath at 30
digits, one DAG walk over arrays of points (:class:`verifier.mpeval.ArrayEvaluator`). The torch side is the case's
own definition lowered to torch: element-wise cases run once on a batch of every sample, the others once per sample.
Sample points are float32 numbers, so the float64 and the float32 sweep of an op share points and exact values.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ..case.model import Case
from ..errors import CaseError
from ..language.analysis import is_elementwise
from ..results import WIDE, SweepResult

DIGITS = 30  # enough to measure float64 errors to a small fraction of an ULP




def sample(bounds: tuple[float, float], size: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform over narrow domains; log-spaced magnitudes over wide ones (both signs when the domain spans 0).
    Rounded to float32, so that both dtypes see the same points."""
    lo, hi = bounds
    wide = hi - lo > WIDE or (lo > 0 and hi / lo > 1e3) or (hi < 0 and lo / hi > 1e3)
    if not wide:
        x = rng.uniform(lo, hi, size)
    else:
        top = max(abs(lo), abs(hi))
        floor = max(min(abs(v) for v in (lo, hi) if v != 0) if lo * hi > 0 else top * 1e-8, 1e-30)
        mag = np.exp(rng.uniform(math.log(floor), math.log(top), size))
        if lo >= 0:
            x = mag
        elif hi <= 0:
            x = -mag
        else:
            neg = rng.random(size) < abs(lo) / (abs(lo) + hi)
            x = np.where(neg, -np.minimum(mag, abs(lo)), np.minimum(mag, hi))
    x = np.clip(x.astype(np.float32).astype(np.float64), lo, hi)
    return x


_EXACT: dict[Any, Any] = {}  # (case structure, n, seed, domains) -> samples and exact Jacobians, shared by dtypes


def sample_points(case: Case, n: int, seed: int) -> tuple[dict[str, np.ndarray], int]:
    diff = case.differentiable
    per_sample = sum(i.value.size for i in diff)
    if per_sample == 0:
        raise CaseError("the case has no differentiable input to sweep", file=case.file, line=case.line, case=case.name)
    samples = max(1, math.ceil(n / per_sample))
    rng = np.random.default_rng([seed, 104729])
    out = {}
    for i in case.inputs:
        bounds = case.sweep.get(i.name) or case.domain.get(i.name)
        if bounds is None and i.requires_grad:
            x0 = float(np.max(np.abs(i.value))) if i.value.size else 1.0
            bounds = (-max(1.0, 2 * x0), max(1.0, 2 * x0))
        if bounds is None:
            out[i.name] = np.broadcast_to(i.value, (samples,) + i.shape).copy()
        else:
            out[i.name] = sample(bounds, samples * i.value.size, rng).reshape((samples,) + i.shape)
    return out, samples


def _exact(case: Case, values: dict[str, np.ndarray], samples: int) -> tuple[np.ndarray, Any]:
    """The exact Jacobian at every sample: an object array (samples, outputs, wrt) of mpf (NaN where undefined)."""
    import mpmath

    from ..reference.expanded.reference import Reference
    from ..reference.numeric.mp import ArrayEvaluator

    ref = Reference(case)
    jac = ref.jacobian()
    with mpmath.workdps(DIGITS):
        env = {}
        for i in case.inputs:
            flat = values[i.name].reshape(samples, -1)
            for k, s in enumerate(ref.symbols[i.name].reshape(-1)):
                env[s] = np.array([mpmath.mpf(float(v)) for v in flat[:, k]], dtype=object)
        ev = ArrayEvaluator(env, samples)
        out = np.empty((samples, len(jac), len(ref.wrt)), dtype=object)
        for r, row in enumerate(jac):
            for c, e in enumerate(row):
                out[:, r, c] = ev(e)
        valid = np.ones(samples, dtype=bool)
        for e in ref.flat_out:  # no derivative where the function itself has no value
            v = ev(e)
            valid &= np.array([mpmath.isfinite(a) if isinstance(a, mpmath.mpf) else False for a in v])
    return out, valid


def torch_grads(case: Case, values: dict[str, np.ndarray], samples: int, dtype: str,
                rng: np.random.Generator, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """torch's vector-Jacobian product at every sample: (grads (samples, wrt), cotangents (samples, outputs)), the
    torch side on `device`."""
    import torch

    from ..torchside.devices import DTYPES
    from ..torchside.lowering import Program

    program = Program(case, dtype, device=device)
    tdtype = DTYPES[dtype]
    kw: dict[str, Any] = {"dtype": tdtype, "device": device}
    diff = case.differentiable
    m = int(np.prod(case.output_shape))
    if is_elementwise(case.nodes()):  # a batch of samples can run as one tensor
        ndim = max([len(i.shape) for i in case.inputs] + [len(case.output_shape)])
        leaves = {i.name: torch.tensor(values[i.name].reshape((samples,) + (1,) * (ndim - len(i.shape)) + i.shape),
                                       **kw, requires_grad=i.requires_grad) for i in case.inputs}
        out, _ = program(leaves)
        out = out.expand((samples,) + case.output_shape) if out.dim() else out.expand(samples)
        weights = np.ones((samples, m))
        grads = torch.autograd.grad(out, [leaves[i.name] for i in diff], torch.ones_like(out), allow_unused=True)
        cols = []
        for i, g in zip(diff, grads):
            g = torch.zeros((samples,) + i.shape, **kw) if g is None else g
            a = g.detach().to(torch.float64).cpu().numpy()
            cols.append(a.reshape(samples, -1) if a.shape[0] == samples
                        else np.broadcast_to(a, (samples,) + i.shape).reshape(samples, -1))
        return np.concatenate(cols, axis=1), weights
    weights = rng.standard_normal((samples, m)).astype(np.float32).astype(np.float64) if m > 1 else np.ones((samples, 1))
    rows = []
    for s in range(samples):
        leaves = {i.name: torch.tensor(values[i.name][s], **kw, requires_grad=i.requires_grad)
                  for i in case.inputs}
        out, _ = program(leaves)
        v = torch.tensor(weights[s].reshape(case.output_shape), **kw)
        try:
            grads = torch.autograd.grad(out, [leaves[i.name] for i in diff], v, allow_unused=True)
        except RuntimeError:  # torch raises here (e.g. a singular matrix): no gradient at this sample
            rows.append(np.full(sum(i.value.size for i in diff), np.nan))
            continue
        rows.append(np.concatenate([np.zeros(i.value.size) if g is None
                                    else g.detach().to(torch.float64).cpu().numpy().reshape(-1)
                                    for i, g in zip(diff, grads)]))
    return np.array(rows), weights


def sweep_case(case: Case, n: int = 100_000, seed: int = 0) -> SweepResult:
    """Sweep one case over its `sweep` domain (else `domain`) with at least n gradient elements."""
    import mpmath

    from ..compare import ulp
    from ..reference.cache import case_key

    start = time.perf_counter()
    values, samples = sample_points(case, n, seed)
    key = (repr(case_key(case)), n, seed, tuple(sorted(case.sweep.items())), tuple(sorted(case.domain.items())))
    if key not in _EXACT:
        _EXACT.clear()  # keep one op's values: the float64 and float32 cases of an op come one after the other
        _EXACT[key] = _exact(case, values, samples)
    jac, valid = _EXACT[key]
    rng = np.random.default_rng([seed, 15485863])
    got, weights = torch_grads(case, values, samples, case.dtype, rng)
    with mpmath.workdps(DIGITS):
        exact = np.empty(got.shape, dtype=object)
        w = weights.astype(object)
        for j in range(got.shape[1]):
            col = jac[:, :, j]
            exact[:, j] = np.array([mpmath.fsum(mpmath.mpf(float(a)) * b for a, b in zip(w[s], col[s]) if a != 0)
                                    if valid[s] else mpmath.nan for s in range(samples)], dtype=object)
        hi = np.array([float(v) if mpmath.isfinite(v) else math.nan for v in exact.reshape(-1)]).reshape(got.shape)
        lo = np.array([float(v - h) if math.isfinite(h) else 0.0 for v, h in zip(exact.reshape(-1), hi.reshape(-1))]
                      ).reshape(got.shape)
    limit = np.finfo(np.float32 if case.dtype == "float32" else np.float64).max
    defined = np.isfinite(hi) & (np.abs(hi) <= limit)
    finite = defined & np.isfinite(got)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs((got - hi) - lo)
        tiny = np.finfo(np.float32 if case.dtype == "float32" else np.float64).tiny
        ulps = np.where(finite, err / ulp(np.maximum(np.abs(hi), tiny), case.dtype), np.nan)
    shown = ulps[finite]
    worst: dict[str, Any] = {}
    if shown.size:
        s, j = (int(i) for i in np.unravel_index(int(np.nanargmax(np.where(finite, ulps, -1.0))), ulps.shape))
        worst = {"inputs": {i.name: values[i.name][s].tolist() for i in case.inputs}, "element": int(j),
                 "exact": float(hi[s, j]), "torch": float(got[s, j]), "ulps": float(ulps[s, j])}
    first = case.differentiable[0]
    x = np.repeat(values[first.name].reshape(samples, -1)[:, :1], got.shape[1], axis=1) if first.value.size == 1 \
        else np.concatenate([values[i.name].reshape(samples, -1) for i in case.differentiable], axis=1)
    return SweepResult(
        case=case.name, op=case.op or case.function_text, dtype=case.dtype, points=int(shown.size), samples=samples,
        median_ulps=float(np.median(shown)) if shown.size else math.nan,
        max_ulps=float(shown.max()) if shown.size else math.nan,
        p999_ulps=float(np.quantile(shown, 0.999)) if shown.size else math.nan, worst=worst,
        nonfinite=int((defined & ~np.isfinite(got)).sum()), undefined=int((~defined).sum()),
        seconds=time.perf_counter() - start, x=x[finite], ulps=shown, input_name=first.name,
    )


def _sweep_group(cases: list[Case], n: int, seed: int) -> list[SweepResult | CaseError]:
    out: list[SweepResult | CaseError] = []
    for case in cases:
        try:
            out.append(sweep_case(case, n, seed))
        except CaseError as exc:
            out.append(exc.located(file=case.file, line=case.line, case=case.name))
        except Exception as exc:  # noqa: BLE001 - one case's failure is its own line in the report
            out.append(CaseError(f"the sweep raised {type(exc).__name__}: {exc}", file=case.file, line=case.line,
                                 case=case.name))
    return out


def sweep_all(cases: list[Case], n: int = 100_000, seed: int = 0, jobs: int = 1,
              progress: Any = None, scheduler: str | None = None) -> list[SweepResult | CaseError]:
    """Sweep every case (in jobs processes, or one task per case family on a dask cluster); the results in the
    cases' order, an error in place of a case that could not be swept."""
    groups: dict[str, list[Case]] = {}
    for c in cases:
        groups.setdefault(c.family or c.name, []).append(c)
    results: dict[str, SweepResult | CaseError] = {}
    if scheduler:
        from ..cluster import map_on_cluster

        batches = list(groups.values())

        def lost(group: list[Case], why: str) -> list[SweepResult | CaseError]:
            return [CaseError(f"its dask worker died or was lost ({why})", file=c.file, line=c.line, case=c.name)
                    for c in group]

        for k, (index, swept, _) in enumerate(map_on_cluster(_sweep_group, batches, scheduler,
                                                             key=lambda g: g[0].family or g[0].name, lost=lost,
                                                             n=n, seed=seed), start=1):
            for c, r in zip(batches[index], swept):
                results[c.name] = r
            if progress:
                progress(k, len(groups))
    elif jobs <= 1:
        for k, group in enumerate(groups.values(), start=1):
            for c, r in zip(group, _sweep_group(group, n, seed)):
                results[c.name] = r
            if progress:
                progress(k, len(groups))
    else:
        from ..parallel import map_unordered

        batches = list(groups.values())
        for k, (index, swept) in enumerate(map_unordered(_sweep_group, batches, jobs, threads=1, n=n, seed=seed),
                                           start=1):
            for c, r in zip(batches[index], swept):
                results[c.name] = r
            if progress:
                progress(k, len(groups))
    return [results[c.name] for c in cases]

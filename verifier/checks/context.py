"""Each check of the runner: one exact quantity from the symbolic side, the same from torch, compared.

Part of the runner (the only place where stages meet): ``run_check`` is called by :mod:`verifier.runner`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

import numpy as np

from ..case.model import Case, Tolerance
from ..compare import Comparison, Diagnosis, compare
from ..config import Settled
from ..dtypes import HALF, UNIT_ROUNDOFF, round_to
from ..reference.base import PointQuantities
from ..results import CheckResult
from ..torchside.autodiff import TorchSide
from ..values import Code, Exact, Reason

MAX_JACOBIAN = 250_000  # entries of a Jacobian computed by jacrev/jacfwd
MAX_BASIS = 16_000_000  # entries of the identity basis torch.func.jacfwd / jacrev materialise
MAX_HIGHER = 20_000  # entries of an order-k derivative tensor


@dataclass
class Ctx:
    """What a check needs: the case at one point, both sides, and the comparison settings."""

    case: Case
    point: int
    exact: PointQuantities
    torch: TorchSide
    dtype: str
    tolerance: Tolerance
    strict: bool
    rng: np.random.Generator
    run: Settled | None = None  # this run's settled options (None: the case's own)

    def cmp(self, exact: Exact, got: np.ndarray | None, check: str, label: str, path: str, wrt: str | None = None,
            formula: str | None = None, source: str = "sympy", weights: np.ndarray | None = None) -> Comparison:
        """Compare got with the exact quantity; weights: the grad_output v of a v^T J (to name a backward that
        ignores it)."""
        path = str(path)  # a torchside.paths.Path member, or a composed label

        def run() -> Comparison:
            if self.dtype in HALF:
                _beyond_range(exact, self.dtype)  # again after each refinement
            terms = max((i.value.size for i in self.case.inputs), default=1)
            return compare(_zeros_floored(exact, tolerance, self.dtype, terms), got, check=check, label=label, path=path,
                           wrt=wrt, tolerance=tolerance, dtype=self.dtype, strict=self.strict)

        if exact.refine is not None:
            self._refine(exact)  # the seeded sample
        if exact.slack is None and (self.dtype in HALF or (self.dtype == "float32" and
                                                            not self.exact.per_element_bounds)):
            self._normwise(exact)  # float32 too for large tensors: long reductions round more than the table allows
        tolerance = self.tolerance_of(exact)
        c = run()
        if exact.refine is not None and c.mismatched:
            # no verdict rests on a float64 evaluation: recompute the disagreements exactly, in rounds (the worst
            # first) while new ones remain and the time budget lasts
            import time

            from ..reference.vectorised.plan import REFINE_SECONDS

            deadline = time.perf_counter() + REFINE_SECONDS
            while c.mismatched and self._refine(exact, np.zeros_like(exact.lo) if got is None else got):
                c = run()
                if time.perf_counter() > deadline:
                    break
            if c.mismatched:
                left = self._unrefined(exact, got)
                if left:
                    c.notes[-1] = (f"{left} mismatched element(s) were judged against the float64 screen, not the "
                                   "exact value (the refinement budget ran out)")
        c.exact_source = source
        if not c.passed and got is not None and wrt is not None and np.shape(got) == exact.lo.shape:
            self._explain(c, exact, np.asarray(got, dtype=np.float64), wrt, weights)
        if not c.passed and c.worst is not None:
            try:
                if formula == "value":
                    c.formula = self.exact.ref.value_formula(int(np.ravel_multi_index(c.worst, c.expected_shape))
                                                       if c.expected_shape else 0)
                elif formula == "partials" and wrt is not None:
                    shape = self.case.shapes[wrt]
                    k = int(np.ravel_multi_index(c.worst[-len(shape):], shape)) if shape else 0
                    c.formula = self.exact.ref.column_formula(wrt, k)
            except (ValueError, IndexError):
                c.formula = None
        return c

    @cached_property
    def _floor(self) -> Tolerance:  # asked of every comparison under the derived tolerance
        return self.tolerance.floor(self.dtype)

    @cached_property
    def not_as_expanded(self) -> bool:  # asked of every comparison: a walk of the definition, once per context
        return _not_as_expanded(self.case)

    def tolerance_of(self, exact: Exact) -> Tolerance:
        """The tolerance a quantity is compared under: the derived one (the dtype's smallest normal as atol, the
        per-element bound as slack) where the reference derived a bound for it, else the fixed table or the user's."""
        if self.tolerance.derived and self.dtype not in HALF and exact.slack is not None and \
                self.exact.per_element_bounds:
            tol = self._floor
            if self.not_as_expanded:  # torch's arithmetic is not the expansion's: a norm-wise floor on top
                finite = np.abs(exact.lo[np.isfinite(exact.lo)])
                scale = float(finite.max()) if finite.size else 0.0
                tol = Tolerance(tol.rtol, max(tol.atol, UNIT_ROUNDOFF[self.dtype] * self._operations() * scale), True)
            return tol
        return self.tolerance

    def _explain(self, c: Comparison, exact: Exact, got: np.ndarray, wrt: str, weights: np.ndarray | None) -> None:
        """Name the cause a single comparison cannot see: a backward that ignores grad_output (got is the v = 1
        result whatever v is), or an error confined to a region of the input (wrong where x > t, right elsewhere)."""
        close = 1e-6 if self.dtype == "float64" else 1e-3
        if weights is not None and not np.all(weights == 1) and (c.diagnosis is None or c.diagnosis.kind in
                                                                  ("partial", "factor", "relative", "inaccurate")):
            ones = self.exact.vjp(np.ones(self.case.output_shape), wrt).lo
            if ones.shape == got.shape and np.allclose(got, ones, rtol=close, atol=close * float(np.max(np.abs(ones),
                                                                                                       initial=0.0))):
                c.diagnosis = Diagnosis("ignores_grad_output")
                return
        x = np.asarray(self.exact.point.get(wrt, np.empty(0)), dtype=np.float64)
        if c.diagnosis is None or c.diagnosis.kind != "partial" or x.shape != got.shape or got.size < 4:
            return
        lo = exact.lo
        bad = np.zeros(lo.shape, dtype=bool)
        bad.flat[self._off(exact, got)] = True  # the elements the comparison itself found outside the tolerance
        bad &= ~np.isnan(lo)
        good = ~bad & ~np.isnan(lo)
        if not bad.any() or not good.any():
            return
        for side, inside in ((">", float(x[bad].min()) > float(x[good].max())),
                             ("<", float(x[bad].max()) < float(x[good].min()))):
            if inside:
                at = float(x[good].max()) if side == ">" else float(x[good].min())
                what = "sign" if np.allclose(got[bad], -lo[bad], rtol=close, atol=0) else \
                    "zero" if np.all(got[bad] == 0) else "wrong"
                c.diagnosis = Diagnosis("region", count=int(bad.sum()),
                                        detail={"input": wrt, "side": side, "at": at, "what": what})
                return

    def _normwise(self, exact: Exact) -> None:
        """A half-precision (or large float32) quantity from a reference without per-element bounds gets the
        norm-wise bound over the case's operations (in place)."""
        from ..reference.rounding import normwise_slack

        with np.errstate(invalid="ignore"):
            exact.slack = normwise_slack(exact.lo, self.dtype, self._operations())

    def _operations(self) -> int:
        """The operations of the case's definition, and the levels of a reduction over all its input elements."""
        case = self.case
        elements = sum(i.value.size for i in case.inputs)
        return len(case.nodes()) + int(np.ceil(np.log2(max(elements, 2))))

    def _unrefined(self, exact: Exact, got: np.ndarray | None) -> int:
        if got is None or np.shape(got) != exact.lo.shape:
            return 0
        return int(np.setdiff1d(self._off(exact, got), np.fromiter(exact.exact_at, dtype=np.int64)).size)

    def _off(self, exact: Exact, got: np.ndarray) -> np.ndarray:
        lo, hi = exact.lo.reshape(-1), exact.hi.reshape(-1)
        g = np.asarray(got, dtype=np.float64).reshape(-1)
        tol = self.tolerance_of(exact)
        slack = 0.0 if exact.slack is None else exact.slack.reshape(-1)
        with np.errstate(invalid="ignore", over="ignore"):
            inside = (g >= np.fmin(lo, hi) - tol.allowed(np.abs(lo), slack)) & \
                (g <= np.fmax(lo, hi) + tol.allowed(np.abs(hi), slack))
        return np.flatnonzero(~inside & ~(np.isnan(lo) & np.isnan(hi)) | (np.isnan(g) & ~np.isnan(lo)))

    def _refine(self, exact: Exact, got: np.ndarray | None = None) -> bool:
        """A float64-evaluated reference is recomputed exactly wherever torch disagrees with it (the worst first)
        and at a seeded sample, before any verdict rests on it."""
        from ..reference.vectorised.plan import REFINE_ELEMENTS, SAMPLE

        lo = exact.lo.reshape(-1)
        if got is None:
            picks = np.random.default_rng([self.case.seed, lo.size]).choice(lo.size, min(SAMPLE, lo.size), replace=False)
            if exact.exact_at:  # a quantity refined before (the 2x of a retained graph shares the 1x's values)
                picks = np.setdiff1d(picks, np.fromiter(exact.exact_at, dtype=np.int64))
        elif np.shape(got) == exact.lo.shape:
            bad = np.setdiff1d(self._off(exact, got), np.fromiter(exact.exact_at, dtype=np.int64))
            if bad.size > REFINE_ELEMENTS:
                g = np.asarray(got, dtype=np.float64).reshape(-1)
                with np.errstate(invalid="ignore", over="ignore"):
                    err = np.nan_to_num(np.abs(g[bad] - lo[bad]), nan=np.inf)
                bad = bad[np.argsort(-err)[:REFINE_ELEMENTS]]
            picks = bad
        else:
            return False
        if not len(picks):
            return False
        exact.refine(picks, got is not None)  # type: ignore[misc]  # a callable field, not a method
        return True

    def rounded(self, values: np.ndarray) -> np.ndarray:
        return round_to(values, self.dtype)

    def weights(self) -> np.ndarray:
        if self.case.grad_output is not None:
            return self.rounded(self.case.grad_output)
        return np.ones(self.case.output_shape)

    def random(self, shape: tuple[int, ...], rng: np.random.Generator | None = None) -> np.ndarray:
        return self.rounded((rng or self.rng).standard_normal(shape))

    def stream(self, tag: int) -> np.random.Generator:
        """A seeded generator of its own for one check (its draws leave the shared sequence of the others alone)."""
        seed = self.run.seed if self.run is not None else self.case.seed
        return np.random.default_rng([seed, self.point, tag])

    @property
    def scalar(self) -> bool:
        return self.case.output_shape == ()


def _zeros_floored(exact: Exact, tolerance: Tolerance, dtype: str, terms: int = 1) -> Exact:
    """Under the derived tolerance, an exact zero (a structural one: lo = hi = 0) allows the rounding of the
    quantity's largest entry, or of 1, over as many terms as the largest input has elements (torch's formulas may
    cancel terms the exact expression never has: the gradient of a bias that batch norm removes is a sum over the
    batch of terms that cancel); a non-zero exact value keeps its own bound, however small."""
    if not tolerance.derived or exact.slack is None or dtype in HALF:
        return exact
    if exact.lo.all() if exact.hi is exact.lo else (exact.lo.all() or exact.hi.all()):  # no zero (NaN is not one)
        return exact
    zeros = (exact.lo == 0) & (exact.hi == 0)
    if not zeros.any():
        return exact
    finite = np.abs(exact.lo[np.isfinite(exact.lo)])
    scale = max(float(finite.max()) if finite.size else 0.0, 1.0)  # an all-zero quantity: the rounding of 1
    from dataclasses import replace

    from ..reference.rounding import KAPPA

    allowed = KAPPA * UNIT_ROUNDOFF[dtype] * scale * max(terms, 1) * exact.times  # k calls: k roundings
    return replace(exact, slack=np.where(zeros, np.maximum(exact.slack, allowed), exact.slack))


def _not_as_expanded(case: Case) -> bool:
    """Whether torch computes the case other than as the reference expands it: complex arithmetic (expanded into real
    pairs) or an op torch computes by a matrix algorithm (det and inv by LU)."""
    from ..language.nodes import Call
    from ..language.ops import OPS

    if case.complex_inputs:
        return True
    return any(isinstance(n, Call) and n.func in OPS and OPS[n.func].algorithm for n in case.nodes())


def _beyond_range(exact: Exact, dtype: str) -> None:
    """Exact values the dtype cannot hold are undefined there (in place): torch can only give inf."""
    from ..dtypes import LARGEST

    largest = LARGEST[dtype]
    with np.errstate(invalid="ignore"):
        beyond = np.flatnonzero((np.abs(exact.lo) > largest) | (np.abs(exact.hi) > largest))
    for k in beyond:
        exact.undefined.setdefault(int(k), Reason(f"the exact value {exact.lo.flat[k]:.4g} is beyond {dtype}'s "
                                                  f"largest finite value {largest:g}", Code.BEYOND_RANGE))
        exact.lo.flat[k] = exact.hi.flat[k] = np.nan


def scaled(e: Exact, k: float) -> Exact:
    """k times an exact quantity (refining it refines the original)."""
    lo = e.lo * k
    out = Exact(lo, lo if e.hi is e.lo else e.hi * k, dict(e.undefined), e.kinks, notes=dict(e.notes),
                slack=None if e.slack is None else e.slack * abs(k), times=e.times * abs(k))
    out.exact_at = e.exact_at
    if e.refine is not None:
        def refine(idx: np.ndarray, thorough: bool = True) -> None:
            e.refine(idx, thorough)  # type: ignore[misc]  # a callable field, not a method
            out.lo = e.lo * k
            out.hi = out.lo if e.hi is e.lo else e.hi * k
            out.undefined, out.kinks = dict(e.undefined), e.kinks

        out.refine = refine
    return out


def weight_label(ctx: Ctx) -> str:
    return "grad_output" if ctx.case.grad_output is not None else "v = ones"


def each_path(ctx: Ctx, r: CheckResult, make: Callable[[TorchSide], dict[str, Callable[[], Any]]],
              batched: bool = False) -> list[tuple[str, Any]]:
    """Run each torch path that make(side) builds on the check's side. A path torch or the implementation does not
    support is recorded as unsupported, with its reason as data (decided by capability: torchside.support), not a
    failure; any other exception is the check's error. Where only the dtype lacks a kernel the check is skipped.
    batched: the paths run the code under vmap (several grad_outputs, a Jacobian): code that does not run there
    (a backward that leaves torch for numpy) is recorded as not batchable, its unbatched paths having run."""
    from ..torchside.paths import Unsupported, Why
    from ..torchside.support import classify, first_line, foreseen, remember

    out = []
    for label, thunk in make(ctx.torch).items():
        reason = foreseen(ctx.torch, label)
        if reason is None:
            try:
                out.append((label, thunk()))
                continue
            except (NotImplementedError, RuntimeError) as exc:
                reason = classify(ctx.torch, label, exc, make)
                if reason is None and batched:  # the code does not run under vmap; its unbatched paths are verified
                    reason = Unsupported(label, Why.NOT_BATCHABLE, error=first_line(exc))
                if reason is None:
                    raise
                remember(ctx.torch, reason)
        if reason not in r.unsupported:
            r.unsupported.append(reason)
    return out

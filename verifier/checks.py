"""Each check of the runner: one exact quantity from the symbolic side, the same from torch, compared.

Part of the runner (the only place where stages meet): ``run_check`` is called by :mod:`verifier.runner`.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .autodiff import TorchSide
from .case import Case, Tolerance
from .compare import Comparison, Diagnosis, Fact, compare
from .dtypes import HALF, round_to
from .errors import LimitError
from .evaluation import PointReference
from .expr import Call, Index, Name, Node, expected_grad_fn, grad_sources, unparse
from .results import CheckResult
from .rounding import summed_slack
from .values import Exact
from .vectorised import NotVectorisable

UNSUPPORTED = ("not implemented", "not supported", "must implement", "must override the setup_context",
               "does not currently support",
               "functorch transforms", "forward mode ad", "forward-mode ad")
# torch's words for an op without a kernel for the dtype (float16 and bfloat16 on the CPU, mostly linear algebra)
NO_KERNEL = ("not implemented for 'Half'", "not implemented for 'BFloat16'", "Low precision dtypes not supported")
NO_KERNEL_SKIP = "torch has no"
MAX_JACOBIAN = 250_000  # entries of a Jacobian computed by jacrev/jacfwd
MAX_BASIS = 16_000_000  # entries of the identity basis torch.func.jacfwd / jacrev materialise
MAX_HIGHER = 20_000  # entries of an order-k derivative tensor


@dataclass
class Ctx:
    """What a check needs: the case at one point, both sides, and the comparison settings."""

    case: Case
    point: int
    exact: PointReference
    torch: TorchSide
    dtype: str
    tolerance: Tolerance
    strict: bool
    rng: np.random.Generator

    def cmp(self, exact: Exact, got: np.ndarray | None, check: str, label: str, path: str, wrt: str | None = None,
            formula: str | None = None, source: str = "sympy") -> Comparison:
        def run() -> Comparison:
            if self.dtype in HALF:
                _beyond_range(exact, self.dtype)  # again after each refinement
            return compare(exact, got, check=check, label=label, path=path, wrt=wrt, tolerance=self.tolerance,
                           dtype=self.dtype, strict=self.strict)

        if exact.refine is not None:
            self._refine(exact)  # the seeded sample
        if exact.slack is None and (self.dtype in HALF or (self.dtype == "float32" and
                                                            not isinstance(self.exact, PointReference))):
            self._normwise(exact)  # float32 too for large tensors: long reductions round more than the table allows
        c = run()
        if exact.refine is not None and c.mismatched:
            # no verdict rests on a float64 evaluation: recompute the disagreements exactly, in rounds (the worst
            # first) while new ones remain and the time budget lasts
            import time

            from .vectorised import REFINE_SECONDS

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

    def _normwise(self, exact: Exact) -> None:
        """A half-precision (or large float32) quantity from a reference without per-element bounds gets the
        norm-wise bound over the case's operations (in place)."""
        from .expr import walk
        from .rounding import normwise_slack

        case = self.case
        nodes = sum(1 for node in [d.node for d in case.defines] + [case.function] for _ in walk(node))
        elements = sum(i.value.size for i in case.inputs)
        with np.errstate(invalid="ignore"):
            exact.slack = normwise_slack(exact.lo, self.dtype, nodes + int(np.ceil(np.log2(max(elements, 2)))))

    def _unrefined(self, exact: Exact, got: np.ndarray | None) -> int:
        if got is None or np.shape(got) != exact.lo.shape:
            return 0
        return int(np.setdiff1d(self._off(exact, got), np.fromiter(exact.exact_at, dtype=np.int64)).size)

    def _off(self, exact: Exact, got: np.ndarray) -> np.ndarray:
        lo, hi = exact.lo.reshape(-1), exact.hi.reshape(-1)
        g = np.asarray(got, dtype=np.float64).reshape(-1)
        tol = self.tolerance
        slack = 0.0 if exact.slack is None else exact.slack.reshape(-1)
        with np.errstate(invalid="ignore", over="ignore"):
            inside = (g >= np.fmin(lo, hi) - tol.atol - tol.rtol * np.abs(lo) - slack) & \
                (g <= np.fmax(lo, hi) + tol.atol + tol.rtol * np.abs(hi) + slack)
        return np.flatnonzero(~inside & ~(np.isnan(lo) & np.isnan(hi)) | (np.isnan(g) & ~np.isnan(lo)))

    def _refine(self, exact: Exact, got: np.ndarray | None = None) -> bool:
        """A float64-evaluated reference is recomputed exactly wherever torch disagrees with it (the worst first)
        and at a seeded sample, before any verdict rests on it."""
        from .vectorised import REFINE_ELEMENTS, SAMPLE

        lo = exact.lo.reshape(-1)
        if got is None:
            picks = np.random.default_rng([self.case.seed, lo.size]).choice(lo.size, min(SAMPLE, lo.size), replace=False)
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
        exact.refine(picks, got is not None)  # type: ignore[misc,call-arg]
        return True

    def rounded(self, values: np.ndarray) -> np.ndarray:
        return round_to(values, self.dtype)

    def weights(self) -> np.ndarray:
        if self.case.grad_output is not None:
            return self.rounded(self.case.grad_output)
        return np.ones(self.case.output_shape)

    def random(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.rounded(self.rng.standard_normal(shape))

    @property
    def scalar(self) -> bool:
        return self.case.output_shape == ()


def _beyond_range(exact: Exact, dtype: str) -> None:
    """Exact values the dtype cannot hold are undefined there (in place): torch can only give inf."""
    from .dtypes import LARGEST

    largest = LARGEST[dtype]
    with np.errstate(invalid="ignore"):
        beyond = np.flatnonzero((np.abs(exact.lo) > largest) | (np.abs(exact.hi) > largest))
    for k in beyond:
        exact.undefined.setdefault(int(k), f"the exact value {exact.lo.flat[k]:.4g} is beyond {dtype}'s largest finite "
                                           f"value {largest:g}")
        exact.lo.flat[k] = exact.hi.flat[k] = np.nan


def scaled(e: Exact, k: float) -> Exact:
    """k times an exact quantity (refining it refines the original)."""
    lo = e.lo * k
    out = Exact(lo, lo if e.hi is e.lo else e.hi * k, dict(e.undefined), e.kinks, notes=dict(e.notes),
                slack=None if e.slack is None else e.slack * abs(k))
    out.exact_at = e.exact_at
    if e.refine is not None:
        def refine(idx: np.ndarray, thorough: bool = True) -> None:
            e.refine(idx, thorough)  # type: ignore[misc,call-arg]
            out.lo = e.lo * k
            out.hi = out.lo if e.hi is e.lo else e.hi * k
            out.undefined, out.kinks = dict(e.undefined), e.kinks

        out.refine = refine
    return out


def _weight_label(ctx: Ctx) -> str:
    return "grad_output" if ctx.case.grad_output is not None else "v = ones"


def check_value(ctx: Ctx, r: CheckResult) -> None:
    r.comparisons.append(ctx.cmp(ctx.exact.value(), ctx.torch.value(), "value", "value", "forward", formula="value"))


def check_backward(ctx: Ctx, r: CheckResult) -> None:
    case = ctx.case
    if not ctx.scalar:
        err = ctx.torch.backward_error(implicit=True)
        r.facts.append(Fact("backward", "y.backward() on a non-scalar output raises", True, err is not None,
                            err is not None, note=err))
    else:
        grads, others = ctx.torch.backward(case.backward_calls, case.zero_grad)
        path = "y.backward()"
        if case.backward_calls > 1:
            path += f" x{case.backward_calls}" + ("" if case.zero_grad else " without zero_()")
        for name, got in grads.items():
            # y.backward() is v^T J with v = 1: no zero weight meets a pole of another input (jacobian() allows for
            # those, the Jacobian's own rule)
            r.comparisons.append(ctx.cmp(ctx.exact.vjp(np.ones(()), name), got, "backward", f"grad wrt {name}", path, name,
                                         formula="partials"))
        for name, got in others.items():
            r.facts.append(Fact("backward", f"{name}.grad (requires_grad=False)", None, None if got is None else "a tensor",
                                got is None))
    for name, meta in ctx.torch.grad_metadata().items():
        want = (ctx.dtype, ctx.case.shapes[name])
        r.facts.append(Fact("backward", f"{name}.grad dtype and shape", want, meta, meta in (want, None),
                            note="a gradient must have its input's dtype and shape (a broadcast not reduced back?)"))
    w = ctx.weights()
    second = ctx.torch.second_backward(w)
    got_error = second["error"] is not None
    freed = got_error and "second time" in second["error"]
    # the graph's saved tensors are read from its nodes' _saved_* attributes; some torch versions do not list every
    # one there (cross_entropy's in torch 2.11), and torch's own "second time" error proves that something was saved
    expected_error = bool(second["saved"]) or freed
    ok = got_error == expected_error and (not got_error or freed)
    why = "the graph saved tensors, which the first backward freed" if expected_error else \
        "no node of the graph saved a tensor, so nothing was freed"
    r.facts.append(Fact("backward", "second backward without retain_graph raises", expected_error, got_error, ok,
                        note=f"{why}; torch said: {second['error']}" if got_error else why))
    for name, got in second["retained"].items():
        r.comparisons.append(ctx.cmp(scaled(ctx.exact.vjp(w, name), 2), got, "backward", f"grad wrt {name}",
                                     "backward(retain_graph=True) then backward(): 2x", name))


def check_vjp(ctx: Ctx, r: CheckResult) -> None:
    weights = [("v = seeded random", ctx.random(ctx.case.output_shape))]
    if not ctx.scalar:  # a scalar output's v = 1 is the backward check; a random scalar v catches an ignored grad_output
        weights.insert(0, (_weight_label(ctx), ctx.weights()))
    for label, v in weights:
        for path, grads in _each_path(r, ctx.torch.vjp(v)):
            for name, got in grads.items():
                r.comparisons.append(ctx.cmp(ctx.exact.vjp(v, name), got, "vjp", f"v^T J wrt {name} ({label})", path,
                                             name, formula="partials"))


def check_grad(ctx: Ctx, r: CheckResult) -> None:
    w = None if ctx.scalar else ctx.weights()
    grads, touched = ctx.torch.grad(w)
    path = "autograd.grad" if w is None else f"autograd.grad(grad_outputs={_weight_label(ctx)})"
    for name, got in grads.items():
        exact = ctx.exact.vjp(np.ones(()) if w is None else w, name)  # a scalar's implicit grad_output is 1
        r.comparisons.append(ctx.cmp(exact, got, "grad", f"grad wrt {name}", path, name, formula="partials"))
    r.facts.append(Fact("grad", "autograd.grad leaves .grad untouched", False, touched, not touched))


def check_higher(ctx: Ctx, r: CheckResult) -> None:
    n = sum(i.value.size for i in ctx.case.differentiable)
    if not ctx.scalar:
        r.skipped = "higher orders are checked for scalar outputs"
        return
    if ctx.case.order < 2:
        r.skipped = "order is 1"
        return
    for k in range(2, ctx.case.order + 1):
        if n**k > MAX_HIGHER:
            r.skipped = f"the order-{k} derivative has {n**k} entries; the limit is {MAX_HIGHER}"
            return
        exact = ctx.exact.derivative(k)
        for path, got in _each_path(r, {"autograd.grad(create_graph=True)": lambda: ctx.torch.derivatives(k)}):
            r.comparisons.append(ctx.cmp(exact, got, "higher", f"d{k}y (order {k})", path))
        if r.unsupported and not r.comparisons:
            return
        if k == 2:
            for path, got in _each_path(r, ctx.torch.hessians()):
                r.comparisons.append(ctx.cmp(exact, got, "higher", "Hessian", path))
            u = ctx.random((n,))
            rows = {flat // n: why for flat, why in exact.undefined.items()}  # a row with a hole has no H u
            hu = Exact(exact.lo @ u, exact.hi @ u, rows)
            if exact.slack is not None:
                hu.slack = summed_slack(np.abs(u), exact.slack.T, np.abs(np.nan_to_num(exact.lo)).T, ctx.dtype)
            double = "double backward: grad(grad(y, create_graph=True) . u)"
            for path, got in _each_path(r, {double: lambda: ctx.torch.hvp(u)}):
                r.comparisons.append(ctx.cmp(hu, got, "higher", "H u (u = seeded random)", path))


def check_jvp(ctx: Ctx, r: CheckResult) -> None:
    u = {i.name: ctx.random(i.shape) for i in ctx.case.differentiable}
    exact = ctx.exact.jvp(u)
    for path, got in _each_path(r, ctx.torch.jvp(u)):
        r.comparisons.append(ctx.cmp(exact, got, "jvp", "J u (u = seeded random)", path))


def check_jacobian(ctx: Ctx, r: CheckResult) -> None:
    m, n = int(np.prod(ctx.case.output_shape)), sum(i.value.size for i in ctx.case.differentiable)
    if m * n > MAX_JACOBIAN:
        r.skipped = f"the Jacobian has {m * n} entries; the limit is {MAX_JACOBIAN}"
        return
    if max(m, n) ** 2 > MAX_BASIS:  # jacfwd builds an n x n basis of tangents, jacrev an m x m one
        r.skipped = (f"torch.func would build a {max(m, n)} x {max(m, n)} basis ({max(m, n) ** 2} entries); the "
                     f"limit is {MAX_BASIS}")
        return
    for path, grads in _each_path(r, ctx.torch.jacobian()):
        for name, got in grads.items():
            r.comparisons.append(ctx.cmp(ctx.exact.jacobian(name), got, "jacobian", f"J wrt {name}", path, name))


def check_accumulate(ctx: Ctx, r: CheckResult) -> None:
    w = ctx.weights()
    exact = {i.name: ctx.exact.vjp(w, i.name) for i in ctx.case.differentiable}
    for path, calls in ctx.torch.accumulate(ctx.case.accumulate_calls, w).items():
        zeroing = "zero_()" in path and "no zero_()" not in path
        for k, grads in enumerate(calls, start=1):
            for name, got in grads.items():
                target = exact[name] if zeroing else scaled(exact[name], k)
                factor = "" if zeroing else f" = {k} x grad"
                r.comparisons.append(ctx.cmp(target, got, "accumulate", f"{name}.grad after call {k}{factor}", path,
                                             name))


def check_graph(ctx: Ctx, r: CheckResult) -> None:
    case = ctx.case
    w = ctx.weights()
    facts = ctx.torch.graph(w)
    grad_names = {i.name for i in case.differentiable}
    expected: dict[str, dict[str, object]] = {}
    for i in case.inputs:
        expected[i.name] = {"is_leaf": True, "requires_grad": i.requires_grad, "grad_fn": None}
    nodes = [(d.name, d.node) for d in case.defines] + [("output", case.function)]
    source = alias_sources(case)
    reach: dict[str, set[str]] = {i.name: {i.name} for i in case.differentiable}  # node -> leaves its grad reaches
    for name, node in nodes:
        reach[name] = grad_sources(node, reach)
        if isinstance(node, Name):  # an alias is the very same tensor as its source
            expected[name] = dict(expected[node.id])
            continue
        req = bool(reach[name])
        fn = expected_grad_fn(node, {n for n, leaves in reach.items() if leaves})
        expected[name] = {"is_leaf": not req, "requires_grad": req, "grad_fn": fn if req else None}
    reached = reach["output"] if facts["output"]["requires_grad"] else set()
    for name, exp in expected.items():
        got = facts[name]
        for key in ("is_leaf", "requires_grad"):
            r.facts.append(Fact("graph", f"{name}.{key}", exp[key], got[key], exp[key] == got[key]))
        want = exp["grad_fn"]
        if want == "":
            r.facts.append(Fact("graph", f"{name}.grad_fn", "a backward node", got["grad_fn"], got["grad_fn"] is not None))
        else:
            r.facts.append(Fact("graph", f"{name}.grad_fn", want, got["grad_fn"], want == got["grad_fn"]))
        leaf_with_grad = exp["is_leaf"] and exp["requires_grad"] and source[name] in reached
        retained = source[name] in case.retain_grad and exp["requires_grad"] and bool(reached)
        if leaf_with_grad or retained:
            origin = source[name]
            exact = ctx.exact.vjp(w, origin) if origin in grad_names else ctx.exact.node_gradient(origin, w)
            if got["grad"] is None:
                r.facts.append(Fact("graph", f"{name}.grad", "a tensor", None, False))
            else:
                r.comparisons.append(ctx.cmp(exact, got["grad"], "graph", f"{name}.grad" +
                                             (" (retain_grad)" if retained else ""), "y.backward()", None))
        else:
            why = ("not a leaf and retain_grad() not called" if not exp["is_leaf"] else
                   "requires_grad is False" if not exp["requires_grad"] else
                   "no path without detach() leads from it to the output")
            r.facts.append(Fact("graph", f"{name}.grad", None, None if got["grad"] is None else "a tensor",
                                got["grad"] is None, note=why))


def alias_sources(case: Case) -> dict[str, str]:
    """Each input, intermediate and 'output' -> the node whose tensor it is (define a: x and function: a are the very
    tensor x)."""
    source = {i.name: i.name for i in case.inputs}
    for name, node in [(d.name, d.node) for d in case.defines] + [("output", case.function)]:
        source[name] = source[node.id] if isinstance(node, Name) else name
    return source


def _viewed(node: Node, source: dict[str, str]) -> str | None:
    """The input a node is a view of (indexing and transposes of it), else None."""
    if isinstance(node, Name):
        return source.get(node.id)
    if isinstance(node, Index):
        return _viewed(node.base, source)
    if isinstance(node, Call) and node.func == "transpose" and node.args:
        return _viewed(node.args[0], source)
    return None


def check_nograd(ctx: Ctx, r: CheckResult) -> None:
    facts = ctx.torch.nograd()
    grad_inputs = {i.name for i in ctx.case.differentiable}
    source = alias_sources(ctx.case)
    for name, node in [(d.name, d.node) for d in ctx.case.defines] + [("output", ctx.case.function)]:
        base = _viewed(node, source)  # a view made under no_grad keeps its base's requires_grad (torch's view rule)
        if base is not None:
            source[name] = base
    leaves = {n for n, origin in source.items() if origin in grad_inputs}  # require grad even under no_grad
    want = {"no_grad output requires_grad": "output" in leaves,
            "no_grad intermediates requiring grad": sorted(d.name for d in ctx.case.defines if d.name in leaves),
            "detach() requires_grad": False, "detach() shares storage": True, "detach() value equal": True}
    for label, expected in want.items():
        r.facts.append(Fact("nograd", label, expected, facts[label], facts[label] == expected))


def check_expect(ctx: Ctx, r: CheckResult) -> None:
    """Hand-derived values, three ways: hand vs sympy, hand vs autograd (and so sympy vs autograd, elsewhere)."""
    ex = ctx.case.expect
    if not ex:
        r.skipped = "the case gives no expect values"
        return
    if ctx.point > 0:
        r.skipped = "expect values refer to the first point"
        return
    def hand(value: object, shape: tuple[int, ...]) -> Exact:
        if isinstance(value, np.ndarray):
            return Exact(value.astype(np.float64), value.astype(np.float64))
        return ctx.exact.expression(value, shape)  # type: ignore[arg-type]

    def label(value: object) -> str:
        return "hand value" if isinstance(value, np.ndarray) else f"hand formula {unparse(value)}"  # type: ignore[arg-type]

    w = ctx.weights()
    if ex.value is not None:
        mine = hand(ex.value, ctx.case.output_shape)
        r.comparisons.append(ctx.cmp(ctx.exact.value(), mine.lo, "expect", "value", f"{label(ex.value)} vs sympy"))
        r.comparisons.append(ctx.cmp(mine, ctx.torch.value(), "expect", "value", f"{label(ex.value)} vs autograd",
                                     source="hand"))
    torch_grads = ctx.torch.vjp(w)["y.backward(v)"]() if (ex.grad or ex.vjp) else {}
    for section, values in (("grad", ex.grad), ("vjp", ex.vjp)):
        for name, value in values.items():
            mine = hand(value, ctx.case.shapes[name])
            r.comparisons.append(ctx.cmp(ctx.exact.vjp(w, name), mine.lo, "expect", f"{section} wrt {name}",
                                         f"{label(value)} vs sympy", name))
            r.comparisons.append(ctx.cmp(mine, torch_grads[name], "expect", f"{section} wrt {name}",
                                         f"{label(value)} vs autograd", name, source="hand"))
    if ex.accumulate:
        calls = max(len(v) for v in ex.accumulate.values())
        runs = ctx.torch.accumulate(calls, w)
        run = runs["fresh graph each call, no zero_()" if ctx.scalar else "one graph, retain_graph=True, no zero_()"]
        for name, seq in ex.accumulate.items():
            e = ctx.exact.vjp(w, name)
            for k, value in enumerate(seq, start=1):
                r.comparisons.append(ctx.cmp(scaled(e, k), value, "expect", f"{name}.grad after call {k}",
                                             "hand value vs sympy", name))
                r.comparisons.append(ctx.cmp(hand(value, value.shape), run[k - 1][name], "expect", f"{name}.grad after call {k}",
                                             "hand value vs autograd", name, source="hand"))
    n = sum(i.value.size for i in ctx.case.differentiable)
    for order, value in ex.higher.items():
        mine = hand(value, (n,) * order)
        r.comparisons.append(ctx.cmp(ctx.exact.derivative(order), mine.lo, "expect", f"order-{order} derivative",
                                     f"{label(value)} vs sympy"))
        r.comparisons.append(ctx.cmp(mine, ctx.torch.derivatives(order), "expect", f"order-{order} derivative",
                                     f"{label(value)} vs autograd", source="hand"))
    if ex.graph:
        facts = ctx.torch.graph(w)
        for node, wanted in ex.graph.items():
            for key, value in wanted.items():
                got = facts[node][key]
                if key == "grad" and value is not None and got is not None:
                    r.comparisons.append(ctx.cmp(hand(value, got.shape), got, "expect", f"{node}.grad", "hand value vs autograd",
                                                 source="hand"))
                else:
                    shown = got if key != "grad" else (None if got is None else "a tensor")
                    r.facts.append(Fact("expect", f"{node}.{key}", value, shown, value == shown))


def check_train(ctx: Ctx, r: CheckResult) -> None:
    """Per step, the gradient each torch loop used against the exact gradient at that loop's own parameters; and
    the loss trajectory of torch.optim against the loop driven by exact gradients."""
    from .lowering import resolve_impl
    from .training import exact_loop

    spec = ctx.case.train
    if spec is None:
        r.skipped = "the case has no train section"
        return
    base = {n: np.asarray(v) for n, v in ctx.exact.point.items()}
    cache: dict[bytes, tuple[float, dict[str, np.ndarray]]] = {}
    slacks: dict[bytes, dict[str, np.ndarray]] = {}  # half precision: each step's rounding bound

    def key_of(params: dict[str, np.ndarray]) -> bytes:
        return b"".join(np.asarray(params[n], dtype=np.float64).tobytes() for n in spec.params)

    def loss_and_grad(params: dict[str, np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
        key = key_of(params)
        if key not in cache:
            at = ctx.exact.ref.at({**base, **params})
            at.rounding = getattr(ctx.exact, "rounding", None)
            grads = {n: at.jacobian(n) for n in spec.params}
            cache[key] = (float(at.value().lo), {n: g.lo.reshape(ctx.case.shapes[n]) for n, g in grads.items()})
            if all(g.slack is not None for g in grads.values()):
                slacks[key] = {n: g.slack.reshape(ctx.case.shapes[n]) for n, g in grads.items()}  # type: ignore[union-attr]
        return cache[key]

    label = {"optim": f"autograd + torch.optim.{'SGD' if spec.optimizer == 'sgd' else 'Adam'}",
             "manual": "autograd + manual p.data.sub_(lr * p.grad), p.grad.zero_()",
             "step": f"user step {getattr(spec.step, '__name__', spec.step)}"}
    modes = ["optim"] + (["manual"] if spec.plain_sgd else []) + (["step"] if spec.step else [])
    step_fn = spec.step if callable(spec.step) else (
        resolve_impl(spec.step, search=_search_dirs(ctx.case)) if spec.step else None)
    for mode in modes:
        records = ctx.torch.train(spec, mode, step_fn)
        for name in spec.params:
            got = np.stack([rec["grads"][name] for rec in records])
            exact = np.stack([loss_and_grad(rec["params"])[1][name] for rec in records])
            keys = [key_of(rec["params"]) for rec in records]
            slack = np.stack([slacks[k][name] for k in keys]) if all(k in slacks for k in keys) else None
            c = ctx.cmp(Exact(exact, exact.copy(), slack=slack), got, "train", f"gradient used for {name} at each step",
                        label[mode], name)
            if not c.passed:
                bad = np.abs(got - exact) > ctx.tolerance.atol + ctx.tolerance.rtol * np.abs(exact) + \
                    (0.0 if slack is None else slack)
                first = int(np.argwhere(bad.reshape(len(records), -1).any(axis=1))[0][0]) + 1
                c.label += f" (first wrong at step {first} of {len(records)})"
                cumulative = np.cumsum(exact, axis=0)
                close = 1e-6 if ctx.dtype not in HALF else 0.05
                if len(records) > 1 and np.allclose(got, cumulative, rtol=close, atol=1e-12 * np.abs(exact).max()):
                    c.diagnosis = Diagnosis("missing_zero_grad", count=first)
            r.comparisons.append(c)
    if ctx.dtype in HALF:  # the trajectories: in float32 and float64 only
        return  # in half precision the rounding of every step compounds along the path; no bound follows it
    trajectory, losses = exact_loop(spec, {n: base[n] for n in spec.params}, loss_and_grad)
    records = ctx.torch.train(spec, "optim")
    n = min(len(records), len(losses))
    drift = Tolerance(ctx.tolerance.rtol * 1e3, ctx.tolerance.atol * 1e3)  # rounding differences compound over steps
    got = np.array([rec["loss"] for rec in records[:n]])
    r.comparisons.append(compare(Exact(np.array(losses[:n]), np.array(losses[:n])), got, check="train",
                                 label=f"loss at each of {n} steps (exact-gradient loop vs torch)", path=label["optim"],
                                 wrt=None, tolerance=drift, dtype=ctx.dtype))
    for name in spec.params:
        exact = np.stack([t[name] for t in trajectory[:n]])
        got = np.stack([rec["params"][name] for rec in records[:n]])
        r.comparisons.append(compare(Exact(exact, exact.copy()), got, check="train",
                                     label=f"{name} at each of {n} steps (exact-gradient loop vs torch)",
                                     path=label["optim"], wrt=name, tolerance=drift, dtype=ctx.dtype))


def _search_dirs(case: Case) -> tuple[str, ...]:
    import os
    from pathlib import Path

    dirs = [os.getcwd()]
    if case.file and Path(case.file).exists():
        dirs.insert(0, str(Path(case.file).resolve().parent))
    return tuple(dirs)


def _each_path(r: CheckResult, paths: dict[str, Callable[[], Any]]) -> list[tuple[str, Any]]:
    """Run each torch path; one that torch or the implementation does not support in that mode is 'unsupported',
    not a failure (e.g. forward AD through a custom Function without jvp)."""
    out = []
    for label, thunk in paths.items():
        try:
            out.append((label, thunk()))
        except (NotImplementedError, RuntimeError) as exc:
            text = str(exc)
            if any(m in text for m in NO_KERNEL):
                raise  # no kernel for the dtype at all: the check is skipped (run_check), not one path unsupported
            if isinstance(exc, NotImplementedError) or any(m in text.lower() for m in UNSUPPORTED):
                note = f"{label}: {text.splitlines()[0][:160]}"
                if note not in r.unsupported:
                    r.unsupported.append(note)
                continue
            raise
    return out


COMPILED = ("value", "vjp", "grad")  # the checks check_compile runs as they are on the compiled function


def check_compile(ctx: Ctx, r: CheckResult) -> None:
    """torch.compile(fn) against the exact derivative, and against eager torch (compilation must not change the
    gradient). A failure to compile or to run is a failing fact with torch's message."""
    from dataclasses import replace as _replace

    from .autodiff import TorchSide
    from .lowering import Compiled

    case = ctx.case
    eager = ctx.torch
    try:
        program = Compiled(eager.program, case.compile or "auto")
        side = TorchSide(case, eager.point, ctx.dtype, program, case.device)
        side.forward()  # compiles (the case's time limit covers it)
    except Exception as exc:  # noqa: BLE001 - torch.compile's failure is this check's verdict
        text = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
        r.facts.append(Fact("compile", f"torch.compile(backend={case.compile}) compiles and runs the function", True,
                            False, False, note=text))
        return
    label = f"torch.compile[{program.backend}]"
    breaks = program.graph_breaks()
    if breaks:
        reason = next(iter(breaks)).splitlines()[0][:200]
        r.unsupported.append(f"{label}: {sum(breaks.values())} graph break(s), the parts between ran eagerly ({reason})")
    sub = _replace(ctx, torch=side)
    grads: dict[str, Any] = {}
    if ctx.scalar and case.differentiable and eager.output_requires_grad():
        # y.backward() once: a compiled backward donates its buffers, so retain_graph=True is not for it
        grads, _ = side.backward(1, True)
        for name, got in grads.items():
            r.comparisons.append(ctx.cmp(ctx.exact.vjp(np.ones(()), name), got, "compile", f"grad wrt {name}",
                                         f"{label} y.backward()", name, formula="partials"))
    for name in COMPILED:
        part = CheckResult(check=name, point=ctx.point)
        if name in NEEDS_GRAD and (not case.differentiable or not eager.output_requires_grad()):
            continue
        CHECKS[name](sub, part)
        for c in part.comparisons:
            c.check, c.path = "compile", f"{label} {c.path}"
            r.comparisons.append(c)
        for f in part.facts:
            f.check, f.label = "compile", f"{label} {f.label}"
            r.facts.append(f)
        r.unsupported.extend(f"{label} {u}" for u in part.unsupported)
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


CHECKS: dict[str, Callable[[Ctx, CheckResult], None]] = {
    "value": check_value, "backward": check_backward, "vjp": check_vjp, "grad": check_grad, "higher": check_higher,
    "jvp": check_jvp, "jacobian": check_jacobian, "accumulate": check_accumulate, "graph": check_graph,
    "nograd": check_nograd, "expect": check_expect, "train": check_train, "compile": check_compile,
    "wirtinger": lambda ctx, r: check_wirtinger(ctx, r),
}
NEEDS_GRAD = {"backward", "vjp", "grad", "higher", "jvp", "jacobian", "accumulate", "train", "wirtinger"}
BACKWARD_BASED = {"backward", "vjp", "grad", "higher", "accumulate", "wirtinger"}


def _check_constant_output(ctx: Ctx, r: CheckResult) -> None:
    """An output that requires no grad: backward must raise, and the exact derivative must be zero."""
    err = ctx.torch.backward_error(implicit=False)
    r.facts.append(Fact("backward", "y.backward() raises: the output does not require grad", True,
                        err is not None and "does not require grad" in err, err is not None and
                        "does not require grad" in err, note=err))
    w = ctx.weights()
    for i in ctx.case.differentiable:
        zero = np.zeros(i.shape)
        r.comparisons.append(ctx.cmp(ctx.exact.vjp(w, i.name), zero, "backward", f"grad wrt {i.name}",
                                     "exact derivative vs 0 (nothing reaches the input)", i.name))


def run_check(name: str, ctx: Ctx) -> CheckResult:
    """One check; an exception becomes an 'error' verdict with its traceback, never a crash of the run."""
    r = CheckResult(check=name, point=ctx.point)
    if name in NEEDS_GRAD and not ctx.case.differentiable:
        r.skipped = "no input requires grad"
        return r
    try:
        if name in BACKWARD_BASED and not ctx.torch.output_requires_grad():
            if name == "backward":
                _check_constant_output(ctx, r)
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


from .wirtinger import check_wirtinger  # noqa: E402 - it uses this module's Ctx and paths

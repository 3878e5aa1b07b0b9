"""The case's definition lowered to torch operations. Never imports sympy: the op table gives each torch meaning."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from typing import Any, Callable, Mapping

import torch

from ..case.model import Case
from ..language.nodes import Bin, Call, Cmp, Const, Index, Name, Neg, Node, Num
from ..language.ops import OPS
from ..language.shapes import kept_shape
from .devices import DTYPES, compile_backend

COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "<": torch.lt, "<=": torch.le, ">": torch.gt, ">=": torch.ge, "==": torch.eq, "!=": torch.ne,
}


class Program:
    """A callable torch program for one case: inputs by name -> (output, intermediates by name)."""

    def __init__(self, case: Case, dtype: str | None = None, device: str | torch.device | None = None) -> None:
        self.case = case
        self.dtype = DTYPES[dtype or case.dtype]
        self.device = torch.device(device or case.device)
        self.no_derivative: set[str] = set()  # functions torch computes without a derivative (torch.special.bessel_j0)

    def __call__(
        self, env: Mapping[str, torch.Tensor], *, retain: tuple[str, ...] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        scope, pairs = self.complex_view(env)
        nodes: dict[str, torch.Tensor] = {}
        for d in self.case.defines:
            value = self._tensor(self.value_of(d.node, scope))
            if d.name in retain and value.requires_grad:
                value.retain_grad()
            scope[d.name] = nodes[d.name] = value
        return self.pairs_view(self._tensor(self.value_of(self.case.function, scope)), pairs), nodes

    def complex_view(self, env: Mapping[str, torch.Tensor]) -> tuple[dict[str, Any], bool]:
        """Complex inputs given as real pairs (..., 2) as the complex tensors torch differentiates through (a view:
        the pairs' gradient is torch's complex gradient); True when any was converted."""
        scope: dict[str, Any] = dict(env)
        pairs = [n for n in self.case.complex_inputs if n in scope and not scope[n].is_complex()]
        for name in pairs:
            scope[name] = torch.view_as_complex(scope[name])
        return scope, bool(pairs)

    def pairs_view(self, out: torch.Tensor, pairs: bool) -> torch.Tensor:
        """A complex output as real pairs again, when the inputs came as pairs."""
        if not (pairs and self.case.complex_output):
            return out
        return torch.view_as_real(out.resolve_conj() if out.is_complex() else torch.complex(out, torch.zeros_like(out)))

    def function(self, names: tuple[str, ...], constants: Mapping[str, torch.Tensor]) -> Callable[..., torch.Tensor]:
        """A plain function of the named inputs (positional), the others fixed: the form torch.func wants."""

        def f(*tensors: torch.Tensor) -> torch.Tensor:
            env = dict(constants)
            env.update(zip(names, tensors))
            return self(env)[0]

        return f

    def _tensor(self, value: Any) -> torch.Tensor:
        return value if isinstance(value, torch.Tensor) else torch.tensor(value, dtype=self.dtype, device=self.device)

    def value_of(self, node: Node, env: Mapping[str, Any]) -> Any:
        """The torch value of a node; constants stay Python numbers where torch takes them as scalars."""
        if isinstance(node, Num):
            frac = node.value
            # an integer torch can take as a scalar; beyond 2**53 (e.g. 1e20) a float, as torch would read it
            return int(frac) if frac.denominator == 1 and abs(frac) <= 2**53 else float(frac)
        if isinstance(node, Const):
            return {"pi": math.pi, "E": math.e, "inf": math.inf}[node.name]
        if isinstance(node, Name):
            return env[node.id]
        if isinstance(node, Neg):
            return -self._tensor(self.value_of(node.operand, env))
        if isinstance(node, Bin):
            a, b = self.value_of(node.left, env), self.value_of(node.right, env)
            if node.op == "**":
                return self._tensor(a) ** b
            if node.op == "@":
                return torch.matmul(a, b)
            if not isinstance(a, torch.Tensor) and (node.op in ("-", "/") or not isinstance(b, torch.Tensor)):
                a = self._tensor(a)  # 1 - x as SubBackward0, 2 / x as DivBackward0 (not rsub / reciprocal)
            if node.op == "+":
                return a + b
            if node.op == "-":
                return a - b
            if node.op == "*":
                return a * b
            return a / b
        if isinstance(node, Cmp):
            return COMPARISONS[node.op](self._tensor(self.value_of(node.left, env)), self._tensor(self.value_of(node.right, env)))
        if isinstance(node, Index):
            return self._tensor(self.value_of(node.base, env))[node.index]
        assert isinstance(node, Call)
        op = OPS[node.func]
        args = [self._tensor(self.value_of(a, env)) for a in node.args]
        kw = {k: float(v) if isinstance(v, Fraction) else v for k, v in node.keywords().items()}
        keep = kw.pop("keepdim", False)
        out = op.torch(torch, *args, **kw)
        if node.func != "detach" and torch.is_grad_enabled() and isinstance(out, torch.Tensor) and \
                out.is_floating_point() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args) and \
                (not out.requires_grad or type(out.grad_fn).__name__ == "NotImplemented"):
            self.no_derivative.add(node.func)  # by the graph torch built: no backward node, or its NotImplemented one
        return out.reshape(kept_shape(tuple(args[0].shape), kw.get("axis"))) if keep else out


class Compiled(Program):
    """torch.compile of another program (the lowered definition or the user's implementation), as one function of
    the inputs. Intermediates are not exposed: the compiled graph has none to retain."""

    def __init__(self, inner: Program, backend: str) -> None:
        super().__init__(inner.case, None, inner.device)
        self.dtype = inner.dtype
        self.inner = inner
        self.backend = compile_backend(backend)
        self.names = tuple(i.name for i in inner.case.inputs)
        torch._dynamo.reset()  # a fresh cache: one case's guards never send another case's calls back to eager
        torch._dynamo.utils.counters.clear()  # graph breaks are counted per case

        def fn(*tensors: torch.Tensor) -> torch.Tensor:
            return inner(dict(zip(self.names, tensors)))[0]

        self.fn = torch.compile(fn, backend=self.backend, dynamic=False, fullgraph=False)

    def __call__(
        self, env: Mapping[str, torch.Tensor], *, retain: tuple[str, ...] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.fn(*(env[n] for n in self.names)), {}

    def graph_breaks(self) -> dict[str, int]:
        """Why dynamo split the function (those parts ran eagerly), with counts."""
        return dict(torch._dynamo.utils.counters["graph_break"])


class Wrapped(Program):
    """Another program run inside what users' code wraps a computation in, for the probes of what torch supports
    around it (torchside.support): "hooks", saved-tensor hooks that keep each tensor as it is (what
    torch.utils.checkpoint(use_reentrant=False) and torch.autograd.graph.save_on_cpu install); "reentrant",
    torch.utils.checkpoint(use_reentrant=True); "mutates", an in-place update of a tensor the program holds (as a
    module's buffer is: BatchNorm's running statistics). Intermediates are not exposed."""

    HOW = ("hooks", "reentrant", "mutates")

    def __init__(self, inner: Program, how: str) -> None:
        super().__init__(inner.case, None, inner.device)
        if how not in self.HOW:
            raise ValueError(f"no such wrapping: {how!r}")
        self.dtype, self.inner, self.how = inner.dtype, inner, how
        self.held = torch.zeros((), dtype=self.dtype, device=self.device)  # "mutates": the tensor it updates

    def __call__(
        self, env: Mapping[str, torch.Tensor], *, retain: tuple[str, ...] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        names = tuple(env)

        def fn(*tensors: torch.Tensor) -> torch.Tensor:
            return self.inner(dict(zip(names, tensors)))[0]

        if self.how == "mutates":
            self.held.add_(1)
            return fn(*env.values()), {}
        if self.how == "hooks":
            with torch.autograd.graph.saved_tensors_hooks(_kept, _kept):
                return fn(*env.values()), {}
        from torch.utils.checkpoint import checkpoint

        with warnings.catch_warnings():  # its note that no input requires grad (under torch.func): not the user's
            warnings.simplefilter("ignore")
            return checkpoint(fn, *env.values(), use_reentrant=True), {}


def _kept(t: torch.Tensor) -> torch.Tensor:
    return t

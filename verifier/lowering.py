"""The case's definition lowered to torch operations. Never imports sympy: the op table gives each torch meaning."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Callable, Mapping

import torch

from .case import Case
from .expr import Bin, Call, Cmp, Const, Index, Name, Neg, Node, Num
from .ops import OPS

DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "<": torch.lt, "<=": torch.le, ">": torch.gt, ">=": torch.ge, "==": torch.eq, "!=": torch.ne,
}


class Program:
    """A callable torch program for one case: inputs by name -> (output, intermediates by name)."""

    def __init__(self, case: Case, dtype: str | None = None, device: str | torch.device | None = None) -> None:
        self.case = case
        self.dtype = DTYPES[dtype or case.dtype]
        self.device = torch.device(device or case.device)

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
            frac = Fraction(node.text)
            # an integer torch can take as a scalar; beyond 2**53 (e.g. 1e20) a float, as torch would read it
            return int(frac) if frac.denominator == 1 and abs(frac) <= 2**53 else float(frac)
        if isinstance(node, Const):
            return math.pi if node.name == "pi" else math.e
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
            return _CMP[node.op](self._tensor(self.value_of(node.left, env)), self._tensor(self.value_of(node.right, env)))
        if isinstance(node, Index):
            return self._tensor(self.value_of(node.base, env))[node.index]
        assert isinstance(node, Call)
        op = OPS[node.func]
        args = [self._tensor(self.value_of(a, env)) for a in node.args]
        kw = {} if node.axis is None else {"axis": node.axis}
        return op.torch(torch, *args, **kw)


class Implementation(Program):
    """A user's callable in place of the lowered definition: what is verified when a case names an impl.

    With ``params`` (module parameter name -> input name) the module is called through torch.func.functional_call
    with those inputs as its parameters, and with the other inputs, in order, as its arguments.
    """

    def __init__(self, case: Case, impl: Callable[..., Any], dtype: str | None = None,
                 params: Mapping[str, str] | None = None, device: str | torch.device | None = None) -> None:
        super().__init__(case, dtype, device)
        if isinstance(impl, torch.nn.Module):
            impl = impl.to(self.device)  # a module's parameters and buffers live where the case runs
        self.impl = impl
        self.params = dict(params or {})
        taken = set(self.params.values())
        self.names = tuple(i.name for i in case.inputs if i.name not in taken)
        if self.params:
            own = dict(impl.named_parameters()) if isinstance(impl, torch.nn.Module) else {}
            missing = [p for p in self.params if p not in own]
            if missing:
                raise TypeError(f"module_params names {missing}, which the module does not have; its parameters: "
                                f"{sorted(own)}")

    def __call__(
        self, env: Mapping[str, torch.Tensor], *, retain: tuple[str, ...] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        scope, pairs = self.complex_view(env)
        args = tuple(scope[n] for n in self.names)
        if self.params:
            weights = {p: scope[n] for p, n in self.params.items()}
            out = torch.func.functional_call(self.impl, weights, args)
        else:
            out = self.impl(*args)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the implementation returned {type(out).__name__}, not a tensor")
        return self.pairs_view(out, pairs), {}


def resolve_impl(target: str, args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None,
                 search: tuple[str, ...] = ()) -> Callable[..., Any]:
    """Import ``package.module:attr`` (attr may be dotted) and make it a callable of tensors.

    A torch.autograd.Function class gives its ``apply``; an nn.Module class is instantiated with args and kwargs;
    anything else callable is used as it is. ``search`` adds directories to sys.path while importing.
    """
    import importlib
    import sys

    module_name, _, attr = target.partition(":")
    added = [d for d in search if d not in sys.path]
    sys.path[:0] = added
    try:
        obj: Any = importlib.import_module(module_name)
    finally:
        for d in added:
            sys.path.remove(d)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, type) and issubclass(obj, torch.autograd.Function):
        return obj.apply
    if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
        return obj(*args, **dict(kwargs or {}))
    if isinstance(obj, type):
        raise TypeError(f"{target} is a class that is neither a torch.autograd.Function nor an nn.Module")
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj


def compile_backend(name: str) -> str:
    """The torch.compile backend to use: 'auto' is inductor where a C++ compiler is found (inductor's CPU code needs
    one), else aot_eager (AOTAutograd's traced forward and backward graphs, run eagerly)."""
    if name != "auto":
        return name
    import os
    import shutil

    compilers = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
    return "inductor" if any(c and shutil.which(c) for c in compilers) else "aot_eager"


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

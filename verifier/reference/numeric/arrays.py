"""Evaluate sympy expressions over numpy arrays in float64 (scipy.special for the special functions) by walking the
expression DAG, each shared sub-expression once. No code is generated or executed (unlike lambdify): the
vectorised twin of :mod:`verifier.mpeval`.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Callable

import numpy as np
import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair

from .dag import DagEvaluator
from .table import RELATIONS, TABLE

FUNCTIONS: dict[type, Callable[..., Any]] = {f: row.np for f, row in TABLE.items()}
_RELATIONS: dict[type, Callable[[Any, Any], Any]] = {r: fns[1] for r, fns in RELATIONS.items()}


class Unsupported(TypeError):
    """An expression node with no vectorised evaluation."""


class Backend:
    """The array library an evaluator computes with: numpy/scipy (independent of torch), or torch's math kernels
    (no autograd; SIMD and multithreaded, several times faster on transcendental functions)."""

    name = "numpy"
    functions = FUNCTIONS
    relations = _RELATIONS

    def constant(self, v: float) -> Any:
        return np.float64(v)

    def where(self, c: Any, a: Any, b: Any) -> Any:
        return np.where(c, a, b)

    def maximum(self, a: Any, b: Any) -> Any:
        return np.maximum(a, b)

    def minimum(self, a: Any, b: Any) -> Any:
        return np.minimum(a, b)

    def sqrt(self, a: Any) -> Any:
        return np.sqrt(a)

    def power(self, a: Any, b: Any) -> Any:
        return np.power(a, b)

    def logical(self, kind: str, args: list[Any]) -> Any:
        if kind == "not":
            return np.logical_not(args[0])
        fn = np.logical_and if kind == "and" else np.logical_or
        return fn.reduce(np.broadcast_arrays(*args))

    def leaf(self, a: np.ndarray) -> Any:
        return a

    def numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a, dtype=np.float64) if not isinstance(a, np.ndarray) or a.dtype != np.float64 else a


class TorchBackend(Backend):
    name = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = T = torch

        def scipy_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
            return lambda *a: T.from_numpy(np.asarray(fn(*(self.numpy(v) for v in a)), dtype=np.float64))

        self.functions = {f: row.torch(T) if row.torch is not None else scipy_fn(row.np) for f, row in TABLE.items()}
        self.relations = {r: getattr(T, fns[2]) for r, fns in RELATIONS.items()}

    def _t(self, a: Any) -> Any:
        T = self.torch
        return a if isinstance(a, T.Tensor) else T.as_tensor(a, dtype=T.bool if isinstance(a, (bool, np.bool_))
                                                             else T.float64)

    def constant(self, v: float) -> Any:
        return self.torch.tensor(v, dtype=self.torch.float64)

    def where(self, c: Any, a: Any, b: Any) -> Any:
        return self.torch.where(self._t(c), self._t(a), self._t(b))

    def maximum(self, a: Any, b: Any) -> Any:
        return self.torch.maximum(self._t(a), self._t(b))

    def minimum(self, a: Any, b: Any) -> Any:
        return self.torch.minimum(self._t(a), self._t(b))

    def sqrt(self, a: Any) -> Any:
        return self.torch.sqrt(self._t(a))

    def power(self, a: Any, b: Any) -> Any:
        return self.torch.pow(self._t(a), self._t(b))

    def logical(self, kind: str, args: list[Any]) -> Any:
        T = self.torch
        if kind == "not":
            return T.logical_not(self._t(args[0]))
        out = self._t(args[0])
        for a in args[1:]:
            out = (T.logical_and if kind == "and" else T.logical_or)(out, self._t(a))
        return out

    def leaf(self, a: np.ndarray) -> Any:
        a = np.asarray(a, dtype=np.float64)
        return self.torch.from_numpy(a if a.flags.c_contiguous and a.flags.writeable else np.array(a))

    def numpy(self, a: Any) -> np.ndarray:
        if isinstance(a, self.torch.Tensor):
            return a.to(self.torch.float64).numpy()
        return np.asarray(a, dtype=np.float64)


NUMPY = Backend()


def backend(name: str) -> Backend:
    return TorchBackend() if name == "torch" else NUMPY


class Evaluator(DagEvaluator):
    """float64 values of sympy expressions over arrays; the memo is shared by every expression evaluated with it."""

    def __init__(self, values: dict[sp.Symbol, np.ndarray], lib: Backend = NUMPY) -> None:
        self.lib = lib
        self.memo: dict[sp.Basic, Any] = {s: lib.leaf(v) for s, v in values.items()}

    def set(self, symbol: sp.Symbol, value: np.ndarray) -> None:
        self.memo[symbol] = self.lib.leaf(value)

    def __call__(self, expr: sp.Basic) -> Any:
        with np.errstate(all="ignore"):
            return super().__call__(expr)

    def _apply(self, node: sp.Basic) -> Any:
        lib = self.lib
        if node.is_Number or node in (sp.pi, sp.E):
            if node in (sp.oo, sp.zoo):
                return lib.constant(np.inf)
            if node is sp.S.NegativeInfinity:
                return lib.constant(-np.inf)
            if node is sp.nan:
                return lib.constant(np.nan)
            return lib.constant(float(node))
        if node is sp.true or node is sp.false:
            return np.bool_(bool(node))
        if isinstance(node, sp.Symbol):
            raise Unsupported(f"no value for the symbol {node}")
        args = [self.memo[a] for a in node.args]
        if isinstance(node, sp.Add):
            return functools.reduce(operator.add, args)
        if isinstance(node, sp.Mul):
            return functools.reduce(operator.mul, args)
        if isinstance(node, sp.Pow):
            base, exp = args
            if node.args[1] == sp.S.Half:
                return lib.sqrt(base)
            if node.args[1] == -sp.S.Half:
                return 1 / lib.sqrt(base)
            if node.args[1].is_Integer and int(node.args[1]) in (-2, -1, 2, 3):
                k = int(node.args[1])
                return {2: base * base, 3: base * base * base, -1: 1 / base, -2: 1 / (base * base)}[k]
            return lib.power(base, exp)
        if isinstance(node, sp.Piecewise):
            out = lib.constant(np.nan)  # no branch applies
            for value, cond in reversed(args):
                out = lib.where(cond, value, out)
            return out
        if isinstance(node, ExprCondPair):
            return tuple(args)
        if isinstance(node, (sp.Max, sp.Min)):
            fn = lib.maximum if isinstance(node, sp.Max) else lib.minimum
            out = args[0]
            for a in args[1:]:
                out = fn(out, a)
            return out
        rel = lib.relations.get(type(node))
        if rel is not None:
            return rel(*args) if lib is NUMPY else rel(*(lib._t(a) for a in args))  # type: ignore[attr-defined]  # only TorchBackend (lib is not NUMPY) has _t
        if isinstance(node, (sp.And, sp.Or, sp.Not)):
            return lib.logical({sp.And: "and", sp.Or: "or"}.get(type(node), "not"), args)
        function = lib.functions.get(type(node))
        if function is None:
            raise Unsupported(f"no {lib.name} evaluation for {type(node).__name__}")
        return function(*args)


CHUNK = 1 << 16  # elements below which an expression is evaluated in one piece


class _Slice(Evaluator):
    """The evaluator of one slab (along the first axis) of a broadcast shape; leaves are sliced on first use."""

    def __init__(self, parent: Evaluator, shape: tuple[int, ...], rows: slice) -> None:
        super().__init__({})
        self.parent, self.shape, self.rows = parent, shape, rows

    def _apply(self, node: sp.Basic) -> Any:
        if isinstance(node, sp.Symbol):
            a = np.asarray(self.parent.memo[node])
            a = a.reshape((1,) * (len(self.shape) - a.ndim) + a.shape)
            return a[self.rows] if a.shape[0] != 1 else a
        return super()._apply(node)


class Parallel:
    """Values of expressions broadcast to a shape, computed in slabs on a thread pool (numpy's loops release the
    GIL, so the slabs run on every core); each result is kept for the next request."""

    def __init__(self, base: Evaluator, threads: int) -> None:
        self.base = base
        self.threads = max(1, threads)
        self.slabs: dict[tuple[int, ...], list[_Slice]] = {}
        self.done: dict[tuple[sp.Basic, tuple[int, ...]], np.ndarray] = {}

    def __call__(self, expr: sp.Basic, shape: tuple[int, ...]) -> np.ndarray:
        key = (expr, shape)
        if key in self.done:
            return self.done[key]
        size = int(np.prod(shape)) if shape else 1
        if self.threads == 1 or size < CHUNK or shape[0] < self.threads or self.base.lib is not NUMPY:
            out = np.broadcast_to(self.base.lib.numpy(self.base(expr)), shape)
        else:
            if shape not in self.slabs:
                edges = np.linspace(0, shape[0], self.threads + 1).astype(int)
                self.slabs[shape] = [_Slice(self.base, shape, slice(a, b)) for a, b in zip(edges[:-1], edges[1:])]
            slabs = self.slabs[shape]
            parts = list(_pool(self.threads).map(
                lambda s: np.broadcast_to(s(expr), (s.rows.stop - s.rows.start,) + shape[1:]), slabs))
            out = np.concatenate(parts)
        self.done[key] = out
        return out


_POOL: Any = None


def _pool(threads: int) -> Any:
    global _POOL
    if _POOL is None or _POOL._max_workers != threads:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gradverify-eval")
    return _POOL

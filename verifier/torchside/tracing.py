"""A user's forward traced to the case language: the aten operations it performs, recorded under a
TorchDispatchMode at the point being checked, translated op by op (:mod:`verifier.torchside.aten`) into the nodes
the case language parses to, so the exact reference of users' code is derived like any case's.

Why a dispatch mode (not make_fx or torch.export): it sees the operations where autograd has already run, so a
custom ``autograd.Function``'s ``forward`` is traced as written (not its backward, and old-style Functions with
``ctx`` work, which torch.func-based tracers refuse); it runs on the real tensors at the point, so Python control
flow takes the branch it takes there (the trace is per point, compared between points); and it tells, per
operation, what fx graphs flatten away: whether grad mode was on (``detach`` and ``no_grad`` blocks are stop-gradients
in plain code, not inside a Function's forward), and which tensors alias which (views, in-place writes).

Memory, not operations, carries values between ops: every storage the forward touches is an array of element
provenance (which traced value, which element of it). A view reads its base's storage through its own strides and
offset; an in-place op or a write through a view updates the elements it writes. Views, slices, ``out[...] = v``,
``x.add_(1)`` and ``copy_`` are then right without a rule per view op.
"""

from __future__ import annotations

import math
import os
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from ..language.nodes import Call, Cmp, Const, Neg, Node, Num

TRUE = Cmp("==", Num("0"), Num("0"))
FALSE = Cmp("!=", Num("0"), Num("0"))


@dataclass
class Failure:
    """Why a traced value has no translation; an error only if the output depends on it."""

    message: str


@dataclass
class Value:
    node: Node | Failure
    shape: tuple[int, ...]
    live: bool  # depends on a differentiable input
    no_grad: bool = False  # computed with grad mode off (a no_grad block, or inside a Function's forward)


@dataclass
class Storage:
    src: np.ndarray  # per element: the value id that wrote it (-1: never written by the forward)
    pos: np.ndarray  # per element: which element of that value
    itemsize: int


@dataclass(frozen=True)
class Trace:
    """The traced forward at one point: its node, the output's shape, and where the forward read tensor values as
    Python numbers (control flow that may take another branch at another point)."""

    node: Node
    shape: tuple[int, ...]
    data_dependent: tuple[str, ...] = ()
    no_grad_cuts: tuple[str, ...] = ()  # where plain code reads a no_grad block's result (forward mode ignores it)


_TORCH_DIR = os.path.dirname(torch.__file__)
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_frame() -> str:
    """Where the user's code called the operation being recorded: its innermost frame outside torch and gradverify."""
    for frame in reversed(traceback.extract_stack()):
        path = os.path.abspath(frame.filename)
        if path.startswith((_TORCH_DIR, _OWN_DIR)) or frame.filename.startswith("<frozen"):
            continue
        code = f": {frame.line.strip()}" if frame.line else ""
        return f"{frame.filename}:{frame.lineno} in {frame.name}{code}"
    return "the forward"


def number(v: Any) -> Node | Failure:
    """A Python or numpy number as a node: exact where a short decimal is the float exactly (0.5, 2, 1e-05), else the
    binary float itself (0.1 as the double nearest it)."""
    if isinstance(v, (bool, np.bool_)):
        return TRUE if v else FALSE
    if isinstance(v, (int, np.integer)):
        return Num(str(int(v)))
    v = float(v)
    if math.isnan(v):
        return Failure("a NaN constant")
    if math.isinf(v):
        return Const("inf") if v > 0 else Neg(Const("inf"))
    text = repr(v)
    return Num(text) if Fraction(text) == Fraction(v) else Num(text, binary=True)


def elements(sources: Sequence[Node], src: np.ndarray, pos: np.ndarray, shape: tuple[int, ...]) -> Node:
    """The node whose element k is sources[src[k]].flat[pos[k]], shaped ``shape``; an elements node among the
    sources is looked through (a view of a view is one index map), a source used whole in order is itself."""
    flat_src: list[int] = []
    flat_pos: list[int] = []
    chosen: list[Node] = []
    slot: dict[int, int] = {}

    def source(node: Node) -> int:
        if id(node) not in slot:
            slot[id(node)] = len(chosen)
            chosen.append(node)
        return slot[id(node)]

    maps = {}
    for k, node in enumerate(sources):
        if isinstance(node, Call) and node.func == "elements":
            kw = dict(node.params)
            inner = np.asarray(kw["index"], dtype=np.int64)
            inner_src = np.asarray(kw.get("source") or (0,) * len(inner), dtype=np.int64)
            maps[k] = ([source(a) for a in node.args], inner_src, inner)
    for s_, p_ in zip(src.tolist(), pos.tolist()):
        if s_ in maps:
            args, inner_src, inner = maps[s_]
            flat_src.append(args[int(inner_src[p_])])
            flat_pos.append(int(inner[p_]))
        else:
            flat_src.append(source(sources[s_]))
            flat_pos.append(p_)
    if len(chosen) == 1 and flat_pos == list(range(len(flat_pos))) and _whole(chosen[0], shape):
        return chosen[0]
    params: tuple[tuple[str, object], ...] = (("source", tuple(flat_src)),) if len(chosen) > 1 else ()
    params += (("index", tuple(flat_pos)), ("shape", tuple(shape)))
    return Call("elements", tuple(chosen), params=params)


def _whole(node: Node, shape: tuple[int, ...]) -> bool:
    """Whether a node's shape is known to be ``shape`` without inference (an elements node says its own)."""
    return isinstance(node, Call) and node.func == "elements" and dict(node.params)["shape"] == tuple(shape)


class Tracer:
    """The state of one traced forward: the values computed, the storages written, what escaped torch."""

    def __init__(self, inputs: Mapping[str, torch.Tensor], differentiable: set[str]) -> None:
        self.values: list[Value] = []
        self.storages: dict[tuple[str, int], Storage] = {}
        self.alive: list[Any] = []  # every tensor seen stays alive: a freed storage's address is never reused
        self.escaped: dict[int, str] = {}  # id of a Python number read out of a tensor -> where
        self.escaped_values: dict[float, str] = {}  # the same by value (torch wraps a number in a tensor)
        self.left_torch: list[str] = []
        self.data_dependent: list[str] = []
        self.no_grad_cuts: list[str] = []
        self.grad_enabled = True
        from ..language.nodes import Name

        for name, t in inputs.items():
            shape = tuple(t.shape)
            vid = self.add(Value(Name(name), shape, name in differentiable))
            st = self.storage_of(t, fresh=True)
            st.src[self.positions(t).reshape(-1)] = vid
            st.pos[self.positions(t).reshape(-1)] = np.arange(t.numel())

    # --- memory ---------------------------------------------------------------------------------------------------

    def add(self, value: Value) -> int:
        self.values.append(value)
        return len(self.values) - 1

    @staticmethod
    def key(t: torch.Tensor) -> tuple[str, int]:
        return (str(t.device), t.untyped_storage().data_ptr())

    @staticmethod
    def positions(t: torch.Tensor) -> np.ndarray:
        """The storage element of each element of t (its strides and offset over the flat storage)."""
        n = t.untyped_storage().nbytes() // max(t.element_size(), 1)
        base = np.arange(max(n, 1), dtype=np.int64)[t.storage_offset():]
        return np.lib.stride_tricks.as_strided(base, shape=tuple(t.shape),
                                               strides=tuple(8 * s for s in t.stride())).copy()

    def storage_of(self, t: torch.Tensor, fresh: bool = False) -> Storage:
        key = self.key(t)
        n = t.untyped_storage().nbytes() // max(t.element_size(), 1)
        st = self.storages.get(key)
        if fresh or st is None or len(st.src) != max(n, 1) or st.itemsize != t.element_size():
            st = Storage(np.full(max(n, 1), -1, dtype=np.int64), np.zeros(max(n, 1), dtype=np.int64), t.element_size())
            self.storages[key] = st
            self.alive.append(t)
            if not fresh:  # a tensor the forward did not make: a constant (captured, a buffer, an index)
                self.constant_storage(t, st, n)
        return st

    def constant_storage(self, t: torch.Tensor, st: Storage, n: int) -> None:
        if n == 0:
            return
        flat = t.detach().as_strided((n,), (1,), 0)
        node = self.constant(flat)
        if n == 1 and t.dim() == 0 and self.escaped_values:
            where = self.escaped_values.get(float(flat[0]))
            if where is not None:  # the number a tensor's value was read out as, back as a constant
                node = Failure(f"a tensor's value used as a plain number ({where}): the trace cannot follow it")
        vid = self.add(Value(node, (n,), False))
        st.src[:] = vid
        st.pos[:] = np.arange(n)

    def constant(self, t: torch.Tensor) -> Node | Failure:
        """The real values of a tensor as a node (exact numbers; booleans as true or false comparisons)."""
        if t.is_complex():
            return Failure("a complex tensor (the trace is of real floating-point forwards)")
        arr = t.detach().cpu()
        values = arr.numpy() if arr.dtype != torch.bfloat16 else arr.to(torch.float32).numpy()
        shape = tuple(arr.shape)
        uniq, inverse = np.unique(values.reshape(-1), return_inverse=True)
        nodes = [number(v) for v in uniq]
        bad = next((n for n in nodes if isinstance(n, Failure)), None)
        if bad is not None:
            return bad
        sources: list[Node] = [n for n in nodes if not isinstance(n, Failure)]
        if len(sources) == 1 and shape == ():
            return sources[0]
        return elements(sources, inverse.reshape(-1), np.zeros(values.size, dtype=np.int64), shape)

    def read(self, t: torch.Tensor) -> Value:
        """The traced value of a tensor the forward passes to an op."""
        shape = tuple(t.shape)
        st = self.storage_of(t)
        where = self.positions(t).reshape(-1)
        src, pos = st.src[where], st.pos[where]
        if t.numel() == 0:
            return Value(Failure("an empty tensor"), shape, False)
        if (src < 0).any():
            return Value(Failure("the forward reads memory it never wrote (an uninitialised torch.empty?)"), shape,
                         False)
        ids, local = np.unique(src, return_inverse=True)
        values = [self.values[i] for i in ids]
        failed = next((v.node for v in values if isinstance(v.node, Failure)), None)
        live = any(v.live for v in values)
        if failed is not None:
            return Value(failed, shape, live)
        nodes = [v.node for v in values if not isinstance(v.node, Failure)]
        if len(values) == 1 and values[0].shape == shape and np.array_equal(pos, np.arange(len(pos))):
            node = nodes[0]
        else:
            node = elements(nodes, local.reshape(-1), pos, shape)
        if live and self.grad_enabled and torch.is_grad_enabled() and not t.requires_grad and \
                t.is_floating_point():
            node = Call("detach", (node,))  # detach() or a no_grad block in plain code: a constant for autograd
            if any(v.no_grad for v in values):  # a no_grad block's: reverse mode only (forward mode sees through)
                site = user_frame()
                if site not in self.no_grad_cuts:
                    self.no_grad_cuts.append(site)
        return Value(node, shape, live)

    def write(self, t: torch.Tensor, node: Node | Failure, live: bool, fresh: bool,
              node_shape: tuple[int, ...] | None = None) -> None:
        """The op's result is now in t's elements (a new tensor: fresh storage; in place: the elements t covers).
        ``node_shape``: the node's own shape where it broadcasts to t's (a number filled in); default t's."""
        shape = tuple(t.shape)
        node_shape = shape if node_shape is None else node_shape
        vid = self.add(Value(node, node_shape, live, not torch.is_grad_enabled()))
        st = self.storage_of(t, fresh=fresh)
        where = self.positions(t).reshape(-1)
        st.src[where] = vid
        size = int(np.prod(node_shape, dtype=np.int64))
        st.pos[where] = np.broadcast_to(np.arange(size).reshape(node_shape), shape).reshape(-1)

    def fail_storage(self, t: torch.Tensor, message: str) -> None:
        self.write(t, Failure(message), False, fresh=False)

    def is_live(self, t: torch.Tensor) -> bool:
        st = self.storages.get(self.key(t))
        if st is None:
            return False
        src = st.src[self.positions(t).reshape(-1)]
        return any(self.values[i].live for i in np.unique(src[src >= 0]))


def tensors(out: Any) -> list[torch.Tensor]:
    """The tensors of an op's result (a tensor, or tuples and lists of them)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in tensors(o)]
    return []

"""aten operations -> the case language: one table, each entry building the node of the op-table row the case
language uses for the same function (``aten.sigmoid`` -> ``sigmoid(x)``), or its definition from rows where torch's
op has parameters the row does not (``leaky_relu(x, 0.2)`` -> ``where(x > 0, x, 0.2 * x)``).

Ops that only move elements (cat, flip, gather, indexing, index_put, padding, tril ...) need no formula: the op is
run on tensors of element ids in place of the data, and where each output element came from is read off the
result. Ops whose results are all integers (argmax, indices, counts) are constants at the point: nothing is
differentiated through an integer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import Untraceable
from ..language.nodes import Node, Num
from . import aten_layers, aten_math  # noqa: F401 - they register their translations in TABLE
from .atenargs import TABLE, Args, NoTranslation
from .tracing import FALSE, TRUE, Failure, Tracer, elements, tensors, user_frame

# --- ops that move elements: run on element ids ---------------------------------------------------------------------

MOVES = frozenset({
    "_unsafe_view", "view_copy", "reshape", "_reshape_copy", "cat", "concat", "concatenate", "stack", "hstack", "vstack",
    "flip", "roll", "repeat", "tile", "index_select", "gather", "index", "masked_select", "take", "take_along_dim",
    "narrow_copy", "expand_copy", "permute_copy", "t_copy", "transpose_copy", "slice_copy", "select_copy",
    "squeeze_copy", "unsqueeze_copy", "diagonal_copy", "unfold_copy", "unbind_copy", "split_copy", "split_with_sizes_copy",
    "diag", "diag_embed", "tril", "triu", "constant_pad_nd", "index_put", "scatter", "masked_scatter", "slice_scatter",
    "select_scatter", "diagonal_scatter", "as_strided_scatter", "repeat_interleave", "movedim", "rot90", "fill",
    "zero", "_unsafe_index", "index_fill", "pad", "reflection_pad1d", "reflection_pad2d", "replication_pad1d",
    "replication_pad2d", "circular_pad", "embedding", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle",
    "im2col", "col2im_copy", "upsample_nearest1d", "upsample_nearest2d", "_upsample_nearest_exact2d",
})
# the scalar argument an element-moving op fills in where no element is moved (padding, tril's zeros)
_FILL_ARG = {"constant_pad_nd": "value", "scatter": "value", "fill": "value", "index_fill": "value", "pad": "value"}


def moves(tracer: Tracer, func: Any, bound: dict[str, Any], outs: list[torch.Tensor]) -> list[Node]:
    """Where each element of the outputs came from: the (functional) op run on int64 ids of the data arguments'
    elements (the arguments of the output's dtype); indices and masks stay as they are. Id 0 is the fill value."""
    a = Args(tracer, func, bound, outs)
    dtype = outs[0].dtype
    sources: list[Node] = []
    starts: list[int] = []
    offset = 1

    def ids(t: torch.Tensor) -> torch.Tensor:
        nonlocal offset
        sources.append(a.read(t))
        starts.append(offset)
        out = torch.arange(offset, offset + t.numel(), dtype=torch.int64).reshape(t.shape)
        offset += t.numel()
        return out

    replaced: dict[str, Any] = {}
    for name, value in bound.items():
        if isinstance(value, torch.Tensor):
            replaced[name] = ids(value) if value.dtype == dtype else value.detach().cpu()
        elif isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value):
            replaced[name] = [(ids(v) if v.dtype == dtype else v.detach().cpu()) if isinstance(v, torch.Tensor) else v
                              for v in value]
        else:
            replaced[name] = value
    fill: Node = Num("0")
    fill_name = _FILL_ARG.get(func.overloadpacket.__name__)
    if fill_name and fill_name in bound and not isinstance(bound[fill_name], torch.Tensor):
        fill = a.const(a.v(fill_name))
        replaced[fill_name] = 0
    positional = [replaced[s.name] for s in func._schema.arguments if not s.kwarg_only and s.name in replaced]
    keywords = {s.name: replaced[s.name] for s in func._schema.arguments if s.kwarg_only and s.name in replaced}
    result = tensors(func(*positional, **keywords))
    first = np.asarray(starts, dtype=np.int64)
    nodes = []
    for r in result:
        flat = r.reshape(-1).numpy().astype(np.int64)
        arg = np.searchsorted(first, flat, side="right") - 1  # -1: the fill value (id 0)
        pos = np.where(arg >= 0, flat - first[np.maximum(arg, 0)] if len(first) else 0, 0)
        src = np.where(arg >= 0, arg, len(sources))
        used, local = np.unique(src, return_inverse=True)
        everything = sources + [fill]
        nodes.append(elements([everything[u] for u in used], local.reshape(-1), pos, tuple(r.shape)))
    return nodes


# --- the dispatcher's entry ----------------------------------------------------------------------------------------

_FACTORIES = frozenset({"zeros_like", "ones_like", "full_like", "new_zeros", "new_ones", "new_full", "scalar_tensor",
                        "zeros", "ones", "full", "arange", "eye", "linspace", "logspace", "tensor", "lift_fresh_copy"})
_UNINITIALISED = frozenset({"empty", "empty_like", "new_empty", "empty_strided", "new_empty_strided", "empty_permuted"})


def bind(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The op's arguments by their schema names, defaults filled in."""
    bound: dict[str, Any] = {}
    positional = list(args)
    for s in func._schema.arguments:
        if not s.kwarg_only and positional:
            bound[s.name] = positional.pop(0)
        elif s.name in kwargs:
            bound[s.name] = kwargs[s.name]
        elif s.has_default_value():
            bound[s.name] = s.default_value
    return bound


def translate(tracer: Tracer, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
    """Record one aten op of the traced forward: what each tensor it writes now holds."""
    schema = func._schema
    name = func.overloadpacket.__name__
    outs = tensors(out)
    if torch.Tag.data_dependent_output in func.tags or torch.Tag.dynamic_output_shape in func.tags:
        tracer.data_dependent.append(f"aten.{name} at {user_frame()}")
    if name == "_local_scalar_dense":
        if tracer.is_live(args[0]):
            where = f"Tensor.item() at {user_frame()}"
            tracer.escaped[id(out)] = where
            if isinstance(out, float) and not out.is_integer():  # a whole number may be any literal of the code
                tracer.escaped_values[out] = where
            tracer.alive.append(out)
        return
    mutated = [s.name for s in schema.arguments if s.alias_info is not None and s.alias_info.is_write]
    if not mutated and any(r.alias_info is not None for r in schema.returns):
        return  # a view: its storage is its base's, read through its own strides
    bound = bind(func, args, kwargs)
    if torch.Tag.nondeterministic_seeded in func.tags:
        reason = Failure(f"random numbers (aten.{name} at {user_frame()}): the forward is not a function of its "
                         "inputs (dropout in training mode? call .eval())")
        for t in outs + [t for m in mutated for t in tensors(bound.get(m))]:
            tracer.write(t, reason, False, fresh=False)
        return
    base = name[:-1] if name.endswith("_") and not name.startswith("_") or name in ("copy_", "fill_", "zero_") else name
    returned = [s.name for s in schema.arguments if s.alias_info is not None and s.alias_info.is_write
                and any(r.alias_info is not None and r.alias_info.is_write for r in schema.returns)]
    targets = [bound[m] for m in returned] if returned else None
    inputs = {k: v for k, v in bound.items() if k not in ("out",) and not (k in returned and k != "self")}
    if name in _UNINITIALISED:
        for t in outs:
            tracer.storage_of(t, fresh=True)
        return
    results = [t for r in (targets if targets is not None else outs) for t in tensors(r)]
    if name in _FACTORIES or not any(isinstance(v, torch.Tensor) or _tensor_list(v) for v in inputs.values()):
        for t in results:
            tracer.write(t, tracer.constant(t), False, fresh=targets is None)
        return
    if results and all(not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool) for t in results):
        for t in results:  # integers (indices, counts, argmax): constants at the point
            tracer.write(t, tracer.constant(t), False, fresh=targets is None)
        _fail_unreturned(tracer, func, bound, mutated, returned)
        return
    a = Args(tracer, func, inputs, results)
    try:
        if base in MOVES or name in MOVES:
            nodes: list[Any] = list(moves(tracer, _functional(func, base), inputs, results))
            a.live = any(tracer.read(t).live for v in inputs.values() for t in tensors(v))
        else:
            handler = TABLE.get(f"{base}.{func._overloadname}") or TABLE.get(base)
            if handler is None:
                raise NoTranslation(Failure(f"aten.{name}.{func._overloadname} has no translation to the case language "
                                    f"(called at {user_frame()})"))
            produced = handler(a)
            nodes = list(produced) if isinstance(produced, tuple) else [produced]
    except NoTranslation as exc:
        failure = exc.failure
        if "called at" not in failure.message and " at " not in failure.message:
            failure = Failure(f"{failure.message} (aten.{name}, called at {user_frame()})")
        nodes = [failure] * len(results)
    for t, node in zip(results, nodes + [None] * (len(results) - len(nodes))):
        if node is None:
            node = tracer.constant(t) if not t.is_floating_point() else Failure(
                f"an output of aten.{name} that the trace does not follow (called at {user_frame()})")
        shape = () if isinstance(node, Num) or node in (TRUE, FALSE) else None
        tracer.write(t, node, a.live, fresh=targets is None, node_shape=shape)
    _fail_unreturned(tracer, func, bound, mutated, returned)


def _tensor_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value)


def _functional(func: Any, base: str) -> Any:
    """The functional form of an in-place op (index_put_ -> index_put) with the same overload."""
    packet = getattr(torch.ops.aten, base, None)
    if packet is None:
        raise Untraceable(f"aten.{base} does not exist")
    return getattr(packet, func._overloadname) if func._overloadname in packet.overloads() else packet.default


def _fail_unreturned(tracer: Tracer, func: Any, bound: dict[str, Any], mutated: list[str], returned: list[str]) -> None:
    """Tensors an op updates on the side (batch norm's running statistics): not traced; an error if read later."""
    for m in mutated:
        if m not in returned and m != "out":
            for t in tensors(bound.get(m)):
                tracer.fail_storage(t, f"updated in place by aten.{func.overloadpacket.__name__} as a side effect")

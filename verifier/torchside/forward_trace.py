"""The entry of tracing: a user's forward run once under a TorchDispatchMode (each aten op translated by
:mod:`verifier.torchside.aten` into the memory model of :mod:`verifier.torchside.tracing`) and a TorchFunctionMode
(values leaving torch), then its output read as one node of the case language."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from ..errors import Untraceable
from ..language.nodes import names_in
from .aten import translate
from .tracing import Failure, Trace, Tracer, elements, tensors, user_frame


class _Dispatch(TorchDispatchMode):
    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            translate(self.tracer, func, args, kwargs, out)
        except Exception as exc:  # noqa: BLE001 - a gap of ours: the outputs cannot be traced, said lazily
            for t in tensors(out):
                self.tracer.write(t, Failure(f"aten.{func.overloadpacket.__name__} could not be translated "
                                             f"({type(exc).__name__}: {exc}) at {user_frame()}"), False, fresh=True)
        return out


_ESCAPES = {torch.Tensor.numpy: "Tensor.numpy()", torch.Tensor.tolist: "Tensor.tolist()",
            torch.Tensor.__array__: "numpy.asarray(tensor)"}


class _Functions(TorchFunctionMode):
    """Sees values leave torch (Tensor.numpy, tolist): what the forward computes from them is invisible to the trace."""

    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        what = _ESCAPES.get(func)
        if what is not None and args and isinstance(args[0], torch.Tensor) and self.tracer.is_live(args[0]):
            self.tracer.left_torch.append(f"{what} at {user_frame()}")
        return func(*args, **(kwargs or {}))


def trace_forward(forward: Callable[[dict[str, torch.Tensor]], torch.Tensor], inputs: Mapping[str, torch.Tensor],
                  differentiable: set[str]) -> Trace:
    """Run ``forward`` once on copies of ``inputs`` (the differentiable ones requiring grad) and translate what it did.

    Raises:
        Untraceable: an operation the output depends on has no translation (named, with where the user's code
            called it), random numbers, or values that left torch.
    """
    copies = {n: t.detach().clone().requires_grad_(n in differentiable and t.is_floating_point())
              for n, t in inputs.items()}
    tracer = Tracer(copies, differentiable)
    with _Functions(tracer), _Dispatch(tracer):
        out = forward(copies)
    parts = list(out) if isinstance(out, (tuple, list)) else [out]
    if not parts or not all(isinstance(t, torch.Tensor) for t in parts):
        raise Untraceable(f"the forward returned {type(out).__name__}, not a tensor or a tuple of tensors")
    if tracer.left_torch:
        raise Untraceable("the forward takes values out of torch (" + "; ".join(tracer.left_torch[:2]) + "): what it "
                          "computes from them is not an operation the trace sees. Give the function as reference=")
    tracer.grad_enabled = False  # the output itself: read as it is
    values = [tracer.read(t) for t in parts]
    failed = next((v.node for v in values if isinstance(v.node, Failure)), None)
    if failed is not None:
        raise Untraceable(f"{failed.message}. Give the function as reference= (an expression of the case "
                          "language) to check this code")
    nodes = [v.node for v in values if not isinstance(v.node, Failure)]
    if len(parts) == 1 and isinstance(out, torch.Tensor):
        node, shape = nodes[0], tuple(out.shape)
    else:  # several outputs: one vector of their elements in order, as the implementation's program returns them
        sizes = [t.numel() for t in parts]
        node = elements(nodes, np.repeat(np.arange(len(parts)), sizes), np.concatenate([np.arange(n) for n in sizes]),
                        (sum(sizes),))
        shape = (sum(sizes),)
    unknown = names_in(node) - set(inputs)
    assert not unknown, unknown  # a traced node reads only the inputs
    return Trace(node, shape, tuple(tracer.data_dependent), tuple(tracer.no_grad_cuts))

"""The entry of tracing: a user's forward run once under a TorchDispatchMode (each aten op translated by
:mod:`verifier.torchside.aten` into the memory model of :mod:`verifier.torchside.tracing`) and a TorchFunctionMode
(values leaving torch), then its output read as one node of the case language."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from ..errors import Untraceable
from ..language.nodes import names_in
from .aten import translate
from .tracing import Failure, Trace, Tracer, tensors, user_frame


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
    if not isinstance(out, torch.Tensor):
        raise Untraceable(f"the forward returned {type(out).__name__}, not a tensor")
    if tracer.left_torch:
        raise Untraceable("the forward takes values out of torch (" + "; ".join(tracer.left_torch[:2]) + "): what it "
                          "computes from them is not an operation the trace sees. Give the function as reference=")
    tracer.grad_enabled = False  # the output itself: read as it is
    value = tracer.read(out)
    if isinstance(value.node, Failure):
        raise Untraceable(f"{value.node.message}. Give the function as reference= (an expression of the case "
                          "language) to check this code")
    unknown = names_in(value.node) - set(inputs)
    assert not unknown, unknown  # a traced node reads only the inputs
    return Trace(value.node, tuple(out.shape), tuple(tracer.data_dependent), tuple(tracer.no_grad_cuts))

"""Users' code: importing a case's impl, and the torch program that calls it."""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ..case.model import Case
from ..dtypes import COMPLEX_OF
from ..errors import CaseError
from .lowering import Program


def search_dirs(case: Case) -> tuple[str, ...]:
    """Where a case's impl (and a train step) is imported from: the case file's folder, then the working folder."""
    dirs = [os.getcwd()]
    if case.file and Path(case.file).exists():
        dirs.insert(0, str(Path(case.file).resolve().parent))
    return tuple(dirs)


class Implementation(Program):
    """A user's callable in place of the lowered definition: what is verified when a case names an impl.

    With ``params`` (module parameter name -> input name) the module is called with those inputs as its parameters
    (torch.func.functional_call's reparametrization, tied weights tied), and with the other inputs, in order, as its
    arguments. It runs as a private copy, whose parameters stay those inputs until the next call: code that
    recomputes its forward in the backward (torch.utils.checkpoint(use_reentrant=True)) then differentiates the
    inputs, and nothing it does reaches the caller's module (its parameters, their .grad, its running statistics).
    """

    def __init__(self, case: Case, impl: Callable[..., Any], dtype: str | None = None,
                 params: Mapping[str, str] | None = None, device: str | torch.device | None = None) -> None:
        super().__init__(case, dtype, device)
        self.params = dict(params or {})
        self.given = impl  # the caller's
        impl = _own_copy(impl) if self.params else impl
        if isinstance(impl, torch.nn.Module):
            impl = impl.to(self.device)  # a module's parameters and buffers live where the case runs
        self.impl = impl
        self._swap = ExitStack()  # the current call's parameters in the copy (until the next call)
        self.mutates_held = False  # a call changed a tensor of the module in place (a buffer: running statistics)
        self.parts: tuple[tuple[int, ...], ...] | None = None  # a tuple output's shapes (checked as one vector)
        taken = set(self.params.values())
        self.names = tuple(i.name for i in case.inputs if i.name not in taken)
        if self.params:
            own = {**dict(impl.named_parameters()), **dict(impl.named_buffers())} \
                if isinstance(impl, torch.nn.Module) else {}
            missing = [p for p in self.params if p not in own]
            if missing:
                raise TypeError(f"module_params names {missing}, which the module does not have; its parameters "
                                f"and buffers: {sorted(own)}")

    def outputs(self, env: Mapping[str, torch.Tensor]) -> tuple[Any, bool]:
        """What the user's code returned (a tensor, or a tuple of tensors), and whether inputs came as complex pairs."""
        scope, pairs = self.complex_view(env)
        args = tuple(scope[n] for n in self.names)
        if self.params:
            weights = {p: scope[n] for p, n in self.params.items()}
            assert isinstance(self.impl, torch.nn.Module)  # module_params: checked in __init__
            if self.impl is self.given:  # no private copy (it cannot be copied): swapped for this call only
                return torch.func.functional_call(self.impl, weights, args), pairs
            from torch.nn.utils.stateless import _reparametrize_module  # what functional_call runs in

            self._swap.close()
            self._swap.enter_context(_reparametrize_module(self.impl, weights, tie_weights=True))
        if not isinstance(self.impl, torch.nn.Module):
            return self.impl(*args), pairs
        held = [(t, t._version) for t in (*self.impl.parameters(), *self.impl.buffers())]
        out = self.impl(*args)
        self.mutates_held = self.mutates_held or any(t._version != v for t, v in held)
        return out, pairs

    def __call__(
        self, env: Mapping[str, torch.Tensor], *, retain: tuple[str, ...] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out, pairs = self.outputs(env)
        if isinstance(out, (tuple, list)) and out and all(isinstance(o, torch.Tensor) for o in out):
            # several outputs: verified as one vector, each part's elements in order (the undefined check
            # differentiates some parts and leaves the others' grad_outputs undefined)
            self.parts = tuple(tuple(o.shape) for o in out)
            return torch.cat([o.reshape(-1) for o in out]), {}
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the implementation returned {type(out).__name__}, not a tensor")
        return self.pairs_view(out, pairs), {}


def _own_copy(module: Any) -> Any:
    """A private copy of a module (its parameters and buffers copied), or the module itself where it cannot be
    copied (an attribute deepcopy refuses)."""
    import copy

    try:
        return copy.deepcopy(module)
    except Exception:  # noqa: BLE001 - any refusal: the module itself, swapped only for the length of each call
        return module


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
    except ModuleNotFoundError as exc:
        parts = module_name.split(".")
        if exc.name not in {".".join(parts[:k]) for k in range(1, len(parts) + 1)}:
            raise  # the user's module imports something missing: that is its own error, with its frames
        where = ", ".join(search) or "sys.path"
        raise CaseError(f"impl: no module named {exc.name!r} (looked in {where} and sys.path)") from None
    finally:
        for d in added:
            sys.path.remove(d)
    for k, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            owner = module_name + "".join("." + p for p in attr.split(".")[:k])
            raise CaseError(f"impl: {owner!r} has no attribute {part!r}") from None
        obj = getattr(obj, part)
    if isinstance(obj, type) and issubclass(obj, torch.autograd.Function):
        return obj.apply
    if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
        with torch.random.fork_rng(devices=[]):  # its initialisation draws from a generator: not the caller's
            return obj(*args, **dict(kwargs or {}))
    if isinstance(obj, type):
        raise CaseError(f"impl: {target} is a class that is neither a torch.autograd.Function nor an nn.Module")
    if not callable(obj):
        raise CaseError(f"impl: {target} is a {type(obj).__name__}, not callable")
    return obj


def implementation_program(case: Case, dtype: str, device: str | None = None) -> Callable[[Case], object]:
    """Import the case's impl (only now, for this case) and build the torch program that calls it."""
    import torch

    from .devices import DTYPES

    assert case.impl is not None  # called for cases that name an impl
    impl = resolve_impl(case.impl, case.impl_args, case.impl_kwargs, search=search_dirs(case))
    if isinstance(impl, torch.nn.Module):
        complex_dtype = DTYPES.get(COMPLEX_OF.get(dtype, ""))
        impl = impl.to(complex_dtype if case.complex_inputs and complex_dtype else DTYPES[dtype])
    Implementation(case, impl, dtype, case.module_params)  # validates module_params now, as this case's verdict
    return lambda c: Implementation(c, impl, dtype, case.module_params, device)

"""What torch supports for a program, decided by capability, never by the wording of an error.

A path that raises is *unsupported* (not a failure) when the exception's type says so (NotImplementedError), when a
custom autograd.Function in the program lacks what the path needs (read off the class: its jvp, setup_context, vmap
and backward), or when the same path also raises on the case's own definition lowered to torch (torch itself lacks
the rule). A half-precision failure that float32 does not share is a missing kernel for the dtype. Each reason is
data (a kind and the names involved); report/ words it.
"""

from __future__ import annotations

from typing import Any

import torch

from ..dtypes import HALF
from .paths import UNDER_TRANSFORM, Need, Path, Unsupported, Why


class NoKernel(Exception):
    """torch has no kernel for the dtype on some op the check needs: the check is skipped, not failed."""

    def __init__(self, dtype: str, error: str) -> None:
        super().__init__(f"{dtype}: {error}")
        self.dtype, self.error = dtype, error


def _overrides(cls: type, name: str) -> bool:
    return getattr(cls, name, None) is not getattr(torch.autograd.Function, name, None)


def lacks(cls: type, need: Need) -> bool:
    """Whether the custom Function class lacks a capability (read off the class, as torch itself decides)."""
    from torch.autograd.function import _is_setup_context_defined

    functorch = _is_setup_context_defined(getattr(cls, "setup_context", None))
    if need is Need.JVP:
        return not _overrides(cls, "jvp")
    if need is Need.FUNCTORCH:
        return not functorch
    if need is Need.VMAP:
        return not functorch or not (getattr(cls, "generate_vmap_rule", False) or _overrides(cls, "vmap"))
    # Need.TWICE: @once_differentiable wraps backward in torch's own wrapper
    backward = getattr(cls, "backward", None)
    return getattr(backward, "__wrapped__", None) is not None and \
        getattr(backward, "__module__", "") == torch.autograd.function.__name__


def missing(functions: set[type], path: Path | str) -> tuple[tuple[str, ...], tuple[Need, ...]]:
    """The Functions lacking something the path needs, and what they lack."""
    needs = Path(path).needs if path in Path._value2member_map_ else frozenset()
    names: list[str] = []
    lacked: list[Need] = []
    for cls in sorted(functions, key=lambda c: c.__qualname__):
        gaps = [n for n in sorted(needs, key=lambda n: n.name) if lacks(cls, n)]
        if gaps:
            names.append(cls.__qualname__)
            lacked.extend(g for g in gaps if g not in lacked)
    return tuple(names), tuple(lacked)


def classify(side: Any, path: str, exc: BaseException, make: Any) -> Unsupported | None:
    """Why a path that raised is unsupported, or None when it is a real error of the code under test.

    side: the TorchSide the path ran on; make(side) -> {path: thunk} rebuilds the same paths on another side (the
    float32 probe, the lowered definition), or is None where no probe applies. Raises NoKernel where the failure
    is the dtype's alone (float32 runs the same path).
    """
    if side.dtype_name in HALF and make is not None:
        probe = side.at_dtype("float32")
        if probe is not None and runs(make, probe, path):
            raise NoKernel(side.dtype_name, first_line(exc))
    error = first_line(exc)
    functions = side.custom_functions()
    names, needs = missing(functions, path)
    if names:
        return Unsupported(path, Why.FUNCTION_LACKS, names, tuple(n.name for n in needs), error)
    if isinstance(exc, NotImplementedError):
        return Unsupported(path, Why.NOT_IMPLEMENTED, error=error)
    if side.is_lowered():
        return Unsupported(path, Why.TORCH_LACKS, error=error)  # torch's own ops raised: torch lacks the rule
    lowered = side.lowered()
    if make is not None and lowered is not None and not runs(make, lowered, path):
        return Unsupported(path, Why.TORCH_LACKS, error=error)
    for how in wrappings(side) if make is not None else ():
        wrapped = side.lowered(how)  # the case's definition inside the same wrapping: torch refuses the path there too
        if wrapped is not None and not runs(make, wrapped, path):
            return Unsupported(path, WRAPPING[how], error=error)
    return None


WRAPPING = {"hooks": Why.SAVED_TENSOR_HOOKS, "reentrant": Why.REENTRANT_CHECKPOINT, "mutates": Why.MUTATES_HELD}


def wrappings(side: Any) -> tuple[str, ...]:
    """How the code under test wraps its computation where torch supports some paths only (lowering.Wrapped), read
    off one forward, once per side: "reentrant" where its graph holds torch.utils.checkpoint's CheckpointFunction;
    "hooks" where it installs saved-tensor hooks, seen by capability: its forward raises where torch disables them
    (as torch.func's reverse-mode transforms do) and runs where it does not; "mutates" where a forward changes a
    tensor of the module in place (a buffer's version counter moves)."""
    if side.wrappings is None:
        from torch.utils.checkpoint import CheckpointFunction

        found = ["reentrant"] if CheckpointFunction in side.custom_functions() else []
        if not side.is_lowered() and not _runs_without_saved_tensor_hooks(side) and _runs_forward(side):
            found.append("hooks")
        if _runs_forward(side) and getattr(side.program, "mutates_held", False):  # seen by the module's versions
            found.append("mutates")
        side.wrappings = tuple(found)
    return tuple(side.wrappings)


def foreseen(side: Any, path: str) -> Unsupported | None:
    """A path torch is sure to refuse, not run again: torch.func's transforms refuse every custom Function without a
    setup_context (autograd.Function.apply raises whenever a transform is active, whatever the inputs), and once one
    of them has refused on this side, with torch's own exception, the others that need the same are recorded with
    that exception instead of raising it again (each refusal costs a transform's set-up)."""
    refusal = side.functorch_refusal
    if refusal is None or side.is_lowered() or side.dtype_name in HALF or not _under_transform(path):
        return None
    names, needs = missing(side.custom_functions(), path)
    if not names or Need.FUNCTORCH not in needs:
        return None
    return Unsupported(path, Why.FUNCTION_LACKS, names, tuple(n.name for n in needs), refusal)


def remember(side: Any, reason: Unsupported) -> None:
    """Keep the exception of a transform's refusal of a Function without setup_context (see foreseen)."""
    if reason.why is Why.FUNCTION_LACKS and Need.FUNCTORCH.name in reason.needs and _under_transform(reason.path):
        if side.functorch_refusal is None:
            side.functorch_refusal = reason.error


def _under_transform(path: Path | str) -> bool:
    return path in Path._value2member_map_ and Path(path) in UNDER_TRANSFORM


def _runs_without_saved_tensor_hooks(side: Any) -> bool:
    try:
        with torch.autograd.graph.disable_saved_tensors_hooks("gradverify's probe: does the code install hooks?"):
            side.forward()
    except RuntimeError:
        return False
    except Exception:  # noqa: BLE001 - another failure is the code's own, not a refusal of hooks
        return True
    return True


def _runs_forward(side: Any) -> bool:
    try:
        side.forward()
    except Exception:  # noqa: BLE001 - the forward fails whatever the hooks: the checks report that
        return False
    return True


def runs(make: Any, side: Any, path: str) -> bool:
    """Whether the path runs without an exception on another side (a probe: its result is not compared)."""
    try:
        make(side)[path]()
    except Exception:  # noqa: BLE001 - any failure means it does not run there
        return False
    return True


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:160] if text else ''}"

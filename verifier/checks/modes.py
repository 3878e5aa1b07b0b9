"""Higher orders through every composition of forward and reverse mode (part of the ``higher`` check): each path's
directional derivative (D²f[u, w], H u, H w, the whole Hessian; D³f[u, w, z], D³f[u, w, .], the whole third
derivative) against the same contraction of the exact derivative tensor, with seeded random tangents."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..reference.expanded.point import ZERO_INF_RULE
from ..reference.rounding import summed_slack
from ..results import CheckResult
from ..torchside.autodiff import TorchSide
from ..torchside.paths import NESTED, Need, Path, Unsupported, Why
from ..values import Code, Exact, Reason, code_of
from .context import Ctx, each_path

MODES_STREAM = 1002  # the tangents' own random stream
MAX_ORDER = 3


def contract(ex: Exact, u: np.ndarray, dtype: str) -> Exact:
    """sum_j u_j ex[j, ...]: the first axis of an exact tensor contracted with a vector. At kinks the one-sided
    values give the smallest and the largest sum; an undefined entry leaves its column undefined; the rounding bound
    is carried through the sum (each term's bound weighted, the rounding of the products and of the sum added)."""
    n = u.size
    rest = ex.lo.shape[1:]
    lo, hi = ex.lo.reshape(n, -1), ex.hi.reshape(n, -1)
    with np.errstate(invalid="ignore"):
        p, q = u[:, None] * lo, u[:, None] * hi
        a, b = np.fmin(p, q).sum(axis=0), np.fmax(p, q).sum(axis=0)
    holes = np.isnan(lo) | np.isnan(hi)
    undefined: dict[int, str] = {}
    for col in np.flatnonzero(holes.any(axis=0)):
        row = int(np.flatnonzero(holes[:, col])[0])
        why = ex.undefined.get(row * lo.shape[1] + int(col), "undefined")
        undefined[int(col)] = why if isinstance(why, Reason) else Reason(str(why), Code.OUTSIDE)
        a[col] = b[col] = np.nan
    out = Exact(a.reshape(rest), b.reshape(rest), undefined)
    width = lo.shape[1]
    for flat, note in ex.notes.items():  # a column through a removable singularity or a kink is an edge too
        if flat >= 0 and code_of(note) in (Code.REMOVABLE, Code.SINGULAR) and flat % width not in undefined:
            out.notes.setdefault(flat % width, note)
    out.kinks = (a != b).reshape(rest) & ~np.isnan(a).reshape(rest)
    if ex.slack is not None:
        magnitude = np.abs(np.nan_to_num(np.fmax(np.abs(lo), np.abs(hi))))
        out.slack = summed_slack(np.abs(u), ex.slack.reshape(n, -1), magnitude, dtype).reshape(rest)
    return out


# The whole-tensor paths whose innermost derivative is forward mode with basis tangents: where one first derivative is
# infinite (a pole), its zero tangent component makes every entry 0·inf (NaN), not only the row and column through it.
FORWARD_INSIDE = frozenset({Path.JACFWD_JACFWD, Path.JACREV_JACFWD})


def exact_holes(ex: Exact) -> dict[int, str]:
    return {k: why for k, why in ex.undefined.items() if code_of(why) in (Code.ZERO_WEIGHT, Code.POLE, Code.OVERFLOW,
                                                                        Code.INDETERMINATE, Code.BEYOND_RANGE)}


def everywhere(ex: Exact, holes: dict[int, str]) -> Exact:
    """ex undefined at every entry, by forward mode's rule (0·inf through the zero tangents)."""
    why = next(iter(holes.values()))
    base = why.split(ZERO_INF_RULE, 1)[-1] if isinstance(why, str) else str(why)
    nan = np.full(ex.lo.shape, np.nan)
    return Exact(nan, nan.copy(), {k: Reason(f"{ZERO_INF_RULE}{base}", Code.ZERO_WEIGHT) for k in range(nan.size)})


def _not_nestable_here(ctx: Ctx, r: CheckResult, k: int) -> frozenset[str]:
    """The nested paths torch.func cannot take through the program's custom Functions with a jvp (torchside.nested's
    probe), each recorded as unsupported with the Functions named."""
    from ..torchside.nested import not_nestable
    from ..torchside.support import lacks

    if ctx.torch.is_lowered():
        return frozenset()
    functions = [c for c in ctx.torch.custom_functions() if not lacks(c, Need.JVP)]  # none where the forward fails
    if not functions:
        return frozenset()
    paths = not_nestable()
    names = tuple(sorted(c.__qualname__ for c in functions))
    for path in sorted(paths, key=str):
        if NESTED[path][0] == k:
            r.unsupported.append(Unsupported(str(path), Why.NOT_NESTABLE, names))
    return frozenset(str(p) for p in paths)


def check_modes(ctx: Ctx, r: CheckResult, k: int, exact: Exact,
                on: Callable[[TorchSide], TorchSide] = lambda side: side) -> None:
    """The order-k paths of torchside.nested against the order-k exact derivative tensor of the scalar that
    on(side) computes (the output, or v . output)."""
    from ..torchside.nested import nested

    n = exact.lo.shape[0]
    rng = ctx.stream(MODES_STREAM + k)
    u, w, z = (ctx.random((n,), rng) for _ in range(3))
    along = {"full": exact}
    first = contract(exact, u, ctx.dtype)  # D^k f[u, ...]
    second = contract(first, w, ctx.dtype) if k > 1 else first  # D^k f[u, w, ...]
    if k == 2:
        along.update(u=first, w=contract(exact, w, ctx.dtype), uw=second)
    else:
        along.update(u=second, uw=contract(second, z, ctx.dtype))
    text = {"full": f"d{k}y (order {k})", "u": "H u" if k == 2 else "D3y[u, w, .]", "w": "H w",
            "uw": "u^T H w" if k == 2 else "D3y[u, w, z]"}
    holes = exact_holes(exact)
    skip = _not_nestable_here(ctx, r, k)

    def make(side: TorchSide) -> dict[str, Callable[[], object]]:
        return {p: t for p, t in nested(on(side), k, u, w, z).items() if p not in skip}

    for path, got in each_path(ctx, r, make):
        kind = NESTED[path][1]  # type: ignore[index]  # the labels each_path returns are the Path members it was given
        want = along[kind]
        if kind == "full" and path in FORWARD_INSIDE and holes:
            want = everywhere(exact, holes)
        label = f"{text[kind]} ({'u, w, z' if k == 3 else 'u, w'} seeded random)" if kind != "full" else text[kind]
        got = np.asarray(got)
        r.comparisons.append(ctx.cmp(want, got.reshape(want.lo.shape) if got.size == want.lo.size else got, "higher",
                                     label, path))

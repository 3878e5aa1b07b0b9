"""Pictures with matplotlib (a face over the runner's data; only drawing happens here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MARKERS = {"y.backward()": "o", "autograd.grad": "x", "forward_ad": "+", "torch.func.jacrev": "."}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_sweep(data: dict[str, Any], path: str | Path) -> None:
    """f, the exact derivative and every torch path over the domain; below, each path's error in ULPs."""
    plt = _pyplot()
    x = data["x"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    top.plot(x, data["f"], color="0.6", lw=1.5, label=f"f = {data['function']}")
    top.plot(x, data["exact"], color="black", lw=2, label="exact f' (sympy)")
    kinks = data["exact"] != data["exact_right"]
    if kinks.any():
        top.scatter(x[kinks], data["exact_right"][kinks], color="black", marker="s", s=20, label="right derivative at kinks")
    for label, values in data["paths"].items():
        top.plot(x, values, ls="none", marker=MARKERS.get(label, "."), ms=4, alpha=0.7, label=f"torch {label}")
        bad = data["bad"][label]
        if bad.any():
            top.scatter(x[bad], values[bad], color="red", s=40, zorder=5, label=f"{label}: outside tolerance")
    top.set_ylabel("value")
    top.legend(fontsize=8, loc="best")
    top.set_title(f"{data['function']}: d/d{data['name']} exact vs torch ({data['dtype']})")
    for label, ulps in data["ulps"].items():
        bottom.plot(x, np.where(np.isfinite(ulps), ulps, np.nan), marker=MARKERS.get(label, "."), ms=3, lw=0.8,
                    label=label)
        bad = data["bad"][label]
        if bad.any():
            bottom.scatter(x[bad], ulps[bad], color="red", s=40, zorder=5)
    bottom.set_yscale("symlog", linthresh=1)
    bottom.set_ylabel(f"error in ULPs of {data['dtype']}")
    bottom.set_xlabel(data["name"])
    bottom.legend(fontsize=8)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training(data: dict[str, Any], path: str | Path) -> None:
    """Loss curves (exact-gradient loop and torch's loop) and the seed's picture when the case names one."""
    plt = _pyplot()
    picture = data["picture"]
    fig, axes = plt.subplots(1, 2 if picture else 1, figsize=(12 if picture else 7, 5))
    axes = np.atleast_1d(axes)
    ax = axes[0]
    ax.plot(np.arange(1, len(data["exact_loss"]) + 1), data["exact_loss"], color="black", lw=2,
            label="loop on exact gradients (sympy)")
    ax.plot(np.arange(1, len(data["torch_loss"]) + 1), data["torch_loss"], ls="--", color="tab:orange", lw=2,
            label=f"torch loop (autograd + torch.optim, {data['optimizer']})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("loss per step")
    v = data["values"]
    if picture.get("kind") == "line_fit":
        ax = axes[1]
        xs, ys = np.ravel(v[picture["x"]]), np.ravel(v[picture["y"]])
        w, b = float(np.ravel(v[picture["w"]])[0]), float(np.ravel(v[picture["b"]])[0])
        ax.scatter(xs, ys, s=18, label="points")
        grid = np.linspace(xs.min(), xs.max(), 50)
        ax.plot(grid, w * grid + b, color="red", lw=2, label=f"fitted y = {w:.3f} x + {b:.3f}")
        ax.set_xlabel(picture["x"])
        ax.set_ylabel(picture["y"])
        ax.legend()
        ax.set_title("fitted line (exact-gradient loop)")
    elif picture.get("kind") == "decision_boundary":
        ax = axes[1]
        c0, c1 = np.asarray(v[picture["class0"]]), np.asarray(v[picture["class1"]])
        weights = np.ravel(v[picture["w"]])
        bias = float(np.ravel(v[picture["b"]])[0])
        ax.scatter(c0[:, 0], c0[:, 1], s=14, label="class 0")
        ax.scatter(c1[:, 0], c1[:, 1], s=14, label="class 1")
        grid = np.linspace(min(c0[:, 0].min(), c1[:, 0].min()), max(c0[:, 0].max(), c1[:, 0].max()), 50)
        ax.plot(grid, -(weights[0] * grid + bias) / weights[1], color="red", lw=2,
                label=f"{weights[0]:.3f} x + {weights[1]:.3f} y + {bias:.3f} = 0")
        ax.legend()
        ax.set_title("decision boundary (exact-gradient loop)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_ulps(r: Any, path: str | Path) -> None:
    """A sweep's error in ULPs against the input value (log scale; zero errors drawn at the bottom)."""
    from ..results import FINDING_ULPS, WIDE
    from .sweep_tables import short_number

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if r.ulps.size:
        ax.scatter(r.x, np.maximum(r.ulps, 1e-3), s=1, alpha=0.3, color="tab:blue", rasterized=True)
        ax.set_yscale("log")
        span = np.nanmax(np.abs(r.x)) if r.x.size else 1
        positive = r.x[r.x > 0]
        if span > WIDE:
            ax.set_xscale("symlog", linthresh=max(1e-8 * span, float(positive.min()) if positive.size else 1e-8))
        ax.axhline(FINDING_ULPS, color="tab:red", lw=0.8, ls="--", label=f"{FINDING_ULPS:g} ULPs")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel(r.input_name)
    ax.set_ylabel(f"|torch - exact| in ULPs ({r.dtype})")
    ax.set_title(f"{r.op} ({r.dtype}): median {short_number(r.median_ulps)}, max {short_number(r.max_ulps)} ULPs "
                 f"over {r.points} points", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

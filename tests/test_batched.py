"""Several grad_outputs and tangents at once (gradcheck's check_batched_grad), on the real engine."""

from __future__ import annotations

import numpy as np
import torch

from verifier import assert_gradients_match
from verifier.torchside.paths import Path, Why


class NumpyCube(torch.autograd.Function):
    """x³ whose backward leaves torch for numpy (as kernel code does): right, but it cannot run under vmap."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.from_numpy(g.detach().numpy() * 3 * x.detach().numpy() ** 2)


X = torch.tensor([0.5, -1.25, 2.0], dtype=torch.float64)


def test_batched_grad_outputs_and_tangents_are_each_compared():
    result = assert_gradients_match(lambda x: torch.sin(x) * x, "sin(x) * x", {"x": X})
    labels = [(c.label, c.path) for ch in result.checks for c in ch.comparisons]
    assert sum(1 for label, path in labels if path == str(Path.VMAP_VJP)) == 3
    assert sum(1 for label, path in labels if path == str(Path.GRAD_BATCHED)) == 3
    assert sum(1 for label, path in labels if path == str(Path.VMAP_JVP)) == 3
    assert all("at once" in label for label, path in labels if path == str(Path.VMAP_VJP))


def test_code_that_cannot_run_under_vmap_is_not_batchable_not_a_failure():
    result = assert_gradients_match(NumpyCube.apply, "x**3", {"x": X}, checks=["value", "backward", "vjp", "grad"])
    vjp = [c for c in result.checks if c.check == "vjp"][0]
    batched = [u for u in vjp.unsupported if u.why is Why.NOT_BATCHABLE]
    assert batched and {str(u.path) for u in batched} <= {str(Path.GRAD_BATCHED), str(Path.VMAP_VJP)}
    assert any(c.path == str(Path.BACKWARD_V) for c in vjp.comparisons)  # the one-at-a-time paths ran
    assert np.isfinite([c.abs_err or 0.0 for c in vjp.comparisons]).all()

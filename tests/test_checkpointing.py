"""Activation checkpointing and saved-tensor hooks, as real training code uses them, are verified without false
alarms: torch.utils.checkpoint (use_reentrant False and True), torch.autograd.graph.save_on_cpu, and modules that
checkpoint a block of layers. Each torch path that refuses them (torch.func's reverse-mode transforms refuse
saved-tensor hooks; reentrant checkpointing supports .backward() only) is recorded as unsupported, by a probe of
the case's own definition inside the same wrapping; every other path is compared, and bugs inside still show.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from verifier import GradientMismatch, assert_gradients_match
from verifier.report.text import WHY, unsupported_text
from verifier.torchside.paths import Unsupported, Why

from .test_capability import RaisingBackward


def x23():
    return torch.tensor([[0.5, -1.25, 2.0], [0.75, 1.5, -0.3]], dtype=torch.float64)


def checkpointed(reentrant: bool):
    def f(x):
        return checkpoint(lambda t: torch.sin(t) * t, x, use_reentrant=reentrant)

    return f


def offloaded(x):
    with torch.autograd.graph.save_on_cpu():
        return torch.tanh(x) * x


class SinTimesThree(torch.autograd.Function):
    """A hand-written backward with a wrong constant (3 cos x for cos x), the kind checkpointing must not hide."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * g * x.cos()


class CheckpointedBlock(torch.nn.Module):
    """Linear -> tanh -> Linear recomputed in the backward (the memory-saving pattern of deep models), and a step
    counter buffer its forward advances in place."""

    def __init__(self, reentrant: bool) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.block = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        self.reentrant = reentrant

    def forward(self, x):
        self.steps.add_(1)
        return checkpoint(self.block, x, use_reentrant=self.reentrant).pow(2).sum()


def _whys(result, check: str | None = None) -> set[Why]:
    return {u.why for c in result.checks if check in (None, c.check) for u in c.unsupported}


def _statuses(result, check: str) -> set[str]:
    return {c.status for c in result.checks if c.check == check}


@pytest.mark.parametrize("order", [1, 2])
def test_non_reentrant_checkpoint_passes_and_torch_func_refusals_are_recorded(order):
    result = assert_gradients_match(checkpointed(False), "sin(x) * x", {"x": x23()}, order=order)
    assert result.status == "pass"
    assert Why.SAVED_TENSOR_HOOKS in _whys(result, "vjp")
    hooked = {u.path for c in result.checks for u in c.unsupported if u.why is Why.SAVED_TENSOR_HOOKS}
    assert "torch.func.vjp" in hooked and "y.backward(v)" not in hooked
    for check in ("backward", "grad", "repeat", "accumulate", "jvp") + (("higher",) if order == 2 else ()):
        assert _statuses(result, check) == {"pass"}, check  # compared, not set aside


def test_tensors_saved_on_the_cpu_pass_at_order_2():
    result = assert_gradients_match(offloaded, "tanh(x) * x", {"x": x23()}, order=2)
    assert result.status == "pass" and Why.SAVED_TENSOR_HOOKS in _whys(result)
    assert _statuses(result, "higher") == {"pass"}


def test_reentrant_checkpoint_passes_and_its_autograd_grad_refusal_is_recorded():
    result = assert_gradients_match(checkpointed(True), "sin(x) * x", {"x": x23()})
    assert result.status == "pass"
    assert _statuses(result, "backward") == {"pass"} and _statuses(result, "accumulate") == {"pass"}
    assert _statuses(result, "grad") == {"not supported"}
    assert Why.REENTRANT_CHECKPOINT in _whys(result, "grad") and Why.REENTRANT_CHECKPOINT in _whys(result, "vjp")


@pytest.mark.parametrize("reentrant", [False, True])
def test_a_wrong_backward_inside_a_checkpoint_is_still_caught(reentrant):
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(lambda x: checkpoint(SinTimesThree.apply, x, use_reentrant=reentrant), "sin(x)",
                               {"x": x23()})
    assert "factor" in info.value.result.diagnoses()


def test_hooks_that_change_the_saved_tensors_are_caught():
    def scaled_on_unpack(x):  # a hook pair that does not give back what it was given
        with torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t * 1.01):
            return (x * x).sum()

    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(scaled_on_unpack, "sum(x * x)", {"x": x23()})
    assert {c.check for c in info.value.result.checks if c.status == "fail"} >= {"backward", "grad"}


def test_a_backward_raising_its_own_error_inside_a_checkpoint_is_an_error_not_unsupported():
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(lambda x: checkpoint(RaisingBackward.apply, x, use_reentrant=False), "exp(x)",
                               {"x": x23()})
    assert _statuses(info.value.result, "backward") == {"error"}


@pytest.mark.parametrize("reentrant", [False, True])
@pytest.mark.parametrize("order", [1, 2])
def test_a_checkpointed_module_verifies_its_parameters_and_leaves_the_callers_alone(reentrant, order):
    module = CheckpointedBlock(reentrant).double()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    result = assert_gradients_match(module, None, {"x": x23()}, order=order)
    assert result.status == "pass"
    compared = {c.wrt for ch in result.checks if ch.check == "backward" for c in ch.comparisons}
    assert {"block_0_weight", "block_2_bias", "x"} <= compared
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the step counter too
    assert all(p.grad is None for p in module.parameters())


def test_every_reason_is_worded_and_the_wrappings_name_the_way_out():
    assert set(WHY) | {Why.FUNCTION_LACKS, Why.GRAPH_BREAKS} == set(Why)
    assert "BatchNorm" in unsupported_text(Unsupported("torch.func.jvp", Why.MUTATES_HELD))
    text = unsupported_text(Unsupported("autograd.grad", Why.REENTRANT_CHECKPOINT, error="RuntimeError: ..."))
    assert text.startswith("autograd.grad: the code runs torch.utils.checkpoint(use_reentrant=True)")
    assert "use_reentrant=False" in text
    assert "saved-tensor hooks" in unsupported_text(Unsupported("torch.func.vjp", Why.SAVED_TENSOR_HOOKS))


class NormedLayer(torch.nn.Module):
    """Linear -> BatchNorm1d -> tanh: in train mode BatchNorm updates its running statistics and counter in place."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.lin, self.bn = torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)

    def forward(self, x):
        return torch.tanh(self.bn(self.lin(x))).sum()


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_in_train_mode_passes_and_its_running_statistics_stay_the_callers(train):
    module = NormedLayer().double().train(train)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    x = torch.linspace(-1, 1, 15, dtype=torch.float64).reshape(5, 3) ** 3
    result = assert_gradients_match(module, None, {"x": x})
    assert result.status == "pass"
    assert (Why.MUTATES_HELD in _whys(result, "vjp")) is train  # torch.func refuses the update; eval mode has none
    assert _statuses(result, "backward") == {"pass"}
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())

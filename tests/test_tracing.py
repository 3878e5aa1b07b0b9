"""No reference needed: the exact reference derived from the implementation's own forward, traced (issue 15).

The implementations are written the way users write them (custom Functions with hand-written backwards, modules,
straight-through estimators, forwards that write into buffers, branch on tensor values or leave torch); each is
verified with no reference string, and the bugs in the wrong ones are still caught, with their cause.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from verifier import GradientMismatch, Untraceable, assert_gradients_match
from verifier.runner import run

from .user_code import CORPUS

F64 = torch.float64


def _x(*shape, lo=-2.0, hi=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=F64)


# --- the corpus of users' code: the same verdict with no reference as with the written one -------------------------


@pytest.mark.parametrize("code", CORPUS, ids=[c.name for c in CORPUS])
def test_the_corpus_gives_the_same_verdict_with_no_reference(code):
    """Every implementation of tests/user_code.py, called with no reference (its surrogate where its backward
    means one): correct code passes, every bug is caught with the cause the written reference finds."""
    options = dict(code.options, order=code.order, gradient_of=code.surrogate)
    if code.bug is None:
        assert assert_gradients_match(code.impl, inputs=code.inputs(), **options).status == "pass"
        return
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(code.impl, inputs=code.inputs(), **options)
    assert code.bug in info.value.result.diagnoses(), str(info.value)[:1500]


# --- custom Functions ------------------------------------------------------------------------------------------------


class ClampedReLU(torch.autograd.Function):
    """A ReLU capped at 6 that writes its output through a mask (the classic grad_input[input < 0] = 0 backward)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        out = x.clone()
        out[x < 0] = 0
        out[x > 6] = 6
        return out

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        grad = g.clone()
        grad[(x < 0) | (x > 6)] = 0
        return grad


class ClampedReLUForgetsTheCap(ClampedReLU):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        grad = g.clone()
        grad[x < 0] = 0
        return grad


def test_a_right_backward_passes_against_its_own_forward():
    x = _x(12, lo=-3, hi=9)
    result = assert_gradients_match(ClampedReLU.apply, inputs={"x": x})
    assert result.status == "pass"
    assert "ClampedReLU" in result.derived


def test_a_wrong_backward_is_caught_against_its_own_forward():
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(ClampedReLUForgetsTheCap.apply, inputs={"x": _x(12, lo=-3, hi=9)})
    assert "region" in info.value.result.diagnoses()
    assert "function: the forward of ClampedReLUForgetsTheCap, traced" in str(info.value)


class ScaledTanh(torch.autograd.Function):
    """LeCun's scaled tanh: constants captured from the module-level code (a float no short decimal equals)."""

    A, B = 1.7159, 2.0 / 3.0

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(ScaledTanh.B * x)
        ctx.save_for_backward(y)
        return ScaledTanh.A * y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * ScaledTanh.A * ScaledTanh.B * (1 - y * y)


class ScaledTanhRoundedConstant(ScaledTanh):
    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * 1.7159 * 0.6667 * (1 - y * y)  # 2/3 written as 0.6667: off by 5e-5


def test_a_captured_float_constant_is_the_float_exactly():
    result = assert_gradients_match(ScaledTanh.apply, inputs={"x": _x(6)})
    assert "0.6666666666666666" in result.derived and "1.7159" in result.derived
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(ScaledTanhRoundedConstant.apply, inputs={"x": _x(6)})
    assert "factor" in info.value.result.diagnoses()


class FusedLinear(torch.autograd.Function):
    """x @ w.T + b with in-place accumulation in forward (addmm_ into a buffer) and a hand-written backward."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        out = b.unsqueeze(0).expand(x.shape[0], -1).clone()
        out.addmm_(x, w.t())
        return out

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g @ w, g.t() @ x, g.sum(0)


def test_in_place_writes_and_views_in_the_forward_are_traced():
    inputs = {"x": _x(3, 4), "w": _x(2, 4, seed=1), "b": _x(2, seed=2)}
    assert assert_gradients_match(FusedLinear.apply, inputs=inputs).status == "pass"


class WritesIntoEmpty(torch.autograd.Function):
    """Fills an uninitialised tensor row by row (a hand-written kernel's forward)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        out = torch.empty_like(x)
        out[0] = x[0] ** 2
        out[1] = torch.sin(x[1])
        return out

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.stack([2 * x[0], torch.cos(x[1])]) * g


def test_a_forward_that_fills_an_empty_tensor():
    assert assert_gradients_match(WritesIntoEmpty.apply, inputs={"x": _x(2, 3)}).status == "pass"


# --- straight-through estimators: the value from the forward, the gradient from gradient_of -----------------------


class Quantise(torch.autograd.Function):
    """8-bit quantisation of [0, 1] with a straight-through backward (the gradient of the identity)."""

    @staticmethod
    def forward(ctx, x):
        return (torch.clamp(x, 0, 1) * 255.0).round() / 255.0

    @staticmethod
    def backward(ctx, g):
        return g


def test_a_straight_through_estimator_with_gradient_of():
    x = _x(10, lo=-0.2, hi=1.2)
    assert assert_gradients_match(Quantise.apply, inputs={"x": x}, gradient_of="x").status == "pass"
    # the forward's own derivative is 0 almost everywhere: without gradient_of the surrogate is a mismatch
    with pytest.raises(GradientMismatch):
        assert_gradients_match(Quantise.apply, inputs={"x": x})


def test_gradient_of_still_checks_the_forward_value():
    class WrongForward(Quantise):
        @staticmethod
        def forward(ctx, x):
            return (torch.clamp(x, 0, 1) * 255.0).floor() / 255.0  # floor, where the reference forward rounds

    x = _x(10, lo=0.0, hi=1.0)
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(WrongForward.apply, reference="round(clamp(x, 0, 1) * 255) / 255", inputs={"x": x},
                               gradient_of="x")
    assert [c.check for c in info.value.result.checks if c.status == "fail"] == ["value"]


def test_plain_code_detach_is_a_stop_gradient():
    """x + (round(x) - x).detach(), the straight-through trick in plain autograd: traced as written."""
    result = assert_gradients_match(lambda x: x + (torch.round(x) - x).detach(), inputs={"x": _x(6)})
    assert result.status == "pass" and "detach" in result.derived


def test_a_no_grad_block_in_plain_code_is_a_constant():
    def normalised(x):
        with torch.no_grad():
            scale = x.abs().max()
        return x / scale

    assert assert_gradients_match(normalised, inputs={"x": _x(5)}).status == "pass"


# --- modules -------------------------------------------------------------------------------------------------------


class TinyMLP(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.fc1 = nn.Linear(3, 4).double()
        self.fc2 = nn.Linear(4, 1).double()
        self.scale = nn.Parameter(torch.tensor(0.5, dtype=F64))

    def forward(self, x):
        return (self.scale * self.fc2(torch.tanh(self.fc1(x)))).sum()


class WrongGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x  # 1x, where 2x is right


class MLPWithCustomSquare(TinyMLP):
    def forward(self, x):
        return (self.scale * WrongGrad.apply(self.fc2(torch.tanh(self.fc1(x))))).sum()


def _state(module):
    return ({k: v.clone() for k, v in module.state_dict().items()}, [p.grad for p in module.parameters()],
            module.training)


def test_a_module_has_its_parameters_checked_and_its_state_untouched():
    module = TinyMLP()
    before = _state(module)
    x = _x(2, 3)
    x_before = x.clone()
    result = assert_gradients_match(module, inputs={"x": x})
    assert result.status == "pass"
    checked = {c.wrt for check in result.checks for c in check.comparisons if c.wrt}
    assert {"x", "fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias", "scale"} <= checked
    after = _state(module)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert after[1] == [None] * len(after[1]) and after[2] == before[2]
    assert torch.equal(x, x_before) and x.grad is None


def test_a_module_with_a_wrong_function_inside_is_caught_on_its_parameters():
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(MLPWithCustomSquare(), inputs={"x": _x(2, 3)})
    failed = {c.wrt for check in info.value.result.checks for c in check.comparisons if not c.passed and c.wrt}
    assert {"fc1_weight", "fc2_bias", "x"} <= failed


def test_params_false_keeps_the_parameters_constant():
    result = assert_gradients_match(TinyMLP(), inputs={"x": _x(2, 3)}, params=False)
    assert {c.wrt for check in result.checks for c in check.comparisons if c.wrt} == {"x"}


def test_batch_norm_in_training_mode_leaves_its_running_statistics():
    module = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh()).double()
    before = _state(module)
    result = assert_gradients_match(lambda_module(module), inputs={"x": _x(5, 3)}, checks=["value", "backward"])
    assert result.status == "pass"
    after = _state(module)
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0]), "running statistics changed"


def lambda_module(module):
    class Summed(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, x):
            return self.inner(x).sum()

    return Summed()


# --- what cannot be traced: a clear error, never a crash or a silent pass -----------------------------------------


def test_an_untranslatable_op_names_itself_and_the_line_that_called_it():
    def spectral_loss(x):
        return torch.linalg.svdvals(x).sum()  # singular values: not in the op table

    with pytest.raises(Untraceable) as info:
        assert_gradients_match(spectral_loss, inputs={"x": _x(3, 2)})
    text = str(info.value)
    assert "aten._linalg_svd" in text and "test_tracing.py" in text and "reference=" in text


def test_an_untranslatable_op_whose_result_is_unused_is_no_error():
    def loss(x):
        torch.linalg.svdvals(x)  # computed, never used
        return (x**2).sum()

    assert assert_gradients_match(loss, inputs={"x": _x(3, 2)}).status == "pass"


def test_random_ops_are_refused_with_the_reason():
    with pytest.raises(Untraceable, match="random numbers"):
        assert_gradients_match(lambda x: nn.functional.dropout(x, 0.5, training=True).sum(), inputs={"x": _x(4)})
    module = nn.Dropout(0.3).eval()  # in eval mode dropout is the identity: traced
    assert assert_gradients_match(module, inputs={"x": _x(4)}).status == "pass"


class NumpyExp(torch.autograd.Function):
    """The docs' numpy extension pattern: a forward computed outside torch, with a correct backward."""

    @staticmethod
    def forward(ctx, x):
        y = torch.from_numpy(np.exp(x.detach().cpu().numpy()))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


def test_a_forward_that_leaves_torch_is_refused_not_a_false_alarm():
    with pytest.raises(Untraceable, match="takes values out of torch"):
        assert_gradients_match(NumpyExp.apply, inputs={"x": _x(3)})
    assert assert_gradients_match(NumpyExp.apply, "exp(x)", {"x": _x(3)}).status == "pass"


def test_a_value_read_out_with_item_and_used_as_a_number_is_refused():
    def scaled(x):
        return x / x.abs().max().item()

    with pytest.raises(Untraceable, match="plain number"):
        assert_gradients_match(scaled, inputs={"x": _x(4)})


# --- data-dependent control flow: traced at each point, the difference reported -------------------------------------


def test_control_flow_on_tensor_values_is_traced_per_point(tmp_path):
    (tmp_path / "branchy.py").write_text(textwrap.dedent("""
        import torch

        def piecewise(x):
            if x.sum() > 0:          # a Python if on a tensor's value
                return (x ** 2).sum()
            return torch.exp(x).sum()
    """))
    (tmp_path / "case.yaml").write_text(textwrap.dedent("""
        - name: branchy
          inputs: {x: [0.5, 1.0]}
          points:
            - {x: [0.5, 1.0]}
            - {x: [-0.5, -1.0]}
          impl: branchy:piecewise
          checks: [value, backward, grad]
    """))
    result = run([tmp_path / "case.yaml"])
    (case,) = result.cases
    assert case.status == "pass", case.error or [c.status for c in case.checks]
    assert "differs between points" in case.trace_note and "2 different traces" in case.trace_note


def test_a_yaml_impl_case_without_function_is_traced(tmp_path):
    (tmp_path / "mine.py").write_text(textwrap.dedent("""
        import torch

        class Cube(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x ** 3

            @staticmethod
            def backward(ctx, g):
                (x,) = ctx.saved_tensors
                return 3 * x ** 2 * g
    """))
    (tmp_path / "case.yaml").write_text("- name: cube\n  inputs: {x: [0.5, -1.0, 2.0]}\n  impl: mine:Cube\n")
    result = run([tmp_path / "case.yaml"])
    (case,) = result.cases
    assert case.status == "pass" and "x[0]**3" in case.derived


def test_a_traced_yaml_case_refuses_keys_that_need_a_written_function(tmp_path):
    from verifier.case.loading import collect

    (tmp_path / "case.yaml").write_text("- name: bad\n  inputs: {x: [1.0]}\n  impl: mine:Cube\n"
                                        "  define: {y: x}\n")
    found = collect([tmp_path / "case.yaml"])
    assert not found.cases and "define needs a written function" in str(found.errors[0])


# --- the forwards users write, each traced and verified against autograd's own backward of it ---------------------

_A = _x(3, 4, seed=5)
_B = _x(3, 4, seed=6)
_LABELS = torch.tensor([0, 2, 3])
PATTERNS = {
    "attention with a causal mask": lambda x, y: (torch.softmax(
        (x @ y.T).masked_fill(torch.triu(torch.ones(3, 3, dtype=torch.bool), 1), float("-inf")), -1) @ y).sum(),
    "RMSNorm": lambda x, y: (x * x.pow(2).mean(-1, keepdim=True).add(1e-6).rsqrt() * y).sum(),
    "label-smoothed cross-entropy": lambda x, y: nn.functional.cross_entropy(x + y, _LABELS, label_smoothing=0.1),
    "log-softmax gathered at the labels": lambda x, y: -nn.functional.log_softmax(x * y, 1).gather(
        1, _LABELS[:, None]).mean(),
    "KL divergence of log-targets": lambda x, y: nn.functional.kl_div(
        nn.functional.log_softmax(x, 1), nn.functional.log_softmax(y, 1), log_target=True, reduction="batchmean"),
    "pairwise distances (cdist)": lambda x, y: torch.cdist(x, y).sum(),
    "message passing (index_add)": lambda x, y: torch.zeros(3, 4, dtype=F64).index_add(
        0, torch.tensor([0, 0, 2]), x * y).pow(2).sum(),
    "top-k pooling": lambda x, y: (x + y).topk(2, dim=1).values.sum(),
    "GLU": lambda x, y: nn.functional.glu(torch.cat([x, y], 1), -1).sum(),
    "group norm": lambda x, y: nn.functional.group_norm((x * y)[None], 1).pow(2).sum(),
    "padded squares": lambda x, y: nn.functional.pad(x - y, (1, 1)).pow(2).sum(),
    "huber with delta": lambda x, y: nn.functional.huber_loss(x, y, delta=0.5),
    "BCE with logits and pos_weight": lambda x, y: nn.functional.binary_cross_entropy_with_logits(
        x, torch.sigmoid(y), pos_weight=torch.full((4,), 2.0, dtype=F64)),
}


@pytest.mark.parametrize("name", list(PATTERNS))
def test_common_forwards_are_traced(name):
    result = assert_gradients_match(PATTERNS[name], inputs={"x": _A, "y": _B}, checks=["value", "backward"])
    assert result.status == "pass"


def test_convolution_pooling_and_embedding_in_a_module():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(2, 3, 3, padding=1)
            self.emb = nn.Embedding(5, 4)

        def forward(self, x, idx):
            y = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
            return nn.functional.adaptive_avg_pool2d(y, 1).sum() + self.emb(idx).pow(2).sum()

    result = assert_gradients_match(Net().double(), inputs={"x": _x(1, 2, 4, 4), "idx": torch.tensor([1, 3, 1])},
                                    checks=["value", "backward"])
    assert result.status == "pass"

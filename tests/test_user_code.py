"""The helper on a corpus of users' custom-gradient code (tests/user_code.py): every correct implementation passes,
every wrong one is caught with the cause its bug has, and the caller's tensors are never touched."""

from __future__ import annotations

import pytest
import torch

from verifier import GradientMismatch, assert_gradients_match

from .user_code import CORPUS

CORRECT = [c for c in CORPUS if c.bug is None]
WRONG = [c for c in CORPUS if c.bug is not None]


def test_the_corpus_covers_every_bug_class():
    assert len(CORPUS) >= 25
    assert {c.bug for c in WRONG} >= {"mutated_state", "grad_output_modified", "ignores_grad_output", "factor",
                                      "region", "partial", "zero", "transpose"}


def _inputs(code):
    inputs = code.inputs()
    return inputs, {k: v.clone() for k, v in inputs.items()}


@pytest.mark.parametrize("code", CORRECT, ids=[c.name for c in CORRECT])
def test_correct_code_passes(code):
    inputs, before = _inputs(code)
    assert assert_gradients_match(code.impl, code.reference, inputs, order=code.order, **code.options).status == "pass"
    for k, v in inputs.items():
        assert torch.equal(v, before[k]) and v.grad is None


@pytest.mark.parametrize("code", WRONG, ids=[c.name for c in WRONG])
def test_wrong_code_is_caught_with_its_cause(code):
    inputs, _ = _inputs(code)
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(code.impl, code.reference, inputs, order=code.order, **code.options)
    causes = info.value.result.diagnoses()
    assert code.bug in causes, (causes, str(info.value)[:2000])
    if code.bug != "factor":
        assert "accumulated" not in causes  # accumulation only where the first call alone was right


def test_region_is_worded_with_its_boundary():
    (code,) = [c for c in CORPUS if c.bug == "region"]
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(code.impl, code.reference, code.inputs())
    text = str(info.value)
    assert "wrong where x > " in text and "the sign is flipped there, right elsewhere" in text


def test_ignored_grad_output_is_worded():
    (code,) = [c for c in CORPUS if c.bug == "ignores_grad_output"]
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(code.impl, code.reference, code.inputs())
    assert "backward does not scale with grad_output" in str(info.value)

"""The assertion helper on the mutation set: every wrong implementation is caught, no correct one is flagged."""

from __future__ import annotations

import pytest
import torch

from verifier import GradientMismatch
from verifier.assertions import assert_gradients_match
from verifier.torchside.paths import Why

from .mutations import MUTANTS, Stateful


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant(mutant):
    Stateful.calls = 0
    inputs = mutant.inputs()
    before = {k: v.clone() for k, v in inputs.items()}
    if mutant.correct:
        result = assert_gradients_match(mutant.impl, mutant.reference, inputs, order=mutant.order)
        assert result.status == "pass"
    else:
        with pytest.raises(GradientMismatch):
            assert_gradients_match(mutant.impl, mutant.reference, inputs, order=mutant.order)
    for k, v in inputs.items():  # the caller's tensors are never touched
        assert torch.equal(v, before[k]) and not v.requires_grad and v.grad is None


def test_mismatch_message_is_the_report():
    (mutant,) = [m for m in MUTANTS if m.name == "wrong: relative error 1e-9"]
    with pytest.raises(AssertionError) as info:
        assert_gradients_match(mutant.impl, mutant.reference, mutant.inputs())
    text = str(info.value)
    assert "FAIL implementation [" in text and "rel err 1e-09" in text
    assert "diagnosis: (1 + 1e-09)x expected: every element off by the same relative error 1e-09" in text
    assert "exact derivative there: d out[" in text and "= exp(x[" in text


def test_ignored_grad_output_is_diagnosed_on_random_v():
    (mutant,) = [m for m in MUTANTS if m.name == "wrong: ignores grad_output"]
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(mutant.impl, mutant.reference, mutant.inputs())
    assert "v = seeded random" in str(info.value)


def test_unsupported_paths_are_not_failures():
    (mutant,) = [m for m in MUTANTS if m.name == "correct: custom exp (float64)"]
    result = assert_gradients_match(mutant.impl, mutant.reference, mutant.inputs())
    jvp = [c for c in result.checks if c.check == "jvp"][0]
    assert any(u.path == "forward_ad" and u.why is Why.FUNCTION_LACKS and u.needs == ("JVP",) for u in jvp.unsupported)
    modern = [m for m in MUTANTS if m.name == "correct: torch.func-style sigmoid with jvp"][0]
    result = assert_gradients_match(modern.impl, modern.reference, modern.inputs())
    assert not any(c.unsupported for c in result.checks)


def test_bad_reference_is_a_case_error():
    from verifier import CaseError

    with pytest.raises(CaseError, match="unknown name 'y'"):
        assert_gradients_match(torch.exp, "exp(y)", {"x": torch.ones(2, dtype=torch.float64)})
    with pytest.raises(CaseError, match="must all be tensors of one dtype"):
        assert_gradients_match(torch.mul, "x * y", {"x": torch.ones(2, dtype=torch.float16),
                                                    "y": torch.ones(2, dtype=torch.float64)})


def test_exception_in_user_code_is_a_failure_with_traceback():
    def broken(x):
        raise ValueError("boom in user code")

    with pytest.raises(GradientMismatch, match="boom in user code"):
        assert_gradients_match(broken, "exp(x)", {"x": torch.ones(2, dtype=torch.float64)})

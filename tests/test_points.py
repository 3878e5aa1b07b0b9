"""Points chosen to expose bugs (``points: auto``) and the positions check (issue 16 part 2), on the real engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from verifier import GradientMismatch, assert_gradients_match
from verifier.case.loading import load_file
from verifier.runner import verify_case


def _case(tmp_path, text: str):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    cases, errors = load_file(f)
    assert not errors, errors
    return cases


def _kinds(result) -> list[str]:
    return [k for k in result.point_kinds if k]


def test_the_boundaries_are_read_off_the_expression_both_sides_and_on_it(tmp_path):
    (case,) = _case(tmp_path, "name: c\ninputs: {x: 0.5}\nfunction: hardswish(x)\npoints: auto\n")
    result = verify_case(case)
    kinds = _kinds(result)
    for where in ("just below", "at", "just above"):
        for bound in ("-3", "3"):
            assert f"{where} the boundary x = {bound}" in kinds, kinds
    assert result.status in ("pass", "edge")


def test_a_backward_wrong_only_next_to_the_lower_end_of_the_domain_is_found(tmp_path):
    # uniform samples of [-10, 10] land in the wrong 6% next to -10 rarely; the ends of the domain always do
    (case,) = _case(tmp_path, "name: c\ninputs: {x: 0.5}\nfunction: sin(x)\ndomain: {x: [-10, 10]}\nsamples: 3\n"
                              "points: auto\nimpl: tests.test_points:sin_wrong_near_lower_end\nchecks: [backward]\n")
    result = verify_case(case)
    assert result.status == "fail"
    failing = [c for ch in result.checks for c in ch.comparisons if not c.passed]
    assert failing and all(result.point_kinds[ch.point] for ch in result.checks if any(not c.passed
                                                                                      for c in ch.comparisons))
    from verifier.report.text import case_text

    assert "at the lower end x = -10 of its domain" in case_text(result)


class _SinWrongNearLowerEnd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.where(x < -8.8, -torch.cos(x), torch.cos(x)) * g


def sin_wrong_near_lower_end(x):
    return _SinWrongNearLowerEnd.apply(x)


def test_products_get_one_and_two_exact_zeros(tmp_path):
    (case,) = _case(tmp_path, "name: c\ninputs: {x: [1.5, -2.0, 0.5, 3.0]}\nfunction: prod(x)\npoints: auto\n")
    result = verify_case(case)
    kinds = _kinds(result)
    assert "with one exact zero in x" in kinds and "with two exact zeros in x" in kinds
    two = result.points[result.point_kinds.index("with two exact zeros in x")]["x"]
    assert int((np.asarray(two) == 0).sum()) == 2
    assert result.status == "pass"


def test_linear_algebra_gets_a_dense_non_symmetric_matrix(tmp_path):
    (case,) = _case(tmp_path, "name: c\ninputs: {A: [[2.0, 0.0], [0.0, 3.0]], b: [1.0, 2.0]}\n"
                              "function: sum(A @ b)\npoints: auto\n")
    result = verify_case(case)
    k = result.point_kinds.index("at a dense random non-symmetric A")
    a = np.asarray(result.points[k]["A"])
    assert not np.allclose(a, a.T) and np.all(a != 0)


def test_the_tails_are_added_only_where_the_function_exists(tmp_path):
    cases = _case(tmp_path, "- name: s\n  inputs: {x: 0.5}\n  function: tanh(x)\n  points: auto\n"
                            "- name: l\n  inputs: {x: 0.5}\n  function: log(x)\n  points: auto\n")
    tanh, log = (verify_case(c) for c in cases)
    assert "in the tail x = -40" in _kinds(tanh) and "in the tail x = 40" in _kinds(tanh)
    assert "in the tail x = 40" in _kinds(log) and "in the tail x = -40" not in _kinds(log)


def test_torchs_tanh_in_its_float32_tail_is_a_saturated_finding(tmp_path):
    (case,) = _case(tmp_path, "name: ops.t\nop: torch.tanh\ninputs: {x: 0.5}\nfunction: tanh(x)\ndtype: float32\n")
    result = verify_case(case)
    assert result.status == "finding"
    assert "saturated" in result.diagnoses()


class _TailOff(torch.autograd.Function):
    """sin whose backward is off in the 'scalar tail' past the last multiple of 8 elements."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        out = torch.cos(x) * g
        n = (x.numel() // 8) * 8
        out[n:] = out[n:] * 1.001
        return out


def test_a_gradient_that_depends_on_the_elements_position_is_found():
    x = torch.tensor([0.3, 1.2, -0.7], dtype=torch.float64)
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(_TailOff.apply, "sin(x)", {"x": x}, checks=["positions"])
    assert "depends on the element's position" in str(info.value)


def test_a_position_independent_gradient_passes_the_positions_check():
    x = torch.tensor([0.3, 1.2, -0.7], dtype=torch.float32)
    result = assert_gradients_match(torch.sigmoid, "sigmoid(x)", {"x": x}, checks=["positions"])
    (check,) = [c for c in result.checks if c.check == "positions"]
    assert check.comparisons and not check.skipped


def test_a_reduction_is_not_resized_by_the_positions_check():
    x = torch.tensor([0.3, 1.2, -0.7], dtype=torch.float64)
    result = assert_gradients_match(lambda x: x.sum(), "sum(x)", {"x": x}, checks=["positions"])
    (check,) = [c for c in result.checks if c.check == "positions"]
    assert check.skipped and "element-wise" in check.skipped

"""The seed tutorial reproduced exactly (seed-notes §3, issue 19): its data drawn by torch's own generator in its
order, its module's own initialisation, its loops' numbers; and the train check's report of where a loop stopped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from verifier.case.loading import load_cases
from verifier.case.validate import build_case
from verifier.errors import CaseError
from verifier.report import overview, run_json
from verifier.results import RunResult
from verifier.runner import verify_case

from .conftest import CASES


def _case(name: str, file: str = "06_training.yaml"):
    return next(c for c in load_cases(CASES / "seed" / file) if c.name == name)


def _train(result):
    (check,) = [c for c in result.checks if c.check == "train"]
    assert check.train is not None
    return check, check.train


def _tutorial_data():
    """The tutorial's own lines, run here independently of the verifier."""
    torch.manual_seed(10)
    x = torch.rand(20, 1) * 10
    noise = torch.randn(20, 1)
    w = torch.randn(1)
    return x, noise, w


def test_the_drawn_inputs_are_the_tutorials_own_numbers():
    from verifier.torchside.draws import materialize

    case = materialize(_case("seed.train_linear_regression"))
    x, noise, w = _tutorial_data()
    values = {i.name: i.value for i in case.inputs}
    assert np.array_equal(values["X"], x.double().numpy())
    assert np.array_equal(values["noise"], noise.double().numpy())
    assert np.array_equal(values["w"], w.double().numpy())
    assert np.array_equal(case.points[0]["X"], values["X"])  # the point reads the drawn values, not the placeholder


def test_the_linear_regression_stops_where_the_tutorial_stops():
    result = verify_case(_case("seed.train_linear_regression"))
    assert result.status == "pass", overview.train_lines(result)
    check, t = _train(result)
    assert t.iterations - 1 == 78 and t.stopped == "stop_below"
    assert round(t.losses[-1], 4) == 0.9955
    assert round(t.params["w"][0], 4) == 2.5615 and round(t.params["b"][0], 4) == 1.7831
    assert len(t.exact_losses) == t.iterations  # the exact-gradient loop stops at the same iteration
    assert not t.diverged
    line = overview.train_lines(result)[0]
    assert "stopped at iteration 78" in line and "w = 2.5615" in line and "b = 1.7831" in line


def test_the_logistic_regression_runs_as_the_tutorial_prints():
    result = verify_case(_case("seed.train_logistic_regression"))
    assert result.status == "pass", overview.train_lines(result)
    _, t = _train(result)
    assert t.iterations == 100 and t.stopped == "steps"
    assert [round(t.losses[k], 4) for k in (0, 20, 40, 60, 80)] == [0.8746, 0.6251, 0.5542, 0.5159, 0.4843]
    assert [round(t.metrics["accuracy"][k], 3) for k in (0, 80)] == [0.505, 0.79]
    assert [round(v, 4) for v in t.params["W"][0]] == [-0.2353, -0.1430] and round(t.params["b"][0], 4) == 1.3647
    log = overview.train_lines(result, verbose=True)
    assert any("iteration 20: loss 0.6251" in line and "accuracy 0.515" in line for line in log)


def test_drawing_leaves_the_callers_generator_and_dtype_as_they_were():
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    dtype = torch.get_default_dtype()
    verify_case(_case("seed.logistic_regression_loss", "03_using_gradients.yaml"))
    assert torch.equal(torch.get_rng_state(), before) and torch.get_default_dtype() == dtype


LINEAR = {
    "name": "t", "torch_seed": 10, "dtype": "float32",
    "inputs": {"X": {"draw": "rand", "shape": [20, 1], "scale": 10, "requires_grad": False},
               "noise": {"draw": "randn", "shape": [20, 1], "requires_grad": False},
               "w": {"draw": "randn", "shape": [1]}, "b": {"value": "zeros", "shape": [1]}},
    "define": {"Y": "2*X + 5 + noise"}, "function": "mean(0.5*(Y - (w*X + b))**2)", "checks": ["train"],
}


def test_a_diverging_loop_is_a_fact_and_fails_only_when_it_should_converge():
    """lr 0.5 on the tutorial's regression: the loss grows without bound (the step is too long for its curvature)."""
    train = {"params": ["w", "b"], "lr": 0.5, "steps": 12}
    result = verify_case(build_case({**LINEAR, "train": train}))
    _, t = _train(result)
    assert t.diverged and result.status == "pass"  # the gradients are right: the run is reported, not failed
    assert "diverged" in "\n".join(overview.train_lines(result))
    strict = verify_case(build_case({**LINEAR, "train": {**train, "expect": "converges"}}))
    check, _ = _train(strict)
    assert strict.status == "fail" and any(not f.passed and "converges" in f.label for f in check.facts)


def test_a_converging_loop_with_expect_converges_passes_and_never_reaching_stop_below_fails():
    ok = verify_case(build_case({**LINEAR, "train": {"params": ["w", "b"], "lr": 0.05, "steps": 100,
                                                     "stop_below": 1.0, "expect": "converges"}}))
    assert ok.status == "pass"
    short = verify_case(build_case({**LINEAR, "train": {"params": ["w", "b"], "lr": 0.05, "steps": 5,
                                                        "stop_below": 1.0, "expect": "converges"}}))
    assert short.status == "fail" and _train(short)[1].stopped == "steps"


def test_the_json_carries_the_loop():
    result = verify_case(_case("seed.train_linear_regression"))
    doc = run_json(RunResult(cases=[result]))
    (train,) = [c["train"] for c in doc["cases"][0]["checks"] if "train" in c]
    assert train["last_iteration"] == 78 and train["stopped"] == "stop_below"
    assert round(train["final_loss"], 4) == 0.9955 and round(train["params"]["w"][0], 4) == 2.5615
    assert isinstance(doc["schema_version"], int)


@pytest.mark.parametrize("inputs, extra, message", [
    ({"x": {"draw": "rand", "shape": [2]}}, {}, "a drawn input needs the case's torch_seed"),
    ({"x": {"draw": "uniform", "shape": [2]}}, {"torch_seed": 1}, "draw is one of rand, randn, normal, module"),
    ({"x": {"draw": "rand"}}, {"torch_seed": 1}, "a drawn input needs its shape"),
    ({"x": {"draw": "rand", "shape": [2], "std": 2}}, {"torch_seed": 1}, "std does not apply to draw: rand"),
    ({"x": {"draw": "normal", "shape": [2], "std": 0}}, {"torch_seed": 1}, "std must be finite and > 0"),
    ({"x": {"draw": "rand", "shape": [2], "colour": 1}}, {"torch_seed": 1}, "unknown key 'colour'"),
    ({"x": {"draw": "module", "param": "features.weight", "shape": [1, 2]}}, {"torch_seed": 1},
     "the case needs an impl and module_params"),
    ({"x": {"draw": "module", "param": "__class__", "shape": [1]}}, {"torch_seed": 1}, "draw: module names"),
    ({"x": {"draw": "rand", "shape": [2]}}, {"torch_seed": -1}, "torch_seed is torch.manual_seed's argument"),
])
def test_bad_draws_name_the_field(inputs, extra, message):
    with pytest.raises(CaseError) as info:
        build_case({"name": "t", "inputs": inputs, "function": "sum(x)", **extra})
    assert message in str(info.value)


def test_a_module_without_the_named_parameter_is_the_cases_verdict():
    doc = {"name": "t", "torch_seed": 0, "impl": "verifier.examples:TutorialLogisticLoss",
           "module_params": {"model.features.weights": "W"},
           "inputs": {"X0": {"value": [[1.0, 2.0]], "requires_grad": False},
                      "X1": {"value": [[1.0, 2.0]], "requires_grad": False},
                      "W": {"draw": "module", "param": "model.features.weights", "shape": [1, 2]}},
           "function": "sum(X0 @ transpose(W)) + sum(X1)"}
    result = verify_case(build_case(doc))
    assert result.status == "error" and "has no parameter 'model.features.weights'" in result.user_error

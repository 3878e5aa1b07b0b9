"""Implementation cases, module parameters, the train check and its helper, expected failures."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from verifier import GradientMismatch
from verifier.assertions import assert_training_step_matches
from verifier.case.loading import collect, load_cases
from verifier.examples import sgd_step, sgd_step_without_zero_grad
from verifier.report.text import case_text
from verifier.runner import verify_case
from verifier.torchside.paths import Why

from .conftest import CASES, ROOT


def test_bundled_implementation_and_training_cases():
    results = {c.name: verify_case(c) for c in load_cases(CASES / "implementations")}
    assert {n: r.status for n, r in results.items()} == dict.fromkeys(results, "pass")
    exp = results["impl.custom_exp"]
    jvp = [c for c in exp.checks if c.check == "jvp"][0]
    assert any(u.path == "forward_ad" and u.why is Why.FUNCTION_LACKS and u.needs == ("JVP",) for u in jvp.unsupported)


def test_a_missing_impl_module_is_bad_input(write_case, tmp_path):
    write_case("- name: missing\n  inputs: {x: 1.0}\n  function: x\n  impl: no_such_module:f\n"
               "- name: fine\n  inputs: {x: 1.0}\n  function: x**2\n  checks: [value]\n")
    out = subprocess.run([sys.executable, "-m", "verifier", "run", str(tmp_path)], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 2  # bad input: one clear line naming the key, no traceback
    assert "case 'missing', key 'impl': impl: no module named 'no_such_module'" in out.stdout
    assert "Traceback" not in out.stdout
    assert "1 passed, 1 invalid" in out.stdout


@pytest.mark.parametrize("impl, words", [
    ("verifier.examples:NoSuchThing", "impl: 'verifier.examples' has no attribute 'NoSuchThing'"),
    ("verifier.examples:torch", "is a module, not callable"),
])
def test_an_impl_that_names_nothing_callable_is_bad_input(write_case, tmp_path, impl, words):
    write_case(f"- name: bad\n  inputs: {{x: 1.0}}\n  function: x\n  impl: {impl!r}\n")
    out = subprocess.run([sys.executable, "-m", "verifier", "run", str(tmp_path)], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 2 and words in out.stdout and "Traceback" not in out.stdout


def test_a_missing_import_inside_user_code_stays_its_verdict(tmp_path):
    (tmp_path / "needs_more.py").write_text("import no_such_dependency\n\ndef f(x):\n    return x\n")
    path = tmp_path / "c.yaml"
    path.write_text("name: dep\ninputs: {x: 1.0}\nfunction: x\nimpl: needs_more:f\n")
    result = verify_case(load_cases(path)[0])
    assert result.status == "error" and "No module named 'no_such_dependency'" in (result.user_error or "")


def test_exception_in_user_code_is_a_verdict_with_traceback(tmp_path):
    (tmp_path / "bad_impl.py").write_text("def f(x):\n    raise ValueError('boom in user code')\n")
    path = tmp_path / "c.yaml"
    path.write_text("name: boom\ninputs: {x: 1.0}\nfunction: x\nimpl: bad_impl:f\nchecks: [value, backward]\n")
    result = verify_case(load_cases(path)[0])
    assert result.status == "error"
    assert "ValueError: boom in user code" in case_text(result)


def test_module_params_must_exist(write_case):
    path = write_case("name: m\ninputs: {W: [[1.0, 2.0]], b: [0.0], X: {value: [[1.0, 2.0]], requires_grad: false}, "
                      "y: {value: [1.0], requires_grad: false}}\nfunction: sum(X @ W[0] + b)\n"
                      "impl: verifier.examples:LogisticRegression\nmodule_params: {weights: W, linear.bias: b}\n")
    result = verify_case(load_cases(path)[0])
    assert result.status == "error"
    assert "module_params names ['weights'], which the module does not have" in case_text(result)


@pytest.mark.parametrize("text, message", [
    ("impl: 'os.system(1)'", "key 'impl': impl is 'package.module:attr' (names only, no '__')"),
    ("impl: 'a:b'\nimpl_args: [{x: !!binary aGk=}]", "key 'impl_args': impl_args is a list of plain values"),
    ("module_params: {w: x}", "key 'module_params': module_params needs an impl"),
    ("impl: 'a:b'\nmodule_params: {w: zz}", "key 'module_params': module_params maps a module parameter name"),
    ("train: {steps: 0}", "key 'train.steps': steps is an integer 1..10000, got a number (0)"),
    ("train: {optimizer: rmsprop}", "key 'train.optimizer': optimizer is one of sgd, adam"),
    ("train: {lr: 0.1, momentum: 0.9, step: 'a:b'}", "key 'train.step': a user's step is checked with plain SGD"),
    ("expect_failure: boom", "key 'expect_failure': expect_failure is a diagnosis, one of accumulated"),
])
def test_new_keys_are_validated(write_case, text, message):
    path = write_case(f"name: k\ninputs: {{x: 1.0}}\nfunction: x**2\n{text}\n")
    (error,) = collect([path]).errors
    assert message in str(error)


def test_missing_zero_grad_is_named_at_the_first_wrong_step():
    (case,) = [c for c in load_cases(CASES / "seed") if c.name == "seed.train_linear_regression_missing_zero_grad"]
    result = verify_case(case)
    assert result.status == "xfail" and "missing_zero_grad" in result.diagnoses()
    from dataclasses import replace

    text = case_text(verify_case(replace(case, expect_failure=None)))
    assert "gradient used for w at each step (first wrong at step 2 of 10) via user step" in text
    assert ("diagnosis: the gradient at step t equals the sum of the exact gradients of steps 1..t: zero_grad() / "
            "grad.zero_() is missing") in text


def test_expected_failure_that_does_not_happen_fails(write_case):
    path = write_case("name: e\ninputs: {x: 1.0}\nfunction: x**2\nchecks: [value]\nexpect_failure: sign\n")
    result = verify_case(load_cases(path)[0])
    assert result.status == "fail"
    assert "expected a failure diagnosed 'sign', but every check passed" in case_text(result)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(10, generator=g, dtype=torch.float64) * 4
    return {"w": torch.tensor(0.5, dtype=torch.float64), "b": torch.tensor(0.0, dtype=torch.float64),
            "x": x, "y": 3 * x + 1}


def test_training_step_helper():
    result = assert_training_step_matches(sgd_step, "mean((w*x + b - y)**2)", _data(), params=["w", "b"], lr=0.01)
    assert result.status == "pass"
    with pytest.raises(GradientMismatch, match="zero_grad\\(\\) / grad.zero_\\(\\) is missing"):
        assert_training_step_matches(sgd_step_without_zero_grad, "mean((w*x + b - y)**2)", _data(),
                                     params=["w", "b"], lr=0.01)

"""Hostile and huge input: limits with the flag that raises them, timeouts, numerically hostile points,
interrupted runs. Each test fails if its protection is removed."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from verifier.case.loading import collect
from verifier.case.validate import case_from_expression
from verifier.errors import LimitError
from verifier.limits import LIMITS, configure
from verifier.runner import verify_case

from .conftest import ROOT


@pytest.fixture
def restore_limits():
    saved = dict(vars(LIMITS))
    yield
    configure(**saved)


def test_explosive_derivation_times_out_for_that_case_only(write_case, tmp_path):
    write_case("""\
- name: explosive
  inputs: {x: 0.3}
  function: exp(exp(exp(exp(exp(sin(x)*cos(x)))))) * prod(x)**3
  order: 6
  checks: [higher]
- name: fine
  inputs: {x: 0.3}
  function: x**2
""")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "verifier", "run", str(tmp_path), "--timeout", "2", "--json",
                          str(tmp_path / "r.json")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert time.perf_counter() - start < 60
    assert out.returncode == 1  # a timed-out case is a failed verdict (2 is for bad input)
    assert "TIMEOUT explosive" in out.stdout and "stopped after 2 s (raise the limit with --timeout)" in out.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert {c["case"]: c["verdict"] for c in data["cases"]} == {"explosive": "timeout", "fine": "pass"}


def test_symbol_limit_names_its_flag(restore_limits):
    configure(symbols=10)
    case = case_from_expression("sum(x)", {"x": {"value": "ones", "shape": [20]}})
    result = verify_case(case)
    assert result.status == "invalid"
    assert "the inputs have 20 elements; element-wise expansion is limited to 10 (raise it with --max-symbols)" in \
        str(result.error)


def test_order_limit_names_its_flag(restore_limits):
    configure(derivatives=50)
    case = case_from_expression("sum(exp(x))", {"x": {"value": "ones", "shape": [8]}}, order=3, checks=["higher"])
    result = verify_case(case)
    assert "order-2 derivatives of 8 variables need 36 expressions; the limit is 50" not in str(result.error)
    assert "order-3 derivatives of 8 variables need 120 expressions; the limit is 50 (lower `order`, or raise it " \
           "with --max-derivatives)" in str(result.error)


def test_yaml_size_limit(write_case, restore_limits):
    configure(yaml_bytes=100)
    path = write_case("name: a\ninputs: {x: 1}\nfunction: x\ndescription: '" + "y" * 200 + "'\n")
    (error,) = collect([path]).errors
    assert isinstance(error, LimitError)
    assert "the limit is 100 (split the file, or raise it with --max-yaml-bytes)" in str(error)


def test_yaml_depth_limit(write_case):
    path = write_case("name: a\ninputs: {x: 1}\nfunction: x\ntags: " + "[" * 40 + "]" * 40 + "\n")
    (error,) = collect([path]).errors
    assert "YAML nests deeper than 32 levels (raise it with --max-yaml-depth)" in str(error)


def test_element_limit(write_case):
    path = write_case("name: a\ninputs:\n  x: {value: zeros, shape: [100000, 1000]}\nfunction: x\n")
    (error,) = collect([path]).errors
    assert ":3, case 'a', key 'inputs.x'" in str(error)
    assert "has 100000000 elements; the limit is 10000000 (raise it with --max-elements)" in str(error)


def test_cli_flag_raises_a_limit(write_case, tmp_path):
    # indexing is not element-wise, so this case needs element expansion (sum(x) alone is vectorised at any size)
    path = write_case("name: a\ninputs:\n  x: {value: ones, shape: [5000]}\nfunction: sum(x) + x[0]\nchecks: [value]\n")
    low = subprocess.run([sys.executable, "-m", "verifier", "run", str(path)], capture_output=True, text=True,
                         cwd=ROOT)
    assert low.returncode == 2 and "--max-symbols" in low.stdout
    high = subprocess.run([sys.executable, "-m", "verifier", "run", str(path), "--max-symbols", "6000"],
                          capture_output=True, text=True, cwd=ROOT)
    assert high.returncode == 0, high.stdout


@pytest.mark.parametrize("expr, at, reason", [
    ("log(x)", -1.0, "the function is undefined at x[0] = -1: log of a negative number (-1)"),
    ("sqrt(x)", -2.0, "the function is undefined at x[0] = -2: square root of a negative number (-2)"),
    ("asin(x)", 2.0, "the function is undefined at x[0] = 2: asin of 2, outside [-1, 1]"),
    ("1/x", 0.0, "the function has a pole at x[0] = 0: division by zero (x[0] = 0)"),
    ("log(x)", 0.0, "the function has a pole at x[0] = 0: log of zero"),
    ("lgamma(x)", -2.0, "the function has a pole at x[0] = -2: lgamma at the non-positive integer -2"),
    ("x + 1", float("nan"), "the input x[0] = nan is not a finite number"),
    ("x * 2", float("inf"), "the input x[0] = inf is not a finite number"),
])
def test_numerically_hostile_points_are_verdicts(expr, at, reason):
    case = case_from_expression(expr, {"x": [at, 0.5]})
    result = verify_case(case)
    assert result.crashed is None and result.error is None
    value = [c for c in result.checks if c.check == "value"][0].comparisons[0]
    assert value.undefined[0] == reason
    assert value.passed  # the other element is still compared, and passes
    assert result.status == "pass", [c.check for c in result.checks if c.status != "pass"]


def test_overflow_is_noted():
    result = verify_case(case_from_expression("exp(x)", {"x": 1000.0}, checks=["value"]))
    assert result.status == "pass"
    assert result.checks[0].comparisons[0].notes == {0: "the exact value 1.97007e+434 overflows float64"}


def test_interrupted_run_writes_what_finished(write_case, tmp_path):
    write_case("- name: first\n  inputs: {x: 1.0}\n  function: sin(x)\n- name: second\n  inputs: {x: 1.0}\n"
               "  function: cos(x)\n")
    report = tmp_path / "r.json"
    code = f"""
import verifier.runner as r
real = r.verify_with
def interrupting(case, config, program=None):
    if case.name == "second":
        raise KeyboardInterrupt
    return real(case, config, program)
r.verify_with = interrupting
from verifier.cli import main
raise SystemExit(main(["run", {str(tmp_path)!r}, "--json", {str(report)!r}]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 130
    data = json.loads(report.read_text())
    assert data["complete"] is False and [c["case"] for c in data["cases"]] == ["first"]
    assert data["exit_code"] == 130  # the process's own exit code (it said 1)
    assert "(interrupted: incomplete)" in out.stdout


def test_a_timed_out_case_is_a_failed_verdict_and_the_json_says_the_exit_code(write_case, tmp_path):
    write_case("- name: slow\n  inputs: {x: {shape: [4000], sample: {uniform: [0.1, 1]}}}\n"
               "  function: sum(sin(x)**3 * exp(cos(x)) / (1 + x**2))\n  reference: expand\n")
    report = tmp_path / "r.json"
    out = subprocess.run([sys.executable, "-m", "verifier", "run", str(tmp_path), "--timeout", "0.5", "--json",
                          str(report), "--max-symbols", "5000"], capture_output=True, text=True, cwd=ROOT)
    data = json.loads(report.read_text())
    assert out.returncode == 1 and data["exit_code"] == 1, out.stdout[-500:]
    assert data["cases"][0]["verdict"] == "timeout"


def test_impl_with_define_and_infinite_inputs_do_not_crash(write_case, tmp_path):
    write_case("- name: impl_define\n  inputs: {x: [0.5, 1.0]}\n  define: {a: exp(x)}\n  function: a\n"
               "  impl: verifier.examples:Exp\n"
               "- name: inf_input\n  inputs: {x: [1.0, 2.0]}\n  points: [{x: [.inf, 1.0]}]\n  function: x**2\n")
    report = tmp_path / "r.json"
    out = subprocess.run([sys.executable, "-m", "verifier", "run", str(tmp_path), "--json", str(report)],
                         capture_output=True, text=True, cwd=ROOT)
    data = json.loads(report.read_text())  # written: inf as the string 'inf'
    assert out.returncode == 0, out.stdout[-1500:]
    assert {c["case"]: c["verdict"] for c in data["cases"]} == {"impl_define": "pass", "inf_input": "pass"}
    assert data["cases"][1]["points"] == [{"x": ["inf", 1.0]}]


def test_torch_refusing_a_singular_point_is_a_verdict_not_a_traceback():
    from verifier.runner import verify_case

    result = verify_case(case_from_expression("sum(inv(A))", {"A": [[1.0, 2.0], [2.0, 4.0]]}))
    assert result.status == "pass" and not any(c.error for c in result.checks)
    facts = [f for c in result.checks for f in c.facts if "LinAlgError" in f.label]
    assert facts and all(f.passed for f in facts) and "the inversion could not be completed" in facts[0].note

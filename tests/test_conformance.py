"""The conformance suite (issue 6): verdicts of their own kind for torch's own ops (findings, classified edges),
the edge classification, the exact facts at kinks and poles, the sweep in ULPs and the conventions document."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from verifier.case.loading import load_cases, load_file
from verifier.case.validate import case_from_expression
from verifier.cli import main
from verifier.errors import CaseError
from verifier.language.ops import ELEMENTWISE, OPS, Op, register_op
from verifier.reference.choice import make_reference
from verifier.runner import verify_case
from verifier.survey.sweep import sample, sweep_case

from .conftest import CASES


def _case(expr, inputs, **kw):
    return case_from_expression(expr, inputs, name="t", **kw)


def _edges(result):
    return [e for ch in result.checks for c in ch.comparisons for e in c.edges]


# --- the exact facts -------------------------------------------------------------------------------------------


def test_a_kink_away_from_zero_is_found():
    # Regression: x + 1e-25 was computed at mpmath's default 15 digits and rounded back to x, so only kinks at 0 had
    # one-sided derivatives; hardtanh at 1 got the value of one branch.
    ref = make_reference(_case("max(-1, min(1, x))", {"x": 1.0}))
    jac = ref.at({"x": np.array(1.0)}).jacobian("x")
    assert bool(jac.kinks) and {float(jac.lo), float(jac.hi)} == {0.0, 1.0}


def test_higher_derivatives_are_one_sided_at_a_kink():
    # elu'' jumps from exp(0) = 1 to 0 at x = 0: both sides, not the value of the branch the point falls in
    ref = make_reference(_case("elu(x)", {"x": 0.0}))
    d2 = ref.at({"x": np.array(0.0)}).derivative(2)
    assert d2.kinks.all() and {float(d2.lo.reshape(-1)[0]), float(d2.hi.reshape(-1)[0])} == {0.0, 1.0}


def test_an_infinite_one_sided_derivative_is_a_pole_not_a_kink():
    ref = make_reference(_case("where(x > 0, sqrt(x), 0 * x)", {"x": 0.0}))
    jac = ref.at({"x": np.array(0.0)}).jacobian("x")
    assert 0 in jac.undefined and "right derivative is infinite" in jac.undefined[0]


def test_sinc_derivatives_are_exact_at_zero_and_away():
    from verifier.reference.numeric.table import mp_sinc as sinc
    from verifier.reference.numeric.table import mp_sinc_derivative as sinc_derivative
    from verifier.reference.numeric.table import np_sinc_derivative as sinc_derivative_np

    with mpmath.workdps(40):
        for x in (0, 1e-9, 0.3, -0.9, 2.5, -7.25):
            for n in (1, 2, 3):
                exact = mpmath.diff(sinc, mpmath.mpf(x), n)
                assert abs(sinc_derivative(n, mpmath.mpf(x)) - exact) <= mpmath.mpf(10) ** -30 * max(1, abs(exact))
                assert sinc_derivative_np(n, np.array([x]))[0] == pytest.approx(float(exact), rel=1e-13, abs=1e-15)
    assert float(sinc_derivative(2, mpmath.mpf(0))) == pytest.approx(-math.pi**2 / 3)


def test_a_pole_in_one_input_leaves_the_others_gradient_defined_in_reverse_mode():
    # a**b at a = -2, b = 3: d/da = 12 exists; d/db = a^b log(a) does not. y.backward() has no zero weight, so the
    # Jacobian's row rule (for jacfwd's zero tangents) must not take d/da out.
    result = verify_case(_case("a ** b", {"a": -2.0, "b": 3.0}, checks=["backward"]))
    grads = {c.wrt: c for c in result.checks[0].comparisons if c.path == "y.backward()"}
    assert not grads["a"].undefined and grads["a"].passed
    assert grads["b"].undefined


def test_a_pole_takes_out_the_higher_derivatives_through_it():
    # Regression: the Hessian of sum(asin(x)) at x = [1, 0.5] has H[0, 1] = 0 exactly, but torch's double backward
    # multiplies asin's infinite derivative at 1 by zero and returns NaN; that is 0·inf, not a wrong derivative.
    result = verify_case(_case("sum(asin(x))", {"x": [1.0, 0.5]}, checks=["higher"]))
    assert result.status == "pass", result.checks
    kinds = {e.kind for e in _edges(result)}
    assert "0·inf" in kinds


def test_xlogy_conventions_are_classified():
    result = verify_case(_case("xlogy(a, b)", {"a": 0.0, "b": 0.0}, op="torch.xlogy", checks=["backward"]))
    assert result.status == "edge"
    by_input = {c.wrt: c.edges for c in result.checks[0].comparisons if c.path == "y.backward()"}
    assert [e.kind for e in by_input["a"]] == ["pole"]  # d/da = log(b) at b = 0
    # d/db = a/b is 0·inf at a = b = 0, but xlogy(0, b) = 0 for every b: its limit, 0, is the derivative; torch
    # computes a/b and returns NaN
    (edge,) = by_input["b"]
    assert (edge.kind, edge.left, math.isnan(edge.got), edge.accepted) == ("removable singularity", 0.0, True, False)


def test_nan_from_an_untaken_branch_is_a_finding():
    # x = -1 is an ordinary point of where(x > 0, sqrt(x), 0 x): the exact derivative is 0 and torch's NaN (the
    # untaken sqrt branch's derivative leaking through where) is a finding, not an edge
    result = verify_case(_case("where(x > 0, sqrt(x), 0 * x)", {"x": -1.0}, op="torch.where", checks=["backward"]))
    assert result.status == "finding" and "nonfinite" in result.diagnoses()


# --- verdicts --------------------------------------------------------------------------------------------------


def test_a_kink_of_a_conformance_case_is_an_edge_and_fails_when_strict():
    plain = verify_case(_case("relu(x)", {"x": 0.0}))
    conformance = verify_case(_case("relu(x)", {"x": 0.0}, op="torch.relu"))
    strict = verify_case(_case("relu(x)", {"x": 0.0}, op="torch.relu"), strict=True)
    assert (plain.status, conformance.status, strict.status) == ("pass", "edge", "fail")
    kink = next(e for e in _edges(conformance) if e.kind == "kink")
    assert (kink.left, kink.right, kink.got, kink.side) == (0.0, 1.0, 0.0, "left")


def _sin_with_backward(cos):
    """torch.sin with a hand-written backward that uses cos(x) for the derivative."""

    class Sin(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.sin(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * cos(x)

    return Sin


_Float32Sin = _sin_with_backward(lambda x: torch.cos(x.float()).to(x.dtype))  # inaccurate, not wrong
_WrongSin = _sin_with_backward(lambda x: -torch.cos(x))  # the sign is flipped


@pytest.fixture()
def test_ops():
    for name, fn in (("sin_f32_backward", _Float32Sin), ("sin_wrong_backward", _WrongSin)):
        register_op(Op(name, ELEMENTWISE, (1, 1), lambda S, x: S.sin(x), lambda T, x, fn=fn: fn.apply(x)), replace=True)
    yield
    for name in ("sin_f32_backward", "sin_wrong_backward"):
        OPS.pop(name, None)


@pytest.mark.parametrize("name, diagnosis", [("sin_f32_backward", "inaccurate"), ("sin_wrong_backward", "sign")])
def test_a_bad_gradient_of_a_conformance_case_is_a_finding(test_ops, name, diagnosis):
    case = _case(f"{name}(x)", {"x": [0.3, 1.1, 2.5]}, op="torch.sin", checks=["backward", "vjp"])
    result = verify_case(case)
    assert result.status == "finding" and diagnosis in result.diagnoses()
    assert verify_case(case, strict=True).status == "fail"
    assert verify_case(_case(f"{name}(x)", {"x": [0.3, 1.1, 2.5]}, checks=["backward", "vjp"])).status == "fail"


def test_findings_and_edges_do_not_fail_a_run_unless_strict(tmp_path, capsys):
    f = tmp_path / "ops.yaml"
    f.write_text("- {name: ops.relu, op: torch.relu, inputs: {x: 0.5}, points: [{x: 0.0}], function: relu(x)}\n"
                 "- {name: ops.hardsigmoid, op: torch.nn.functional.hardsigmoid, inputs: {x: 0.0}, "
                 "function: hardsigmoid(x), dtype: float64, checks: [backward]}\n")
    assert main(["run", str(f), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 at classified edges, 1 with findings" in out
    assert "FINDING ops.hardsigmoid [backward]" in out  # torch computes 1/6 in float32 for float64 tensors
    assert "1 conformance case(s) at classified edges only" in out and "EDGE ops.relu" not in out  # -v lists them
    assert main(["run", str(f), "--no-progress", "-v"]) == 0
    out = capsys.readouterr().out
    assert "EDGE ops.relu: kink at x = 0 (point 1): left 0, right 1; torch 0 (accepted (left))" in out
    assert "FINDING ops.hardsigmoid [backward]" in out
    assert main(["run", str(f), "--no-progress", "--strict"]) == 1


# --- case files ------------------------------------------------------------------------------------------------


def test_a_dtype_list_makes_one_case_per_dtype(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("name: ops.sin\nop: torch.sin\ninputs: {x: 0.5}\nfunction: sin(x)\ndtype: [float64, float32]\n"
                 "sweep: {x: [-10, 10]}\n")
    cases, errors = load_file(f)
    assert not errors
    assert [(c.name, c.dtype, c.op, c.sweep["x"]) for c in cases] == [
        ("ops.sin.float64", "float64", "torch.sin", (-10.0, 10.0)), ("ops.sin.float32", "float32", "torch.sin", (-10.0, 10.0))]


@pytest.mark.parametrize("extra, key", [
    ("dtype: [float64, float64]", "dtype"), ("dtype: [float8]", "dtype"), ("dtype: []", "dtype"),
    ("op: 'torch.sin; import os'", "op"), ("op: 3", "op"), ("sweep: {x: [1, 0]}", "sweep.x"),
    ("sweep: {y: [0, 1]}", "sweep"), ("sweep: {x: [0, .inf]}", "sweep.x"),
])
def test_bad_conformance_keys_name_the_key(tmp_path, extra, key):
    f = tmp_path / "c.yaml"
    f.write_text(f"name: c\ninputs: {{x: 0.5}}\nfunction: sin(x)\n{extra}\n")
    cases, errors = load_file(f)
    assert not cases and errors[0].key == key and errors[0].line is not None


def test_the_ops_suite_covers_at_least_80_ops_in_both_dtypes():
    cases = load_cases(CASES / "ops")
    ops = {c.op for c in cases}
    assert all(c.op for c in cases) and len(ops) >= 80
    assert {c.dtype for c in cases} == {"float64", "float32"}
    assert {"torch.sinc", "torch.nn.functional.elu", "torch.hypot", "torch.xlogy", "torch.copysign", "torch.std",
            "torch.var", "torch.cumsum", "torch.cumprod", "torch.nn.functional.cross_entropy",
            "torch.nn.functional.binary_cross_entropy", "torch.nn.functional.mse_loss", "torch.nn.functional.huber_loss",
            "torch.nn.functional.smooth_l1_loss", "torch.nn.functional.kl_div", "torch.linalg.slogdet"} <= ops


# --- the sweep -------------------------------------------------------------------------------------------------


def test_samples_are_log_spaced_over_wide_domains_and_float32_numbers():
    rng = np.random.default_rng(0)
    wide = sample((0.0, 1e6), 20_000, rng)
    assert wide.min() >= 0 and wide.max() <= 1e6
    assert np.mean(wide < 1.0) > 0.2  # log-spaced: many points in the lower decades
    both = sample((-1000.0, 1000.0), 20_000, rng)
    assert (both < 0).mean() == pytest.approx(0.5, abs=0.05) and np.abs(both).min() < 1e-2
    narrow = sample((-1.0, 1.0), 1000, rng)
    assert np.array_equal(narrow, narrow.astype(np.float32).astype(np.float64))


def test_sweep_measures_ulps_and_flags_an_inaccurate_gradient(test_ops):
    good = sweep_case(_case("sin(x)", {"x": 0.5}, sweep={"x": [-100, 100]}), n=3000)
    assert good.points == 3000 and good.max_ulps <= 1.0 and not good.finding
    bad = sweep_case(_case("sin_f32_backward(x)", {"x": 0.5}, sweep={"x": [-100, 100]}), n=3000)
    assert bad.max_ulps > 1e3 and bad.finding
    assert bad.worst["ulps"] == bad.max_ulps


def test_sweep_of_a_non_elementwise_case_uses_random_cotangents():
    r = sweep_case(_case("softmax(x)", {"x": [0.5, 1.0, -2.0]}, sweep={"x": [-5, 5]}), n=600)
    assert r.samples == 200 and r.points == 600 and r.median_ulps < 4 and math.isfinite(r.max_ulps)


def test_sweep_command_writes_tables_and_plots(tmp_path, capsys):
    f = tmp_path / "ops.yaml"
    f.write_text("- {name: ops.tanh, op: torch.tanh, inputs: {x: 0.5}, function: tanh(x), sweep: {x: [-20, 20]}, "
                 "dtype: [float64, float32]}\n")
    out = tmp_path / "out"
    assert main(["sweep", str(f), "--points", "500", "-o", str(out), "--plot"]) == 0
    md = (out / "sweep.md").read_text()
    assert "| torch.tanh | ops.tanh.float64 | float64 | 500 |" in md and f"--points 500 -o {out} --plot" in md
    assert len((out / "sweep.csv").read_text().splitlines()) == 3
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["ops.tanh.float32.png", "ops.tanh.float64.png"]


def test_conventions_document_lists_edges_and_findings(tmp_path):
    f = tmp_path / "ops.yaml"
    f.write_text("- {name: ops.relu, op: torch.relu, inputs: {x: 0.5}, points: [{x: 0.0}], function: relu(x), "
                 "dtype: [float64, float32]}\n"
                 "- {name: ops.hardsigmoid, op: torch.nn.functional.hardsigmoid, inputs: {x: 0.0}, "
                 "function: hardsigmoid(x), checks: [backward]}\n")
    doc = tmp_path / "conv.md"
    assert main(["conventions", str(f), "-o", str(doc)]) == 0
    text = doc.read_text()
    assert "| torch.relu | ops.relu | x = 0 | d/dx | kink | left 0, right 1 | 0 | 0 | accepted (left) |" in text
    assert "| ops.hardsigmoid | backward: grad wrt x | y.backward()" in text
    assert f"gradverify conventions {f} -o {doc}" in text


def test_bad_input_to_sweep_is_reported_not_raised(tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text("name: c\ninputs: {x: {value: 0.5, requires_grad: false}}\nfunction: sin(x)\n")
    assert main(["sweep", str(f), "--points", "10"]) == 2
    assert "no differentiable input" in capsys.readouterr().out
    with pytest.raises(CaseError):
        sweep_case(load_file(f)[0][0], n=10)


# --- limits at indeterminate formulas ---------------------------------------------------------------------------


def _backward_edges(expr, inputs, **kw):
    result = verify_case(_case(expr, inputs, op="torch.op", checks=["backward"], **kw))
    return {c.wrt: c.edges for c in result.checks[0].comparisons if c.path == "y.backward()"}


def test_an_indeterminate_formula_with_a_limit_is_a_removable_singularity():
    # d(a**b)/da = b a**b / a is 0·inf at a = 0, b = 2; along a the function is a**2, whose derivative there is 0
    (edge,) = _backward_edges("a ** b", {"a": 0.0, "b": 2.0})["a"]
    assert (edge.kind, edge.left, edge.got, edge.accepted) == ("removable singularity", 0.0, 0.0, True)
    assert "its limit is 0" in edge.reason


def test_a_cone_gets_its_one_sided_limits():
    # hypot at (0, 0): a/sqrt(a^2 + b^2) is 0·inf; along a it is a/|a|: -1 and 1. torch returns NaN there.
    (edge,) = _backward_edges("hypot(a, b)", {"a": 0.0, "b": 0.0})["a"]
    assert (edge.kind, edge.left, edge.right, math.isnan(edge.got), edge.accepted) == ("kink", -1.0, 1.0, True, False)


def test_a_jump_is_not_resolved_by_the_derivatives_limit():
    # atan2(a, 0) jumps from -pi/2 to pi/2 at a = 0: the derivative's formula b/(a^2 + b^2) tends to 0, but there is
    # no derivative, and the entry stays undefined (0·inf)
    (edge,) = _backward_edges("atan2(a, b)", {"a": 0.0, "b": 0.0})["a"]
    assert edge.kind == "0·inf" and math.isnan(edge.left)


def test_torch_differing_from_a_removable_limit_is_reported():
    # binary_cross_entropy at p = 0, y = 0: the exact derivative is 1/(1 - p)/n = 1/3; torch divides by
    # max(p (1 - p), 1e-12) and returns 0
    edges = _backward_edges("binary_cross_entropy(p, y)", {"p": [0.0, 0.5, 0.25], "y": [0.0, 1.0, 0.5]})["p"]
    (edge,) = [e for e in edges if e.index == (0,)]
    assert edge.kind == "removable singularity" and edge.left == pytest.approx(1 / 3) and edge.got == 0.0
    assert not edge.accepted


def test_cancellation_at_50_digits_is_not_taken_for_a_pole():
    # log(1 - erfc(y)/2) (how sympy writes log(ndtr(x)) for negative x) needs ~200 digits at x = -30: the exact
    # evaluation retries with more digits before it calls a point a pole
    case = _case("log(erfc(-x / sqrt(2)) / 2)", {"x": -30.0}, checks=["backward"])
    jac = make_reference(case).at({"x": np.array(-30.0)}).jacobian("x")
    assert not jac.undefined and float(jac.lo) == pytest.approx(30.033259667433676, rel=1e-15)


def test_sweep_evaluates_where_branches_per_point():
    # Regression: the array evaluator read a where()'s (value, condition) pairs wrongly and raised on every
    # Piecewise (elu, leaky_relu, huber_loss, copysign, where). The NaN of the untaken sqrt branch is counted.
    r = sweep_case(_case("where(x > 0, sqrt(x), 0 * x)", {"x": 0.5}, sweep={"x": [-10, 10]}), n=2000)
    assert r.points + r.nonfinite == 2000 and r.nonfinite > 500 and r.max_ulps <= 2 and r.finding
    assert sweep_case(_case("elu(x)", {"x": 0.5}, sweep={"x": [-10, 10]}), n=2000).max_ulps <= 2


def test_k_backward_calls_keep_the_facts_of_an_edge():
    # Regression: k x grad (retain_graph, accumulation) dropped the note of a removable singularity, so torch's 0
    # at binary_cross_entropy's p = 0 counted as a finding in those comparisons and as an edge in the first
    result = verify_case(_case("binary_cross_entropy(p, y)", {"p": [0.0, 0.5], "y": [0.0, 1.0]}, op="torch.bce",
                               checks=["backward", "accumulate"]))
    assert result.status == "edge", [(c.label, c.path, c.unclassified) for ch in result.checks for c in ch.comparisons
                                     if c.unclassified]

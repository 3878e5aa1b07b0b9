"""The case language speaks sympy and torch.special (issue 17, in part): sympy's spellings parse to the same meaning,
op parameters are keywords with torch's names, keepdim on reductions, and functions torch computes without a
derivative are "not supported", not failures."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

from verifier import CaseError
from verifier.case.validate import case_from_expression
from verifier.language.nodes import unparse
from verifier.language.parse import parse
from verifier.reference.numeric.mp import Evaluator
from verifier.reference.symbols import evaluate
from verifier.runner import verify_case

X, Y = sp.Symbol("x", real=True), sp.Symbol("y", real=True)


def _value(text: str, x: float, y: float) -> float:
    node = parse(text, {"x", "y"})
    expr = evaluate(node, {"x": np.array(X, dtype=object), "y": np.array(Y, dtype=object)}).item()
    with mpmath.workdps(30):
        return float(Evaluator({X: mpmath.mpf(x), Y: mpmath.mpf(y)})(expr))


# sympy expressions over the functions the language has, printed by sympy's own str(): they parse back to the same
# function (compared by value at points inside every domain)
SYMPY_EXPRESSIONS = [
    sp.Max(X, 0) + sp.Min(X, Y, 1), sp.Abs(X) * sp.sign(Y), sp.Piecewise((X**2, X < 0), (sp.sin(X), True)),
    sp.Piecewise((X, (X > 0) & (Y > 0)), (Y, X > 1), (0, True)), sp.loggamma(X + 3), sp.polygamma(0, X + 2),
    sp.polygamma(2, X + 2), sp.gamma(X + 2) / sp.gamma(Y + 2), sp.besseli(0, X), sp.besselj(1, X) + sp.besselk(0, Y + 2),
    sp.Heaviside(X, sp.Rational(1, 2)) * Y, sp.erf(X) - sp.erfc(Y), sp.erf2(X, Y), sp.cot(X + 2) + sp.sec(X) + sp.csc(Y + 2),
    sp.acot(X) + sp.asinh(Y), sp.coth(X + 2) * sp.sech(Y), sp.exp(X) * sp.log(Y + 3, 2), sp.floor(X * 3) + sp.ceiling(Y),
    sp.frac(X + 2), sp.atan2(Y, X + 2), sp.sqrt(X**2 + 1) / (1 + sp.exp(-Y)), sp.chebyshevt(3, X) + sp.legendre(2, Y),
    sp.hermite(3, X) - sp.laguerre(2, Y), sp.zeta(3, X + 2), sp.lowergamma(2, X + 3), sp.uppergamma(3, Y + 2),
    sp.airyai(X), sp.erfinv(X / 2), sp.erfcinv(Y / 4 + 1), sp.pi * sp.E ** X,
]


@pytest.mark.parametrize("expr", SYMPY_EXPRESSIONS, ids=[str(e)[:40] for e in SYMPY_EXPRESSIONS])
def test_what_sympy_prints_parses_back_to_the_same_function(expr):
    text = str(expr)
    for x, y in ((0.3, 0.7), (-0.4, 1.3), (0.9, -0.2)):
        with mpmath.workdps(30):
            want = float(Evaluator({X: mpmath.mpf(x), Y: mpmath.mpf(y)})(expr))
        assert _value(text, x, y) == pytest.approx(want, rel=1e-12, abs=1e-14), text


def test_sinc_is_torchs_and_the_unnormalised_one_has_its_own_name():
    assert _value("sinc(x)", 0.5, 0) == pytest.approx(float(np.sinc(0.5)))
    assert _value("sinc_unnormalized(x)", 0.5, 0) == pytest.approx(np.sin(0.5) / 0.5)


@pytest.mark.parametrize("text", [
    "leaky_relu(x, negative_slope=0.2)", "gelu(x, approximate='tanh')", "elu(x, alpha=0.5)", "celu(x, alpha=2)",
    "softplus(x, beta=2, threshold=1)", "hardtanh(x, min_val=-0.5, max_val=0.75)", "clamp(x, min=0)",
    "clamp(x, max=0.5) + clamp(x, -0.5, 0.5)", "norm(x, p=3)", "huber_loss(x, y, delta=0.5)",
    "smooth_l1_loss(x, y, beta=0.25)", "sum(logsumexp(A, axis=0, keepdim=True) - A)",
    "sum(A / norm(A, axis=1, keepdim=True))", "sum(max(A, axis=1, keepdim=True) * A)",
])
def test_op_parameters_are_checked_against_torch(text):
    inputs = {"x": [-1.0, 0.3, 2.0], "y": [0.0, 0.1, 1.0]} if "A" not in text else \
        {"A": [[1.0, 2.0], [3.0, -1.0]]}
    result = verify_case(case_from_expression(text, inputs, name="t", order=1))
    assert result.status == "pass", [(c.check, c.status) for c in result.checks]
    node = parse(text, set(inputs))
    assert parse(unparse(node), set(inputs)) == node  # the parameters round-trip


@pytest.mark.parametrize("text, message", [
    ("gelu(x, approximate='fast')", "approximate is one of 'none', 'tanh', got"),
    ("leaky_relu(x, negative_slope=y)", "negative_slope takes a number literal, got name 'y'"),
    ("leaky_relu(x, slope=0.1)", "leaky_relu() got keyword 'slope'; allowed keywords: negative_slope"),
    ("elu(x, alpha=1, alpha=2)", "keyword 'alpha' given twice"),
    ("Piecewise((x, x > 0))", "Piecewise needs a last pair (value, True)"),
    ("Piecewise(x, y)", "Piecewise takes (value, condition) pairs"),
    ("hardtanh(x, min_val='a')", "min_val takes a number literal"),
])
def test_bad_parameters_are_named(text, message):
    with pytest.raises(CaseError) as info:
        parse(text, {"x", "y"})
    assert message in str(info.value)


def test_a_function_torch_cannot_differentiate_is_not_supported_not_failed():
    result = verify_case(case_from_expression("bessel_j0(x) + x**2", {"x": [0.5, 1.5]}, name="t", order=1))
    assert result.status == "pass"
    backward = next(c for c in result.checks if c.check == "backward")
    assert backward.skipped and "no derivative for bessel_j0" in backward.skipped
    value = next(c for c in result.checks if c.check == "value")
    assert value.status == "pass" and value.comparisons


def test_inf_is_a_constant():
    assert _value("min(x, inf) + max(y, -oo)", 0.5, 0.25) == pytest.approx(0.75)


@pytest.mark.parametrize("text, inputs", [
    ("sum(x[1:3] ** 2)", {"x": [0.5, 1.0, -2.0, 3.0]}),
    ("sum(A[:, 0] * A[1, :])", {"A": [[1.0, 2.0], [3.0, -1.0]]}),
    ("sum(x[::2] * x[1::2])", {"x": [0.5, 1.0, -2.0, 3.0]}),
    ("sum(reshape(x, shape=(2, 2)) @ reshape(x, shape=(2, -1)))", {"x": [0.5, 1.0, -2.0, 3.0]}),
    ("sum(flatten(A) * unsqueeze(squeeze(reshape(A, shape=(1, 4))), axis=0))", {"A": [[1.0, 2.0], [3.0, -1.0]]}),
    ("sum(cat(x, x ** 2, axis=0) * stack(x, x, axis=0)[0, 0])", {"x": [0.5, 1.0]}),
    ('einsum("ij,jk->ik", A, A)', {"A": [[1.0, 2.0], [3.0, -1.0]]}),
    ('einsum("ii->", A) + sum(tril(A)) + sum(triu(A, diagonal=1)) + sum(diag(x) @ A)',
     {"A": [[1.0, 2.0], [3.0, -1.0]], "x": [0.5, 2.0]}),
])
def test_tensor_shaping_is_checked_against_torch(text, inputs):
    result = verify_case(case_from_expression(text, inputs, name="t", order=1))
    assert result.status == "pass", [(c.check, c.status) for c in result.checks]
    node = parse(text, set(inputs))
    assert parse(unparse(node), set(inputs)) == node


@pytest.mark.parametrize("torch_spelling, keywords", [
    ("reshape(x, (2, 2))", "reshape(x, shape=(2, 2))"),
    ("reshape(x, -1)", "reshape(x, shape=(-1,))"),
    ("unsqueeze(x, 0)", "unsqueeze(x, axis=0)"),
    ("sum(A, 0, True)", "sum(A, axis=0, keepdim=True)"),
    ("sum(A, dim=1)", "sum(A, axis=1)"),
    ("logsumexp(A, 1)", "logsumexp(A, axis=1)"),
    ("norm(x, 3)", "norm(x, p=3)"),
    ("leaky_relu(x, 0.2)", "leaky_relu(x, negative_slope=0.2)"),
    ("hardtanh(x, -0.5, 2.0)", "hardtanh(x, min_val=-0.5, max_val=2.0)"),
    ("softplus(x, 2, 5)", "softplus(x, beta=2, threshold=5)"),
    ("tril(A, -1)", "tril(A, diagonal=-1)"),
])
def test_torchs_positional_parameters_mean_its_keywords(torch_spelling, keywords):
    """torch.reshape(x, (2, 2)), x.unsqueeze(0), torch.sum(A, 0, True): the user's own spelling of a call."""
    names = {"x", "A"}
    assert parse(torch_spelling, names) == parse(keywords, names)


@pytest.mark.parametrize("text, message", [
    ("x[::-1]", "a slice step must be a positive integer literal"),
    ("x[0:y]", "an index or axis must be an integer literal, got name 'y'"),
    ('einsum("ij;jk->ik", x, x)', "einsum's subscripts are a string of letters"),
    ("einsum(x, x)", "einsum's subscripts are a string of letters"),
    ('einsum("ij,jk->ik", x)', "name 2 tensor(s), 1 given"),
    ("reshape(x, shape=y)", "reshape(): shape takes an integer literal or a tuple of them, got name 'y'"),
    ("reshape(x, y)", "reshape(): shape takes an integer literal or a tuple of them, got name 'y'"),
    ("tril(x, 0.5)", "tril(): diagonal takes an integer literal"),
    ("unsqueeze(x, 0, 1)", "at most 1 parameter(s) (axis), got 2"),
    ("sum(x, 0, dim=1)", "keyword 'axis' given twice"),
    ("leaky_relu(x, 'a')", "negative_slope takes a number literal"),
    ("elements(x)", "unknown function 'elements'"),
    ("getitem(x)", "unknown function 'getitem'"),
])
def test_bad_shaping_is_named(text, message):
    with pytest.raises(CaseError) as info:
        parse(text, {"x", "y"})
    assert message in str(info.value)


LOGITS = [[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]]


@pytest.mark.parametrize("text, inputs", [
    ("cross_entropy(z, labels)", {"z": LOGITS, "labels": {"value": [2, 0], "dtype": "int64"}}),
    ("cross_entropy(z, labels)", {"z": LOGITS[0], "labels": {"value": 1, "dtype": "int64"}}),
    ("nll_loss(log_softmax(z, axis=1), labels)", {"z": LOGITS, "labels": {"value": [1, 2], "dtype": "int64"}}),
    ("sum(gather(z, idx, axis=1) ** 2)", {"z": LOGITS, "idx": {"value": [[0, 2], [1, 1]], "dtype": "int64"}}),
    ("sum(take_along_dim(z, idx, axis=0) * 3)", {"z": LOGITS, "idx": {"value": [[1, 0, 1]], "dtype": "int64"}}),
    ("sum(x[idx] ** 2)", {"x": [0.5, -1.0, 2.0], "idx": {"value": [2, 0, 2], "dtype": "int64"}}),
])
def test_integer_inputs_pick_by_comparison(text, inputs):
    result = verify_case(case_from_expression(text, inputs, name="t", order=2))
    assert result.status == "pass", [(c.check, c.status) for c in result.checks]


def test_an_integer_inputs_labels_change_between_points():
    """One expression for every point: the labels are compared, not baked in."""
    case = case_from_expression("cross_entropy(z, labels)", {"z": LOGITS, "labels": {"value": [2, 0], "dtype": "int64"}},
                                name="t", points=[{"labels": [0, 1]}, {"labels": [2, 2]}])
    result = verify_case(case)
    assert result.status == "pass" and len(result.points) == 2


def test_an_inputs_own_dtype_is_int64_only():
    with pytest.raises(CaseError, match="an input's own dtype is int64"):
        case_from_expression("x", {"x": {"value": [1.0], "dtype": "float32"}}, name="t")


OPS_MODULE = '''
from verifier import Op, register_op

register_op(Op("cube_plus", "elementwise", (1, 1), lambda S, x: x**3 + x, lambda T, x: x**3 + x,
               doc="x**3 + x"), replace=True)
'''


def test_a_case_file_names_the_module_that_registers_its_functions(tmp_path, monkeypatch):
    import textwrap

    from verifier.runner import run

    (tmp_path / "myops.py").write_text(OPS_MODULE)
    (tmp_path / "cases.yaml").write_text(textwrap.dedent("""
        - ops: myops
        - name: uses_cube_plus
          inputs: {x: [0.5, -1.0]}
          function: cube_plus(x)
    """))
    monkeypatch.setenv("GRADVERIFY_OPS", "")
    result = run([tmp_path / "cases.yaml"])
    assert not result.errors and [c.status for c in result.cases] == ["pass"]


def test_the_cli_imports_ops_modules(tmp_path, monkeypatch):
    from verifier.cli import main

    (tmp_path / "myops2.py").write_text(OPS_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRADVERIFY_OPS", "")
    assert main(["check", "cube_plus(x)", "--at", "x=0.5", "--ops", "myops2"]) == 0
    assert main(["check", "x", "--at", "x=0.5", "--ops", "no_such_module_here"]) == 2


def test_an_ops_key_that_names_nothing_is_a_case_error(tmp_path):
    from verifier.case.loading import load_file

    (tmp_path / "c.yaml").write_text("- ops: not_a_module_anywhere\n- name: a\n  inputs: {x: 1.0}\n  function: x\n")
    cases, errors = load_file(tmp_path / "c.yaml")
    assert "ops: no module named 'not_a_module_anywhere'" in str(errors[0]) and [c.name for c in cases] == ["a"]


@pytest.mark.parametrize("text", ["abs(z)**2 * w", "real(z * w) + w**2", "abs(z * conj(z) + w)", "z * w"])
def test_a_complex_input_beside_a_real_one(text):
    case = case_from_expression(text, {"z": {"value": "1+1j", "dtype": "complex128"}, "w": 0.5}, name="t")
    assert case.complex_inputs == ("z",) and case.dtype == "float64"
    result = verify_case(case)
    assert result.status == "pass", [(c.check, c.status) for c in result.checks]
    assert any(c.check == "wirtinger" and c.comparisons for c in result.checks)


def test_mixed_complex_dtypes_must_match_the_case():
    with pytest.raises(CaseError, match="to match"):
        case_from_expression("z * w", {"z": {"value": "1+1j", "dtype": "complex64"}, "w": 0.5}, name="t",
                             dtype="float64")

"""Complex inputs (issue 7, part 1): Wirtinger derivatives from the exact reference, torch's convention verified."""

from __future__ import annotations

import types
from dataclasses import replace

import numpy as np
import pytest
import torch

from verifier.case.complex import from_pairs
from verifier.case.loading import load_cases, load_file
from verifier.checks.wirtinger import wirtinger
from verifier.reference.choice import make_reference
from verifier.runner import verify_case
from verifier.torchside.lowering import Program

from .conftest import CASES


def _case(name):
    return next(c for c in load_cases(CASES / "complex.yaml") if c.name == name)


def _derivatives(case, name):
    """(ds/dz, ds/dz̄) from the exact reference at the case's point."""
    ctx = types.SimpleNamespace(case=case, exact=make_reference(case).at(case.points[0]))
    return wirtinger(ctx, name)


def test_the_complex_cases_pass():
    for case in load_cases(CASES / "complex.yaml"):
        result = verify_case(case)
        assert result.status == ("xfail" if case.expect_failure else "pass"), case.name


@pytest.mark.parametrize("case, wrt, dz, dzbar", [
    # hand-derived at the case's points
    ("complex.square.complex128", "z", [2 + 2j], [0]),  # z² at 1+1j: 2z, holomorphic
    ("complex.abs_squared.complex128", "z", [1 - 1j, -0.5 - 2j, 3 + 0.25j],  # z z̄: z̄ and z
     [1 + 1j, -0.5 + 2j, 3 - 0.25j]),
    ("complex.real_times_imag.complex128", "z", [(-2 - 1.5j) / 2, (0.75 - 0.5j) / 2],  # xy: (y - ix)/2, (y + ix)/2
     [(-2 + 1.5j) / 2, (0.75 + 0.5j) / 2]),
])
def test_wirtinger_derivatives_by_hand(case, wrt, dz, dzbar):
    c = _case(case)
    got_dz, got_dzbar = _derivatives(c, wrt)
    n = len(dz)
    assert np.allclose(np.diagonal(got_dz.reshape(-1, n)) if got_dz.size > n else got_dz.reshape(-1), dz)
    assert np.allclose(np.diagonal(got_dzbar.reshape(-1, n)) if got_dzbar.size > n else got_dzbar.reshape(-1), dzbar)


def test_conj_times_w_is_antiholomorphic_in_z_and_holomorphic_in_w():
    c = _case("complex.conj_times_w.complex128")
    z, w = (from_pairs(c.points[0][n]) for n in ("z", "w"))
    dz, dzbar = _derivatives(c, "z")
    assert np.allclose(dz, 0) and np.allclose(np.diagonal(dzbar), w)
    dz, dzbar = _derivatives(c, "w")
    assert np.allclose(np.diagonal(dz), np.conj(z)) and np.allclose(dzbar, 0)


def test_torch_convention_for_z_squared_at_1_plus_1j():
    # the anchor: y.backward(ones) gives conj(2z) = 2-2j; the exact side's formula says the same
    z = torch.tensor([1 + 1j], dtype=torch.complex128, requires_grad=True)
    (z**2).backward(torch.ones(1, dtype=torch.complex128))
    assert z.grad.item() == 2 - 2j
    dz, dzbar = _derivatives(_case("complex.square.complex128"), "z")
    assert complex(np.conj(dz.reshape(-1)[0]) * 1 + 1 * dzbar.reshape(-1)[0]) == 2 - 2j
    result = verify_case(_case("complex.square.complex128"), checks=["wirtinger"])
    comps = result.checks[0].comparisons
    assert result.status == "pass" and {c.path for c in comps} >= {"z.grad after y.backward(g)", "torch.autograd.grad",
                                                                   "torch.func.vjp", "torch.func.jvp"}
    assert any("holomorphic" in f.label for f in result.checks[0].facts)


def test_a_real_loss_gets_twice_the_conjugate_wirtinger_derivative():
    result = verify_case(_case("complex.abs_squared.complex128"), checks=["wirtinger"])
    c = result.checks[0].comparisons[0]
    assert c.passed and "2·dL/dz̄" in c.label
    z = from_pairs(_case("complex.abs_squared.complex128").points[0]["z"])
    t = torch.tensor(z, requires_grad=True)
    (t.abs() ** 2).sum().backward()
    assert np.allclose(t.grad.numpy(), 2 * z)


class _ConjGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        return z.clone()

    @staticmethod
    def backward(ctx, g):
        return g.conj()


class _WrongConvention(Program):
    """Every complex input's gradient conjugated on its way back: a backward written for the other convention."""

    def __call__(self, env, *, retain=()):
        scope, pairs = self.complex_view(env)
        scope = {n: _ConjGrad.apply(t) if n in self.case.complex_inputs else t for n, t in scope.items()}
        out, nodes = Program.__call__(self, scope, retain=retain)
        return self.pairs_view(out, pairs), nodes


@pytest.mark.parametrize("name", ["complex.square.complex128", "complex.holomorphic_chain.complex128",
                                  "complex.linear_layer_real_loss.complex128"])
def test_a_conjugated_gradient_fails_every_reverse_path(name):
    result = verify_case(_case(name), program=lambda c: _WrongConvention(c, "float64"),
                         checks=["backward", "vjp", "wirtinger"])
    failed = {c.check for c in result.checks if c.status == "fail"}
    assert "wirtinger" in failed and failed & {"backward", "vjp"}


def test_the_conjugate_mistake_is_named():
    result = verify_case(replace(_case("complex.custom_function_without_conj"), expect_failure=None),
                         checks=["wirtinger"])
    diagnoses = {c.diagnosis.kind for c in result.checks[0].comparisons if c.diagnosis}
    assert diagnoses == {"conjugate"}


@pytest.mark.parametrize("body, key, words", [
    ("function: sum(relu(z) * z)", "function", "relu() is not verified for complex"),
    ("function: sum(z)\nchecks: [graph]", "checks", "graph is not available for complex"),
    ("function: sum(where(z > 0, z, 0))", "function", "no order"),
])
def test_complex_case_errors_name_the_key(tmp_path, body, key, words):
    f = tmp_path / "c.yaml"
    f.write_text(f"name: c\ninputs: {{z: ['1+1j']}}\ndtype: complex128\n{body}\n")
    cases, errors = load_file(f)
    assert not cases and errors[0].key == key and words in str(errors[0])


def test_a_bad_complex_number_names_the_input(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("name: c\ninputs: {z: ['1+j2']}\ndtype: complex128\nfunction: z * 2\n")
    cases, errors = load_file(f)
    assert not cases and errors[0].key == "inputs.z" and "complex number such as 1+2j" in str(errors[0])


def test_a_sampled_complex_input_and_the_report_show_complex_numbers(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("name: c\ninputs:\n  z: {shape: [3], sample: {normal: [0, 1]}}\ndtype: complex64\n"
                 "function: sum(abs(exp(z))**2)\n")
    (case,), _ = load_file(f)
    assert case.shapes["z"] == (3, 2) and np.all(case.points[0]["z"][:, 1] != 0)
    assert verify_case(case).status == "pass"


def test_a_sampled_input_without_its_own_seed_loads(tmp_path):
    # a bug found here: the default seed (the case's seed and the input's position) was refused as "not an integer"
    f = tmp_path / "c.yaml"
    f.write_text("name: c\ninputs:\n  x: {shape: [3], sample: {uniform: [0, 1]}}\nfunction: sum(x**2)\n")
    (case,), errors = load_file(f)
    assert not errors and case.inputs[0].value.shape == (3,)
    f.write_text("name: c\ninputs:\n  x: {shape: [3], sample: {uniform: [0, 1]}, seed: -1}\nfunction: sum(x**2)\n")
    cases, errors = load_file(f)
    assert not cases and errors[0].key == "inputs.x.seed"


@pytest.mark.parametrize("dtype", [[], {"a": 1}, [["complex128"]]])
def test_an_unhashable_dtype_is_a_case_error(dtype):
    # found by the fuzz test: the complex check looked a list dtype up in a dict (TypeError)
    from verifier.case.validate import build_case
    from verifier.errors import CaseError

    with pytest.raises(CaseError) as err:
        build_case({"name": "c", "inputs": {"x": 0.5}, "function": "x", "dtype": dtype})
    assert err.value.key == "dtype"

"""Devices (issue 7, part 3) and torch.compile (part 4): the torch side moves, the exact reference does not."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from verifier.case.loading import load_cases, load_file
from verifier.case.validate import case_from_expression
from verifier.cli import main
from verifier.language.ops import ELEMENTWISE, OPS, Op, register_op
from verifier.runner import verify_case
from verifier.torchside.paths import Why

from .conftest import CASES

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (the CPU-only CI): "
                          "the GPU runs of the device cases need one")


def _case(expr, inputs, **kw):
    return case_from_expression(expr, inputs, name="t", **kw)


@pytest.mark.parametrize("device, key", [("gpu", "device"), ("cuda:x", "device"), (3, "device"),
                                         ("yes", "compile"), (2, "compile")])
def test_bad_device_and_compile_keys_name_the_key(tmp_path, device, key):
    f = tmp_path / "c.yaml"
    f.write_text(f"name: c\ninputs: {{x: 0.5}}\nfunction: sin(x)\n{key}: {device!r}\n")
    cases, errors = load_file(f)
    assert not cases and errors[0].key == key


def test_the_device_cases_are_right_on_the_cpu():
    # the GPU cases themselves (their definitions and exact references) are checked everywhere: on the CPU here
    for case in load_cases(CASES / "devices.yaml"):
        allowed = {"pass", "edge", "finding"} if case.op else {"pass"}  # a conformance case reports torch's bugs
        assert verify_case(case, device="cpu").status in allowed, case.name


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without CUDA does")
def test_without_cuda_a_device_case_is_skipped_and_an_explicit_device_is_an_error(tmp_path, capsys):
    case = _case("sin(x)", {"x": 0.5}, device="cuda")
    result = verify_case(case)
    assert result.status == "skip" and "CUDA is not available" in result.skipped
    assert verify_case(_case("sin(x)", {"x": 0.5}), device="cuda").status == "invalid"
    f = tmp_path / "c.yaml"
    f.write_text("- {name: gpu, device: cuda, inputs: {x: 0.5}, function: sin(x)}\n"
                 "- {name: cpu, inputs: {x: 0.5}, function: sin(x)}\n")
    assert main(["run", str(f), "--no-progress"]) == 0
    assert "1 passed, 1 skipped" in capsys.readouterr().out
    assert main(["run", str(f), "--no-progress", "--device", "cuda"]) == 2


@CUDA
@pytest.mark.parametrize("case", load_cases(CASES / "devices.yaml"), ids=lambda c: c.name)
def test_device_cases_pass_on_cuda(case):
    result = verify_case(case)
    assert result.status == "pass" and result.device == "cuda"


@CUDA
def test_a_cuda_run_reports_the_device_in_a_mismatch():
    class Bad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * x

        @staticmethod
        def backward(ctx, g):
            return g  # missing 2x

    register_op(Op("bad_square_cuda", ELEMENTWISE, (1, 1), lambda S, x: x**2, lambda T, x: Bad.apply(x)), replace=True)
    try:
        result = verify_case(_case("bad_square_cuda(x)", {"x": 1.5}, device="cuda", checks=["backward"]))
    finally:
        OPS.pop("bad_square_cuda")
    from verifier.report.text import case_text

    assert result.status == "fail" and "(float64, cuda, seed 0)" in case_text(result)


# --- torch.compile -------------------------------------------------------------------------------------------------


def test_compiled_gradients_are_checked_against_the_exact_derivative_and_against_eager():
    result = verify_case(_case("sum(sin(x) * exp(x))", {"x": [0.5, -1.0, 2.0]}, compile="aot_eager"))
    assert result.status == "pass"
    (check,) = [c for c in result.checks if c.check == "compile"]
    paths = {c.path for c in check.comparisons}
    assert "torch.compile[aot_eager] y.backward()" in paths
    assert any("compiled vs eager" in c.label for c in check.comparisons)
    assert any(p.startswith("torch.compile[aot_eager] torch.func.vjp") for p in paths) or any(
        "vjp" in p for p in paths) or "torch.compile[aot_eager] autograd.grad" in paths


def test_a_wrong_compiled_gradient_fails_while_eager_passes():
    def only_when_compiled(T, x):
        if torch.compiler.is_compiling():
            return T.sin(x) + 1e-3 * x * x  # what a bad compiler pass would do
        return T.sin(x)

    register_op(Op("sin_compiled_bad", ELEMENTWISE, (1, 1), lambda S, x: S.sin(x), only_when_compiled), replace=True)
    try:
        result = verify_case(_case("sum(sin_compiled_bad(x))", {"x": [0.5, 1.0]}, compile="aot_eager",
                                   checks=["backward", "compile"]))
    finally:
        OPS.pop("sin_compiled_bad")
    by_check = {c.check: c.status for c in result.checks}
    assert by_check == {"backward": "pass", "compile": "fail"}
    failing = [c for ch in result.checks for c in ch.comparisons if not c.passed]
    assert any("compiled vs eager" in c.label for c in failing)


def test_a_graph_break_is_reported_and_the_gradients_still_checked():
    def breaks_the_graph(T, x):
        if torch.compiler.is_compiling():
            torch._dynamo.graph_break()
        return T.sin(x)

    register_op(Op("sin_graph_break", ELEMENTWISE, (1, 1), lambda S, x: S.sin(x), breaks_the_graph), replace=True)
    try:
        result = verify_case(_case("sum(sin_graph_break(x) * x)", {"x": [0.5]}, compile="aot_eager"))
    finally:
        OPS.pop("sin_graph_break")
    (check,) = [c for c in result.checks if c.check == "compile"]
    assert result.status == "pass" and any(u.why is Why.GRAPH_BREAKS and u.count >= 1 for u in check.unsupported)


def test_a_compile_failure_is_the_verdict():
    import torch._inductor.config as inductor

    # inductor's C++ build cannot run; torch's own config patch restores the setting (monkeypatch.setattr on the
    # config module deleted it: every later inductor compile in this worker raised "cpp.cxx does not exist")
    before = inductor.cpp.cxx
    with inductor.patch({"cpp.cxx": ("/nonexistent/g++",)}):
        result = verify_case(_case("sum(sin(x) * exp(x))", {"x": [0.5, 1.5]}, compile="inductor", checks=["compile"]))
    assert inductor.cpp.cxx == before  # the compiles of the tests after this one in the process
    (check,) = result.checks
    (fact,) = check.facts
    assert result.status == "fail" and not fact.passed and fact.note


def test_compile_flag_on_the_command_line(tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text("name: c\ninputs: {x: [0.5, 2.0]}\nfunction: sum(tanh(x))\n")
    assert main(["run", str(f), "--no-progress", "--compile", "aot_eager"]) == 0
    assert main(["check", "x**3", "--at", "x=2", "--compile", "aot_eager"]) == 0
    assert "torch.compile" in capsys.readouterr().out


def test_the_bundled_compile_cases_pass():
    for case in load_cases(CASES / "compile.yaml"):
        case = replace(case, compile="aot_eager")  # inductor's C++ build is slow; it runs in the bundled suite
        assert verify_case(case).status == "pass", case.name

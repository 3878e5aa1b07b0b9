"""The gradverify command end to end, in a subprocess: exit codes, reports, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT


def gv(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "verifier", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_check_x_squared_shows_6_by_every_path():
    out = gv("check", "x**2", "--at", "x=3")
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    for path in ("y.backward()", "autograd.grad", "torch.func.jacrev", "torch.func.jacfwd", "forward_ad",
                 "torch.func.jvp", "autograd.functional.hessian", "torch.func.hessian"):
        assert path in text
    rows = [line for line in text.splitlines() if "grad wrt x" in line and ("y.backward()" in line or
                                                                            "autograd.grad " in line)]
    assert rows and all("│ 6 " in r for r in rows)
    assert "verdict: pass" in text and "torch 2." in text and "sympy 1." in text and "seed 0" in text


def test_check_bad_expression_exits_2():
    out = gv("check", "__import__('os').system('true')", "--at", "x=1")
    assert out.returncode == 2
    assert "attribute access '.system' is not allowed" in out.stdout


def test_wrong_expect_exits_1_and_names_the_discrepancy(write_case):
    path = write_case("name: wrong_hand\ninputs: {x: 3.0}\nfunction: x**2\nexpect:\n  grad: {x: 7}\n")
    out = gv("run", str(path))
    assert out.returncode == 1
    assert "FAIL wrong_hand [expect] grad wrt x via hand value vs sympy" in out.stdout
    assert "worst at index (): exact 6, got 7" in out.stdout


def test_accumulating_torch_side_exits_1_with_the_diagnosis(write_case):
    path = write_case("name: forgot_zero_grad\ninputs: {w: 1.0, x: 2.0}\nfunction: (x + w) * (w + 1)\n"
                      "backward: {calls: 3, zero_grad: false}\nchecks: [backward]\n")
    out = gv("run", str(path))
    assert out.returncode == 1
    assert "FAIL forgot_zero_grad [backward] grad wrt w via y.backward() x3 without zero_()" in out.stdout
    assert "worst at index (): exact 5, got 15" in out.stdout
    assert ("diagnosis: 3.0x expected: gradients accumulated over 3 backward calls without zero_(); zero .grad "
            "(x.grad.zero_() / optimizer.zero_grad()) before each backward") in out.stdout


def test_malformed_case_exits_2_after_the_others_ran(write_case, tmp_path):
    write_case("- name: fine\n  inputs: {x: 3.0}\n  function: x**2\n", "a.yaml")
    write_case("- name: broken\n  inputs: {x: 3.0}\n  function: x**2\n  chekcs: [grad]\n", "b.yaml")
    report = tmp_path / "out" / "report.json"
    out = gv("run", str(tmp_path), "--json", str(report))
    assert out.returncode == 2
    assert (f"ERROR {tmp_path / 'b.yaml'}:4, case 'broken', key 'chekcs': unknown key 'chekcs' "
            "(did you mean 'checks'?)") in out.stdout
    data = json.loads(report.read_text())
    assert [c["case"] for c in data["cases"]] == ["fine"] and data["cases"][0]["verdict"] == "pass"
    assert data["errors"][0]["key"] == "chekcs" and data["errors"][0]["line"] == 4
    assert data["exit_code"] == 2 and data["complete"] is True
    assert not list(report.parent.glob(".*.tmp"))


def test_run_selects_with_k_and_overrides_dtype(write_case, tmp_path):
    write_case("- name: one\n  inputs: {x: 3.0}\n  function: sin(x)\n- name: two\n  inputs: {x: 1.0}\n"
               "  function: cos(x)\n")
    report = tmp_path / "r.json"
    out = gv("run", str(tmp_path), "-k", "two", "--dtype", "float32", "--seed", "7", "--json", str(report))
    assert out.returncode == 0, out.stdout
    data = json.loads(report.read_text())
    assert [c["case"] for c in data["cases"]] == ["two"] and data["cases"][0]["dtype"] == "float32"
    assert data["seed"] == 7


def test_json_never_overwrites_an_input(write_case):
    path = write_case("name: a\ninputs: {x: 1.0}\nfunction: x\n")
    before = path.read_text()
    out = gv("run", str(path), "--json", str(path))
    assert out.returncode == 2 and "would overwrite an input" in out.stdout
    assert path.read_text() == before


def test_list_and_help_do_not_import_torch_or_sympy():
    code = ("import sys; from verifier.cli import main; main(['list', 'cases']); "
            "assert 'torch' not in sys.modules and 'sympy' not in sys.modules, sorted(sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "seed.x_squared_backward" in out.stdout
    helped = gv("--help")
    assert helped.returncode == 0 and "run" in helped.stdout and "check" in helped.stdout


@pytest.mark.parametrize("argv", [["run", "no/such/dir"], ["check", "x +", "--at", "x=1"]])
def test_bad_input_exits_2(argv):
    assert gv(*argv).returncode == 2


def test_plot_writes_pngs(tmp_path):
    for case in ("kink.abs_scalar", "seed.train_linear_regression"):
        target = tmp_path / f"{case}.png"
        out = gv("plot", case, "-o", str(target))
        assert out.returncode == 0, out.stdout + out.stderr
        data = target.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
        if case == "kink.abs_scalar":
            assert "max error in ULPs: y.backward() " in out.stdout


def test_plot_refuses_what_it_cannot_draw(tmp_path):
    out = gv("plot", "elementary.sin", "-o", str(tmp_path / "s.png"))
    assert out.returncode == 2 and "plot draws functions of one scalar input with a scalar output" in out.stdout
    assert gv("plot", "no.such.case").returncode == 2


def test_parallel_run_matches_serial(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "- {name: a, inputs: {x: [0.5, 1.5]}, function: sin(x) * x}\n"
        "- {name: b, inputs: {x: 2.0}, function: x**3, checks: [backward], expect: {grad: {x: 11}}}\n"
        "- {name: c, inputs: {x: 1.0}, function: log(x) + y}\n")
    serial, parallel = tmp_path / "s.json", tmp_path / "p.json"
    gv("run", str(tmp_path), "--json", str(serial))
    out = gv("run", str(tmp_path), "-j", "2", "--json", str(parallel))
    assert out.returncode == 2  # b fails its hand value check, c is invalid: the same as serially

    def strip(path):
        data = json.loads(path.read_text())
        data.pop("seconds")
        for case in data["cases"]:
            case.pop("seconds")
        return data

    assert strip(serial) == strip(parallel)

"""What a user meets at the command line (issue 19): a report that reads in a screen, the run's options settled once,
the bundled suites from a wheel, the optional extras named when missing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from verifier.cli import main

from .conftest import CASES, ROOT


def gv(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "verifier", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600, env={**os.environ, **(env or {})})


def test_a_passing_run_prints_a_line_per_file_and_a_line_per_finding(capsys):
    """Passing cases print nothing of their own; edges are a count; each finding one line (its dtypes together)."""
    files = [CASES / "seed" / "01_two_ways.yaml", CASES / "seed" / "06_training.yaml", CASES / "ops" / "parameters.yaml"]
    assert main(["run", *map(str, files), "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("gradverify ") and "reference:" not in lines[0]  # the header: one line
    body = lines[1:]
    per_file = [line for line in body if re.match(r"^\S+\.yaml\s+\d+ ", line)]
    assert len(per_file) == 3
    findings = [line for line in body if line.startswith("FINDING ")]
    assert findings and all(line.count("FINDING") == 1 for line in findings)
    assert any("ops.gelu_tanh" in line and "float64" in line and "float32" in line for line in findings)
    assert any(re.match(r"^\d+ conformance case\(s\) at classified edges only", line) for line in body)
    assert re.match(r"^\d+ passed, \d+ xfail, \d+ at classified edges, \d+ with findings in", body[-1])
    assert len(body) == len(per_file) + len(findings) + 2
    assert main(["run", *map(str, files[1:]), "--no-progress", "-v"]) == 0  # the files with an edge and a train log
    verbose = capsys.readouterr().out
    assert "EDGE ops.leaky_relu_slope.float64" in verbose and "train seed.train_linear_regression:" in verbose


def test_a_failing_case_is_shown_in_full(write_case, capsys):
    path = write_case("name: wrong\ninputs: {x: 3.0}\nfunction: x**2\nchecks: [expect]\nexpect: {grad: {x: 7}}\n")
    assert main(["run", str(path), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "FAIL wrong [expect] grad wrt x via hand value vs sympy" in out and "exact 6, got 7" in out


def test_device_cuda_without_cuda_is_one_error_before_any_case(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["run", str(CASES / "seed"), "--device", "cuda", "--no-progress"]) == 2
    out = capsys.readouterr().out
    assert out.count("CUDA is not available") == 1 and "1 invalid" in out and "passed" not in out


def test_json_to_stdout_is_the_whole_stdout():
    out = gv("run", str(CASES / "seed" / "01_two_ways.yaml"), "--json", "-")
    doc = json.loads(out.stdout)
    assert out.returncode == 0 and doc["schema_version"] >= 2 and doc["summary"] == {"pass": 2}
    assert "2 passed" in out.stderr  # the words went to stderr
    comparison = doc["cases"][0]["checks"][0]["comparisons"][0]
    assert {"rtol", "atol", "tolerance", "allowed"} <= set(comparison)


def test_no_color_and_no_progress_bar_off_a_terminal():
    plain = gv("run", str(CASES / "seed" / "01_two_ways.yaml"), env={"NO_COLOR": "1", "FORCE_COLOR": "1"})
    assert plain.returncode == 0 and not re.search(r"\x1b\[[0-9;]*3[0-7]m", plain.stdout + plain.stderr)
    piped = gv("run", str(CASES / "seed" / "01_two_ways.yaml"))
    assert "verifying" not in piped.stderr  # no bar in a pipe (a CI log)


def test_the_progress_bar_is_shown_only_on_a_terminal():
    from rich.console import Console

    from verifier.commands import progress as _progress

    bar, callback = _progress(Console(force_terminal=True), "verifying", off=False)
    assert bar is not None and callback is not None
    bar.stop()
    assert _progress(Console(file=open(os.devnull, "w"), force_terminal=False), "verifying", off=False) == (None, None)


def test_plot_without_matplotlib_is_one_line_and_exit_2():
    code = (  # matplotlib made not found, as on a machine without the plot extra
"import sys, importlib.util; real = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda n, *a: None if n == 'matplotlib' else real(n, *a)\n"
            "from verifier.cli import main; sys.exit(main(['plot', 'seed.x_squared_backward', 'cases']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "gradverify: plot draws with matplotlib, which is not installed: pip install gradverify[plot]"]


def test_a_suite_and_a_path_naming_one_file_read_it_once(capsys):
    assert main(["run", str(CASES / "seed" / "01_two_ways.yaml"), "--suite", "seed", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "duplicate case name" not in out and "17 passed" in out


def test_the_wheel_alone_runs_the_seed_suite_in_an_empty_folder(tmp_path):
    """Build the wheel, install it (no dependencies: this environment's) into a fresh venv, run from an empty
    folder: the suites ship inside the package."""
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(wheels), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("gradverify-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python*/site-packages"))
    here = [p for p in sys.path if p.endswith("site-packages")]
    (site / "deps.pth").write_text("\n".join(here) + "\n")  # torch, sympy, ... from this environment, after ours
    python = venv / "bin" / "python"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                                str(wheel)], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(python), "-m", "verifier", "run", "--suite", "seed"], capture_output=True, text=True,
                         cwd=empty, env=env, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "17 passed, 2 xfail" in out.stdout and str(site) in out.stdout  # from the installed package's files
    swept = subprocess.run([str(python), "-m", "verifier", "list", str(site / "verifier" / "suites" / "ops")],
                           capture_output=True, text=True, cwd=empty, env=env, timeout=600)
    assert "ops.sigmoid" in swept.stdout


def test_hand_value_rows_keep_one_meaning_per_column(write_case, capsys):
    """-vv: the exact column is sympy's, the torch column torch's; the hand value and sympy's formula are named."""
    path = write_case("name: e\ninputs: {x: 2.0, w: 0.5}\nfunction: x**3 * w\nchecks: [expect]\n"
                      "expect: {grad: {x: '3*x**2*w', w: 9}}\n")
    assert main(["run", str(path), "--no-progress", "-vv"]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "grad wrt w" in line and "│" in line)
    assert "hand value = 9; sympy: d out/d w = x**3" in row and re.search(r"│ 8\s+│ 8\s+│", row) and "FAIL" in row
    assert sum("grad wrt x" in line and "│" in line for line in out.splitlines()) == 1


def test_the_helper_keeps_torchs_own_deprecation_notices_out_of_the_users_run():
    """A fresh process (torch.func's first use is where torch.jit.script warns), warnings made errors: the helper
    still passes, records none of torch's, and the user's own warning still reaches the user."""
    code = (
        "import warnings, torch\n"
        "warnings.simplefilter('error')\n"
        "from verifier import assert_gradients_match\n"
        "from verifier.examples import Softplus\n"
        "def mine(x):\n"
        "    warnings.warn('from my code', UserWarning)\n"
        "    return Softplus.apply(x)\n"
        "x = torch.tensor([0.5, -1.0], dtype=torch.float64)\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    assert_gradients_match(mine, 'softplus(x)', inputs={'x': x})\n"
        "assert seen and {str(w.message) for w in seen} == {'from my code'}, [str(w.message)[:60] for w in seen]\n"
        "assert warnings.filters[0][0] == 'error'  # the caller's filters as they were\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_the_packages_list_is_every_folder_of_the_package_and_of_the_suites():
    """pyproject lists the packages by hand (cases/ ships as verifier.suites): a new folder must not be left out."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    code = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "verifier").rglob("__init__.py")}
    suites = {"verifier.suites"} | {f"verifier.suites.{p.name}" for p in CASES.iterdir()
                                    if p.is_dir() and any(p.glob("*.yaml"))}
    assert listed == code | suites

"""The pytest plugin end to end with pytester: collection, ids, reports pointing at the YAML line, options."""

from __future__ import annotations

import re

import pytest

# Every run is a subprocess: in-process pytester runs drop the modules they imported (re-initialising torch's C
# extension crashes) and leave torch.func state behind for later tests.

GOOD = """\
- name: square
  inputs: {x: 3.0}
  function: x**2
  checks: [value, backward, grad]
- name: vector
  inputs: {x: [1.0, 2.0]}
  function: sin(x)
  checks: [vjp, jacobian]
"""

BAD = """\
- name: hand_is_wrong
  inputs: {x: 3.0}
  function: x**2
  checks: [expect]
  expect:
    grad: {x: 7}
- name: broken
  inputs: {x: 3.0}
  function: x**2
  chekcs: [grad]
"""


@pytest.fixture
def cases_dir(pytester: pytest.Pytester):
    pytester.mkdir("cases")
    (pytester.path / "cases" / "good.yaml").write_text(GOOD)
    return pytester


def test_collects_one_item_per_case_and_check(cases_dir: pytest.Pytester):
    result = cases_dir.runpytest_subprocess("--collect-only", "-q", "cases")
    result.stdout.fnmatch_lines(["cases/good.yaml::square[value]", "cases/good.yaml::square[backward]",
                                 "cases/good.yaml::square[grad]", "cases/good.yaml::vector[vjp]",
                                 "cases/good.yaml::vector[jacobian]"])


def test_runs_and_passes_with_header(cases_dir: pytest.Pytester):
    result = cases_dir.runpytest_subprocess("cases", "--verifier-seed", "3")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["gradverify *: torch *, sympy *, seed 3"])


def test_failure_shows_our_report_and_the_yaml_line(cases_dir: pytest.Pytester):
    (cases_dir.path / "cases" / "bad.yaml").write_text(BAD)
    result = cases_dir.runpytest_subprocess("cases", "-rf")
    result.assert_outcomes(passed=5, failed=2)
    result.stdout.fnmatch_lines([
        "*ERROR *bad.yaml:10, case 'broken', key 'chekcs': unknown key 'chekcs' (did you mean 'checks'?)*",
        "*FAIL hand_is_wrong [[]expect[]] grad wrt x via hand value vs sympy*",
        "*worst at index (): exact 6, got 7*",
        "FAILED cases/bad.yaml::hand_is_wrong[[]expect[]]*",
    ])



def test_location_points_at_the_yaml_line(cases_dir: pytest.Pytester):
    (cases_dir.path / "cases" / "bad.yaml").write_text(BAD)
    cases_dir.runpytest_subprocess("cases", "--junitxml=out.xml", "-o", "junit_family=xunit1")
    xml = (cases_dir.path / "out.xml").read_text()
    lines = dict(re.findall(r'\sname="([^"]+)"[^>]*line="(\d+)"', xml))
    assert lines["vector[vjp]"] == "4" and lines["hand_is_wrong[expect]"] == "0" and lines["broken"] == "9"


def test_k_selection_and_junitxml(cases_dir: pytest.Pytester):
    result = cases_dir.runpytest_subprocess("cases", "-k", "vector", "--junitxml=out.xml")
    result.assert_outcomes(passed=2)
    xml = (cases_dir.path / "out.xml").read_text()
    assert 'name="vector[vjp]"' in xml and "square" not in xml


def test_other_yaml_files_are_not_collected(pytester: pytest.Pytester):
    (pytester.path / "config.yaml").write_text("a: 1\n")
    result = pytester.runpytest_subprocess("--collect-only", "-q")
    assert "config.yaml" not in result.stdout.str()


def test_ini_option_names_other_case_dirs(pytester: pytest.Pytester):
    pytester.mkdir("gradients")
    (pytester.path / "gradients" / "g.yaml").write_text(GOOD)
    pytester.makeini("[pytest]\nverifier_case_dirs = gradients\n")
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=5)


def test_xdist(cases_dir: pytest.Pytester):
    result = cases_dir.runpytest_subprocess("cases", "-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=5)


def test_deliberately_broken_case_is_an_xfail(pytester: pytest.Pytester):
    pytester.mkdir("cases")
    (pytester.path / "cases" / "broken.yaml").write_text(
        "name: forgot_zero_grad\ninputs: {w: 1.0, x: 2.0}\nfunction: (x + w) * (w + 1)\n"
        "backward: {calls: 3, zero_grad: false}\nchecks: [value, backward]\nexpect_failure: accumulated\n")
    result = pytester.runpytest_subprocess("cases", "-rx")
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*deliberately broken: failed as expected (accumulated)*"])


def test_no_header_in_a_run_without_case_files(pytester: pytest.Pytester):
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1)
    assert "gradverify" not in result.stdout.str()


def test_the_header_under_xdist_and_each_case_file_on_one_worker(cases_dir: pytest.Pytester):
    (cases_dir.path / "cases" / "more.yaml").write_text(GOOD.replace("square", "cube").replace("vector", "vec"))
    result = cases_dir.runpytest_subprocess("cases", "-n", "2", "-p", "xdist", "-v")
    result.assert_outcomes(passed=10)
    out = result.stdout.str()
    assert re.search(r"gradverify .*: torch .*, sympy .*, seed per case", out)
    workers: dict[str, set[str]] = {}
    for worker, file in re.findall(r"\[(gw\d)\][^\n]*?PASSED (cases/\w+\.yaml)::", out):
        workers.setdefault(file, set()).add(worker)
    assert set(workers) == {"cases/good.yaml", "cases/more.yaml"} and all(len(w) == 1 for w in workers.values())


FINDING = """\
- name: ops.hardsigmoid
  op: torch.nn.functional.hardsigmoid
  inputs: {x: 0.0}
  function: hardsigmoid(x)
  dtype: float64
  checks: [backward]
"""


def test_a_finding_warns_at_its_yaml_line_and_w_error_shows_our_report(pytester: pytest.Pytester):
    pytester.mkdir("cases")
    (pytester.path / "cases" / "ops.yaml").write_text("# torch's hardsigmoid slope is 1/6 in float32\n" + FINDING)
    result = pytester.runpytest_subprocess("cases", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*cases/ops.yaml:2: FindingWarning: FINDING ops.hardsigmoid*"])
    assert "pytest_plugin.py" not in result.stdout.str()
    strict = pytester.runpytest_subprocess("cases", "-W", "error::verifier.FindingWarning")
    strict.assert_outcomes(failed=1)
    out = strict.stdout.str()
    assert "FINDING ops.hardsigmoid [backward]" in out and "Traceback" not in out and "warnings.py" not in out
    assert len(out.splitlines()) < 200  # the report (one block per point), not pages of traceback


def test_tags_are_markers(pytester: pytest.Pytester):
    pytester.mkdir("cases")
    (pytester.path / "cases" / "t.yaml").write_text(
        "- {name: quick, inputs: {x: 1.0}, function: x**2, checks: [value]}\n"
        "- {name: heavy, inputs: {x: 1.0}, function: x**3, checks: [value, grad], tags: [slow]}\n")
    result = pytester.runpytest_subprocess("cases", "-m", "not slow", "--strict-markers")
    result.assert_outcomes(passed=1, deselected=2)
    marked = pytester.runpytest_subprocess("cases", "-m", "slow", "--strict-markers")
    marked.assert_outcomes(passed=2, deselected=1)


def test_junit_charges_each_check_its_own_time(pytester: pytest.Pytester):
    """The first item of a case no longer carries the whole case: a cheap value check before an expensive one."""
    pytester.mkdir("cases")
    (pytester.path / "cases" / "h.yaml").write_text(
        "name: h\ninputs: {x: [0.5, 1.0, 1.5, 2.0]}\nfunction: sum(tanh(x) * sin(x) ** 2)\norder: 3\n"
        "checks: [value, higher]\n")
    pytester.runpytest_subprocess("cases", "--junitxml=out.xml")
    xml = (pytester.path / "out.xml").read_text()
    times = {name: float(t) for name, t in re.findall(r'name="h\[(\w+)\]"[^>]*time="([\d.]+)"', xml)}
    assert times["value"] < times["higher"], times


def test_a_check_that_compared_nothing_is_skipped_not_passed(pytester: pytest.Pytester):
    pytester.mkdir("cases")
    (pytester.path / "cases" / "f.yaml").write_text(
        "name: f\ninputs: {x: [0.5, 1.0]}\nimpl: verifier.examples:Exp\nfunction: exp(x)\ncheck: []\n"
        .replace("check: []\n", "checks: [backward, jvp]\n"))
    result = pytester.runpytest_subprocess("cases", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] cases/f.yaml:1: not supported by torch here: forward_ad*"])

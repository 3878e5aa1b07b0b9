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

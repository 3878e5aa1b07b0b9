"""YAML -> Case: errors name file, line, case and key; broken cases do not stop the others."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import numpy as np
import pytest
import yaml

from verifier.case.loading import collect, load_cases, load_file
from verifier.case.validate import build_case
from verifier.errors import LimitError

from .conftest import CASES

GOOD = """\
- name: good
  inputs: {x: 3.0}
  function: x**2
"""


def _errors(path):
    return [str(e) for e in collect([path]).errors]


def test_loads_the_issue_example(write_case):
    path = write_case("""\
name: accumulate_without_zero
description: "(x + w)(w + 1)"
inputs:
  w: 1.0
  x: {value: 2.0}
  v: [1.0, 2.0, 3.0]
  inp: {value: eye, shape: [5, 5]}
  X: {shape: [20, 1], sample: {uniform: [0, 10]}, seed: 10, requires_grad: false}
define:
  a: w + x
  b: w + 1
function: a * b
dtype: float64
checks: [backward, grad, accumulate, graph]
expect:
  grad: {w: 5, x: 2}
tolerance: {rtol: 1e-12, atol: 0}
""")
    (case,) = load_cases(path)
    assert case.name == "accumulate_without_zero"
    assert [i.name for i in case.inputs] == ["w", "x", "v", "inp", "X"]
    assert case.shapes["inp"] == (5, 5) and np.array_equal(case.inputs[3].value, np.eye(5))
    x = case.inputs[4].value
    assert x.shape == (20, 1) and 0 <= x.min() and x.max() <= 10 and not case.inputs[4].requires_grad
    assert [d.name for d in case.defines] == ["a", "b"]
    assert case.checks == ("backward", "grad", "accumulate", "graph")
    assert float(case.expect.grad["w"]) == 5.0
    assert case.tolerance.rtol == 1e-12 and case.tolerance.atol == 0
    assert case.line == 1 and case.file == str(path)


def test_sampling_is_seeded(write_case):
    text = "name: s\ninputs: {x: {shape: [4], sample: {normal: [0, 1]}, seed: 3}}\nfunction: x\n"
    a = load_cases(write_case(text, "a.yaml"))[0].inputs[0].value
    b = load_cases(write_case(text, "b.yaml"))[0].inputs[0].value
    assert np.array_equal(a, b)


def test_points_and_domain(write_case):
    (case,) = load_cases(write_case("""\
name: p
inputs: {x: 1.0, y: 2.0}
function: x*y
points: [{x: 5}, {y: -1}]
domain: {x: [0, 1]}
samples: 3
"""))
    assert len(case.points) == 5
    assert float(case.points[0]["x"]) == 5 and float(case.points[0]["y"]) == 2
    assert all(0 <= float(p["x"]) <= 1 for p in case.points[2:])


# --- pinned error messages: file, line, case, key, received, allowed ------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("name: a\ninputs: {x: 1}\nfucntion: x\n",
     ":3, case 'a', key 'fucntion': unknown key 'fucntion' (did you mean 'function'?); allowed keys: name, "),
    ("name: a\ninputs: {x: 1}\n", ":1, case 'a', key 'function': missing required key 'function'"),
    ("name: a\ninputs: {x: 1}\nfunction: x + z\n",
     ":3, case 'a', key 'function': unknown name 'z'; defined names: x"),
    ("name: a\ninputs: {x: [1, 2], y: [1, 2, 3]}\nfunction: x + y\n",
     ":3, case 'a', key 'function': shape mismatch in 'x + y': shapes [2] and [3] do not broadcast"),
    ("name: a\ninputs:\n  x: abc\nfunction: x\n", ":3, case 'a', key 'inputs.x': expected a number, got a string ('abc')"),
    ("name: a\ninputs:\n  x: {value: eye}\nfunction: x\n",
     ":3, case 'a', key 'inputs.x.shape': constructor 'eye' needs a shape"),
    ("name: a\ninputs:\n  x: [[1, 2], [3]]\nfunction: x\n",
     ":3, case 'a', key 'inputs.x': ragged nested list: every row must have the same length"),
    ("name: a\ninputs: {x: 1}\nfunction: x\ndtype: int8\n",
     ":4, case 'a', key 'dtype': dtype 'int8' is not supported; allowed: float64, float32, float16, bfloat16, "
     "complex128, complex64"),
    ("name: a\ninputs: {x: 1}\nfunction: x\nchecks: [backwards]\n",
     ":4, case 'a', key 'checks': unknown check 'backwards' (did you mean 'backward'?)"),
    ("name: a\ninputs: {x: 1}\nfunction: [x]\n", ":3, case 'a', key 'function': expected an expression string, got list"),
    ("name: a\ninputs: {x: 1}\nfunction: x\norder: 9\n",
     ":4, case 'a', key 'order': order is the highest derivative order, an integer 1..6, got a number (9)"),
    ("name: a\ninputs: {x: 1}\nfunction: x\ntolerance: {rtol: 1e-3}\n",
     ":4, case 'a', key 'tolerance': give rtol and atol together"),
    ("name: a\ninputs: {x: 1}\nfunction: x\nexpect:\n  grad: {y: 1}\n",
     ":5, case 'a', key 'expect.grad': 'y' is not a differentiable input; those are: x"),
    ("name: a\ninputs: {x: [1, 2]}\nfunction: x\nexpect:\n  grad: {x: [1, 2, 3]}\n",
     ":5, case 'a', key 'expect.grad.x': value has shape [3], expected [2]"),
    ("name: a b\ninputs: {x: 1}\nfunction: x\n",
     ":1, case 'a b', key 'name': name must match [A-Za-z0-9_.-]{1,100}, got a string ('a b')"),
    ("inputs: {x: 1}\nfunction: x\n", ":1, key 'name': missing required key 'name'"),
    ("name: a\ninputs: {pi: 1}\nfunction: pi\n",
     ":2, case 'a', key 'inputs': name 'pi' is taken by the language"),
    ("name: a\ninputs: {x: 1, x: 2}\nfunction: x\n", ":2, key 'x': key 'x' appears twice in one mapping"),
    # found by the long fuzz run: an unhashable item in retain_grad crashed the loader
    ("name: a\ninputs: {x: 1}\nfunction: x\nretain_grad: [[1, 2]]\n", ":4, case 'a', key 'retain_grad': retain_grad lists"),
])
def test_case_errors_are_pinned(write_case, text, message):
    path = write_case(text)
    errors = _errors(path)
    assert len(errors) == 1
    assert errors[0] == str(path) + message or (str(path) + message) in errors[0], errors[0]


def test_file_errors(write_case, tmp_path):
    bad_yaml = write_case("name: a\ninputs: {x: 1\nfunction: x\n", "bad.yaml")
    assert "bad.yaml:3: invalid YAML:" in _errors(bad_yaml)[0]
    empty = write_case("", "empty.yaml")
    assert _errors(empty) == [f"{empty}: file holds no cases (it is empty)"]
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: a\nfunction: \xff\xfe\n")
    assert _errors(binary) == [f"{binary}:2: file is not UTF-8 text (byte 0xff at offset 18)"]
    scalar = write_case("42\n", "scalar.yaml")
    assert _errors(scalar) == [f"{scalar}:1: a case is a mapping of keys, got a number (42)"] or \
        "a case is a mapping of keys, got a number (42)" in _errors(scalar)[0]
    (tmp_path / "none").mkdir()
    assert _errors(tmp_path / "none") == [f"{tmp_path / 'none'}: directory holds no case files (*.yaml, *.yml)"]
    assert _errors(tmp_path / "missing.yaml") == [f"{tmp_path / 'missing.yaml'}: no such file or directory"]


def test_python_tags_are_rejected(write_case):
    path = write_case("name: a\ninputs: {x: !!python/object/apply:os.system ['true']}\nfunction: x\n")
    (error,) = _errors(path)
    assert "invalid YAML" in error and "python/object/apply:os.system" in error


def test_billion_laughs_is_limited(write_case):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    path = write_case("\n".join(lines) + "\n")
    (error,) = collect([path]).errors
    assert isinstance(error, LimitError)
    assert "more than 64 YAML aliases" in str(error)


def test_broken_case_does_not_stop_the_others(write_case):
    path = write_case(GOOD + "- name: bad\n  function: y\n- name: good2\n  inputs: {x: 1}\n  function: x\n")
    found = collect([path])
    assert [c.name for c in found.cases] == ["good", "good2"]
    assert len(found.errors) == 1 and ":5, case 'bad', key 'function': unknown name 'y'" in str(found.errors[0])


def test_duplicate_names_across_files(write_case):
    a = write_case(GOOD, "a.yaml")
    b = write_case(GOOD, "b.yaml")
    found = collect([a, b])
    assert len(found.cases) == 1
    assert f"{b}:1, case 'good', key 'name': duplicate case name 'good': already defined at {a}:1" in str(found.errors[0])


def test_case_errors_are_value_errors():
    with pytest.raises(ValueError):
        build_case({"name": "a", "function": "q"})


def _schema():
    return json.loads(resources.files("verifier").joinpath("case", "schema.json").read_text())


@pytest.mark.parametrize("path", sorted(CASES.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CASES)))
def test_bundled_files_match_the_schema_and_load(path):
    jsonschema.validate(yaml.safe_load(path.read_text()), _schema())
    cases, errors = load_file(path)
    assert not errors and cases


def test_schema_rejects_unknown_keys():
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "a", "function": "x", "fucntion": "y"}, _schema())


def test_case_errors_pickle_with_their_fields():
    import pickle

    error = pickle.loads(pickle.dumps(LimitError("too big", file="f.yaml", line=3, case="c", key="k")))
    assert isinstance(error, LimitError) and (error.file, error.line, error.case, error.key) == ("f.yaml", 3, "c", "k")

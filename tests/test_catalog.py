"""One place for each piece of knowledge: the check catalogue, and every copy that must exist tied to it."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from verifier.case import catalog
from verifier.case.complex import COMPLEX_DTYPES
from verifier.case.model import COMPILE_BACKENDS, DIAGNOSES, DTYPES, REFERENCES
from verifier.case.validate import CASE_KEYS, build_case
from verifier.errors import CaseError

from .conftest import ROOT


def _schema() -> dict:
    return json.loads(resources.files("verifier").joinpath("case", "schema.json").read_text())


def _case_schema() -> dict:
    return _schema()["$defs"]["case"]["properties"]


def test_the_check_dispatch_is_the_catalogue():
    from verifier.checks.run import CHECKS

    assert tuple(CHECKS) == catalog.CHECKS


def test_the_schema_lists_the_catalogue_and_the_case_keys():
    props = _case_schema()
    one, many = props["checks"]["oneOf"]
    assert tuple(one["enum"]) == catalog.CHECKS and tuple(many["items"]["enum"]) == catalog.CHECKS
    assert set(props) == set(CASE_KEYS)
    assert tuple(props["reference"]["enum"]) == REFERENCES
    assert tuple(props["expect_failure"]["enum"]) == DIAGNOSES
    assert tuple(props["compile"]["oneOf"][1]["enum"]) == COMPILE_BACKENDS
    assert tuple(props["dtype"]["oneOf"][0]["enum"]) == DTYPES + tuple(COMPLEX_DTYPES)


@pytest.mark.parametrize("checks, ok", [
    ("grad", True), (["grad", "vjp"], True), ([], False), (["grad", "grad"], False), ("gard", False), (3, False),
])
def test_the_loader_and_the_schema_accept_the_same_checks(checks, ok):
    doc = {"name": "c", "inputs": {"x": 1.0}, "function": "x**2", "checks": checks}
    try:
        jsonschema.validate(doc, _schema())
        schema_ok = True
    except jsonschema.ValidationError:
        schema_ok = False
    try:
        build_case(doc)
        loader_ok = True
    except CaseError:
        loader_ok = False
    assert schema_ok == loader_ok == ok


def test_defaults_come_from_the_catalogue():
    case = build_case({"name": "c", "inputs": {"x": 1.0}, "function": "x**2"})
    assert case.checks == catalog.DEFAULT
    z = build_case({"name": "z", "inputs": {"z": "1+1j"}, "function": "z**2", "dtype": "complex128"})
    assert "wirtinger" in z.checks and not set(z.checks) & set(catalog.NOT_COMPLEX)


def test_the_readme_table_is_the_catalogue():
    text = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+?) \| (?:yes|no) \|$", text, flags=re.M))
    assert list(rows) == list(catalog.CHECKS)
    assert rows == catalog.CHECK_DOCS


def test_every_deriving_file_of_the_cache_key_exists():
    from verifier.reference import cache

    package = Path(cache.__file__).resolve().parent.parent
    missing = [name for name in cache.DERIVING if not (package / name).is_file()]
    assert not missing, f"the derivation cache's key names files that do not exist: {missing}"
    # and every module that derives is listed: the reference's own modules and the case language
    deriving = {str(p.relative_to(package)) for folder in ("language", "reference/vectorised")
                for p in (package / folder).glob("*.py") if p.name != "__init__.py"}
    assert deriving <= set(cache.DERIVING)


def test_one_dtype_table():
    from verifier.dtypes import COMPLEX, FLOATS, LARGEST, PRECISION
    from verifier.torchside.devices import DTYPES as TORCH

    assert set(TORCH) == set(FLOATS) | set(COMPLEX)
    assert set(PRECISION) == set(LARGEST) == set(FLOATS) and set(COMPLEX.values()) <= set(FLOATS)
    assert all(str(TORCH[name]) == f"torch.{name}" for name in TORCH)


def test_one_numeric_table_serves_the_three_evaluators():
    from verifier.reference.numeric import arrays, mp, table

    assert set(mp.FUNCTIONS) == set(arrays.FUNCTIONS) == set(table.TABLE)
    assert set(arrays.TorchBackend().functions) == set(table.TABLE)


def test_the_schema_lists_the_input_keys():
    from verifier.case.fields import INPUT_KEYS

    spec = next(v for v in _schema()["$defs"]["value_spec"]["oneOf"] if "properties" in v)
    assert set(spec["properties"]) == set(INPUT_KEYS)

"""Property-based tests: loading any text or document yields a Case or a CaseError, never another exception;
verifying a valid random expression never crashes the runner. A bounded number of examples here; the long run is
benchmarks/fuzz.py."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from verifier.case.loading import load_file
from verifier.case.validate import build_case
from verifier.errors import CaseError
from verifier.language.parse import parse
from verifier.runner import verify_case

from .fuzz.strategies import DOC_INPUTS, any_expression, documents, expressions, yaml_texts

FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@FAST
@given(any_expression)
def test_parse_yields_a_node_or_a_case_error(text):
    try:
        parse(text, set(DOC_INPUTS))
    except CaseError:
        pass


@FAST
@given(documents())
def test_build_case_yields_a_case_or_a_case_error(doc):
    try:
        build_case(doc, file="fuzz.yaml")
    except CaseError:
        pass


@FAST
@given(yaml_texts)
def test_load_file_never_raises(text):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.yaml"
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        cases, errors = load_file(path)
        assert all(isinstance(e, CaseError) for e in errors)


@SLOW
@given(expressions(8))
def test_verifying_a_valid_expression_never_crashes(text):
    case = build_case({"name": "fuzz", "inputs": DOC_INPUTS, "function": text, "order": 2})
    result = verify_case(case, timeout=60)
    assert result.crashed is None, result.crashed
    errors = [c.error for c in result.checks if c.error]
    assert not errors, errors[0]

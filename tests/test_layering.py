"""The stages keep their arrows: symbolic never loads torch, autodiff never loads sympy, verifier never loads pytest."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import ROOT


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return {m.split(".")[0] for m in out.stdout.split()}


@pytest.mark.parametrize("statement, forbidden", [
    ("import verifier", {"torch", "sympy", "pytest"}),
    ("import verifier.reference.choice", {"torch"}),
    ("import verifier.torchside.autodiff", {"sympy"}),
    ("import verifier.torchside.lowering", {"sympy"}),
    ("import verifier.case.loading", {"torch", "sympy"}),
    ("import verifier.cli", {"torch", "sympy"}),
    ("import verifier.compare", {"torch", "sympy"}),
    ("import verifier.report", {"torch", "sympy"}),
])
def test_imports(statement, forbidden):
    assert not (_modules_after(statement) & forbidden)


def test_every_public_name_imports():
    import verifier

    for name in verifier.__all__:
        assert getattr(verifier, name) is not None, name

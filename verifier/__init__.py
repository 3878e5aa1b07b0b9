"""gradverify: verify PyTorch gradients against exact symbolic derivatives.

The public names are re-exported here and nothing else. Importing this package loads neither torch nor sympy;
they are loaded on first use.
"""

from __future__ import annotations

from typing import Any

from .version import __version__

__all__ = [
    "Case", "CaseError", "CaseResult", "CheckResult", "Comparison", "FindingWarning", "GradientMismatch", "LimitError",
    "Op",
    "RunResult", "Tolerance", "Untraceable", "VerifierError", "__version__", "assert_gradients_match",
    "assert_training_step_matches", "load_cases", "register_op",
    "run", "verify", "verify_case",
]

from .errors import CaseError, FindingWarning, GradientMismatch, LimitError, Untraceable, VerifierError
from .language.ops import Op, register_op

_LAZY = {
    "Case": "case.model", "Tolerance": "case.model", "load_cases": "case.loading", "CaseResult": "results",
    "CheckResult": "results",
    "RunResult": "results", "Comparison": "compare", "run": "runner", "verify": "runner", "verify_case": "runner",
    "assert_gradients_match": "assertions", "assert_training_step_matches": "assertions",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'verifier' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

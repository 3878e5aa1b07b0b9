"""Fuzz the vectorised reference against element expansion: random expressions over a vector, a 4x3 matrix with
zeros and negatives and a broadcast row (reductions with axes, softmax, where, max, abs, sqrt, log, matmul), each
verified by both references; any crash or different verdict is printed. Usage:

    python benchmarks/fuzz_references.py [N]      # N examples (default 200; about 4 minutes)
"""

from __future__ import annotations

import collections
import sys
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from verifier.case.validate import case_from_expression  # noqa: E402
from verifier.reference.vectorised.plan import vectorisable  # noqa: E402
from verifier.runner import verify_case  # noqa: E402

UN = ["sin", "tanh", "exp", "sigmoid", "softplus", "atan", "erf", "abs", "relu", "gelu", "silu", "log1p", "sqrt", "log"]
INPUTS = {"x": [0.5, -0.25, 2.0, 0.0, 1.5, -1.0], "w": [0.3, -0.7, 1.1], "s": 0.4,
          "M": [[1.0, 2.0, -0.5], [0.3, -1.1, 0.8], [0.0, 0.2, 0.1], [1.2, -0.4, 0.0]]}


def expressions() -> st.SearchStrategy[str]:
    vec = st.sampled_from(["x", "x", "s * x", "(x - mean(x))", "softmax(x, axis=0)", "log_softmax(x, axis=0)",
                           "(M @ w)[0] + x"])
    mat = st.sampled_from(["M", "M * w", "M + w", "softmax(M, axis=1)", "M / (1 + s**2)"])

    def extend(ch: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(st.tuples(st.sampled_from(UN), ch).map(lambda t: f"{t[0]}({t[1]})"),
                         st.tuples(ch, st.sampled_from(["+", "-", "*"]), ch).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
                         st.tuples(ch, ch, ch).map(lambda t: f"where({t[0]} > 0, {t[1]}, {t[2]})"),
                         st.tuples(ch, ch).map(lambda t: f"max({t[0]}, {t[1]})"))

    v = st.recursive(vec, extend, max_leaves=5)
    m = st.recursive(mat, extend, max_leaves=4)
    return st.one_of(
        st.tuples(st.sampled_from(["sum", "mean", "logsumexp", "norm", "prod"]), v).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["sum", "mean", "logsumexp"]), m, st.sampled_from([0, 1])).map(
            lambda t: f"{t[0]}({t[1]}, axis={t[2]})"),
        v,
        m.map(lambda t: f"({t}) @ w"))


def failing(result: object) -> list[tuple]:
    return [(ch.check, ch.status, (ch.error or "")[-300:],
             [(x.label, x.path, x.mismatched, x.worst, x.expected, x.got) for x in ch.comparisons if not x.passed][:2])
            for ch in result.checks if ch.status not in ("pass", "skip")]  # type: ignore[attr-defined]


stats: collections.Counter = collections.Counter()


@settings(max_examples=int(sys.argv[1]) if len(sys.argv) > 1 else 200, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(expressions())
def run(text: str) -> None:
    try:
        case = case_from_expression(text, INPUTS, name="fuzz")
    except Exception:  # noqa: BLE001 - a rejected expression is counted, not a failure
        stats["rejected"] += 1
        return
    if vectorisable(case) is not None:
        stats["not vectorisable"] += 1
        return
    a = verify_case(replace(case, reference="vectorised"), timeout=60)
    b = verify_case(replace(case, reference="expand"), timeout=60)
    stats[f"vectorised {a.status} / expansion {b.status}"] += 1
    if a.crashed or a.status != b.status or (a.status == "fail" and a.diagnoses() != b.diagnoses()):
        print("DIFF", text, a.status, b.status, a.diagnoses(), b.diagnoses(), (a.crashed or "")[-600:])
        print("   vectorised:", failing(a))
        print("   expansion: ", failing(b))


if __name__ == "__main__":
    run()
    print(dict(stats))

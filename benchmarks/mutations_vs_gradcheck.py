"""The mutation set (tests/mutations.py) through torch.autograd.gradcheck / gradgradcheck with their defaults and
through verifier.assert_gradients_match: detection rate on the wrong implementations, false positives on the
correct ones, and time. Prints one markdown table. Usage: python benchmarks/mutations_vs_gradcheck.py
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.mutations import MUTANTS, Stateful  # noqa: E402
from verifier import GradientMismatch
from verifier.assertions import assert_gradients_match


def with_gradcheck(m) -> bool:
    """True when gradcheck (and gradgradcheck for order 2) flags the implementation."""
    inputs = tuple(t.clone().requires_grad_(True) for t in m.inputs().values())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ok = torch.autograd.gradcheck(m.impl, inputs, raise_exception=False)
            if ok and m.order >= 2:
                ok = torch.autograd.gradgradcheck(m.impl, inputs, raise_exception=False)
    except Exception:  # noqa: BLE001 - gradcheck raising counts as flagging
        return True
    return not ok


def with_helper(m) -> bool:
    try:
        assert_gradients_match(m.impl, m.reference, m.inputs(), order=m.order)
    except GradientMismatch:
        return True
    return False


def main() -> int:
    rows = []
    totals = {"gradcheck": [0.0, 0, 0], "gradverify": [0.0, 0, 0]}  # seconds, caught, false positives
    for m in MUTANTS:
        line = [m.name]
        for label, fn in (("gradcheck", with_gradcheck), ("gradverify", with_helper)):
            Stateful.calls = 0
            start = time.perf_counter()
            flagged = fn(m)
            totals[label][0] += time.perf_counter() - start
            if m.correct:
                totals[label][2] += flagged
                line.append("FALSE ALARM" if flagged else "passes (right)")
            else:
                totals[label][1] += flagged
                line.append("caught" if flagged else "MISSED")
        rows.append(line)
    wrong = sum(not m.correct for m in MUTANTS)
    right = len(MUTANTS) - wrong
    print("| implementation | gradcheck / gradgradcheck (defaults) | gradverify assert_gradients_match |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    g, v = totals["gradcheck"], totals["gradverify"]
    print(f"| **wrong ones caught** | **{g[1]} / {wrong}** | **{v[1]} / {wrong}** |")
    print(f"| **false alarms on correct ones** | **{g[2]} / {right}** | **{v[2]} / {right}** |")
    print(f"| time, whole set | {g[0]:.2f} s | {v[0]:.2f} s |")
    print(f"\ntorch {torch.__version__}; {len(MUTANTS)} implementations ({wrong} wrong, {right} correct)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

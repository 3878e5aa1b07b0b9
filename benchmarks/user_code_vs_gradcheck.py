"""The users'-code corpus (tests/user_code.py) through torch.autograd.gradcheck (default, and fast_mode), with
gradgradcheck for order-2 entries, and through verifier.assert_gradients_match: correct ones passed, wrong ones
caught, and whether the helper named the right cause; the helper both with the written reference and with none
(derived from each implementation's own forward, with the surrogate where its backward means one). Prints one
markdown table and the totals.

gradcheck is given what it needs: the inputs that require grad as the corpus marks them (all floating inputs where
none is marked), integer inputs as they are. Usage: python benchmarks/user_code_vs_gradcheck.py
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.user_code import CORPUS  # noqa: E402
from verifier import GradientMismatch  # noqa: E402
from verifier.assertions import assert_gradients_match  # noqa: E402


def _gradcheck_inputs(inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    marked = any(t.requires_grad for t in inputs.values() if t.is_floating_point())
    out = []
    for t in inputs.values():
        if not t.is_floating_point():
            out.append(t)
        else:
            out.append(t.detach().clone().requires_grad_(t.requires_grad or not marked))
    return tuple(out)


def with_gradcheck(code, fast: bool) -> bool:
    """True when gradcheck (and gradgradcheck at order 2) flags the implementation."""
    inputs = _gradcheck_inputs(code.inputs())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ok = torch.autograd.gradcheck(code.impl, inputs, raise_exception=False, fast_mode=fast)
            if ok and code.order >= 2:
                ok = torch.autograd.gradgradcheck(code.impl, inputs, raise_exception=False, fast_mode=fast)
    except Exception:  # noqa: BLE001 - gradcheck raising counts as flagging
        return True
    return not ok


def with_helper(code, traced: bool = False) -> tuple[bool, bool]:
    """(flagged, named the right cause); traced: no reference string (derived from the forward; the surrogate where
    the backward means one)."""
    try:
        if traced:
            assert_gradients_match(code.impl, inputs=code.inputs(), order=code.order, gradient_of=code.surrogate,
                                   **code.options)
        else:
            assert_gradients_match(code.impl, code.reference, code.inputs(), order=code.order, **code.options)
    except GradientMismatch as exc:
        return True, code.bug is not None and code.bug in exc.result.diagnoses()
    return False, False


def main() -> int:
    tools = ("gradcheck", "gradcheck fast_mode", "gradverify", "gradverify, no reference")
    totals = {t: {"seconds": 0.0, "caught": 0, "false": 0} for t in tools}
    named = {"gradverify": 0, "gradverify, no reference": 0}
    rows = []
    for code in CORPUS:
        line = [code.name, code.bug or "correct"]
        for tool in tools:
            start = time.perf_counter()
            if tool.startswith("gradverify"):
                flagged, right = with_helper(code, traced=tool.endswith("no reference"))
                named[tool] += right
            else:
                flagged = with_gradcheck(code, fast=tool.endswith("fast_mode"))
            totals[tool]["seconds"] += time.perf_counter() - start
            if code.bug is None:
                totals[tool]["false"] += flagged
                line.append("FALSE ALARM" if flagged else "passes")
            else:
                totals[tool]["caught"] += flagged
                line.append("caught" if flagged else "MISSED")
        rows.append(line)
    wrong = sum(c.bug is not None for c in CORPUS)
    correct = len(CORPUS) - wrong
    print("| implementation | bug | " + " | ".join(tools) + " |")
    print("|---|---|" + "---|" * len(tools))
    for line in rows:
        print("| " + " | ".join(line) + " |")
    print()
    for tool in tools:
        t = totals[tool]
        print(f"{tool}: correct passed {correct - t['false']}/{correct}, bugs caught {t['caught']}/{wrong}, "
              f"{t['seconds']:.2f} s")
    for tool, n in named.items():
        print(f"{tool} named the right cause for {n}/{wrong} bugs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

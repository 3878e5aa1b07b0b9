"""The half-precision tolerance rule, measured: false alarms of correct computations and detection of wrong ones.

1. False alarms: every bundled case (the conformance suite included) run in float16 and in bfloat16; a failed
   comparison of torch's own (correct) computation is a false alarm, unless the report says why it is not one.
2. Detection: every case that passes in the dtype, with its reverse-mode gradient made wrong by a relative error e
   (a custom Function on the output scales what flows back by 1 + e): the share of cases whose backward check fails.

Usage: python benchmarks/half_precision.py [--errors 0.01 0.03 0.1] [--paths cases]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from verifier.case.loading import collect  # noqa: E402
from verifier.runner import verify_case  # noqa: E402
from verifier.torchside.lowering import Program  # noqa: E402


def scaled_program(error: float) -> type[Program]:
    class Scale(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):  # type: ignore[no-untyped-def]
            return x.clone()

        @staticmethod
        def backward(ctx, g):  # type: ignore[no-untyped-def]
            return g * (1 + error)

    class Wrong(Program):
        def __call__(self, env, *, retain=()):  # type: ignore[no-untyped-def]
            out, nodes = super().__call__(env, retain=retain)
            return Scale.apply(out), nodes

    return Wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", nargs="*", default=["cases"])
    parser.add_argument("--errors", nargs="*", type=float, default=[0.01, 0.03, 0.1])
    args = parser.parse_args()
    cases = collect(args.paths).cases
    print(f"torch {torch.__version__}; {len(cases)} bundled cases\n")
    print("| dtype | cases run | pass | fail (comparisons) | skipped | " +
          " | ".join(f"detected at {e:g}" for e in args.errors) + " | seconds |")
    print("|---|---|---|---|---|" + "---|" * len(args.errors) + "---|")
    for dtype in ("float16", "bfloat16"):
        start = time.perf_counter()
        passed, failed, skipped, failures = [], 0, 0, []
        for case in cases:
            if case.expect_failure or case.device != "cpu" or case.compile:
                continue  # deliberately broken, GPU-only, or compile cases (their own tests)
            result = verify_case(case, dtype=dtype)
            if result.status == "skip":
                skipped += 1
            elif result.status in ("pass", "edge", "finding"):
                passed.append(case)
            else:
                failed += 1
                failures.extend(f"{case.name} [{c.check}] {c.failures()[0][0].path}" for c in result.checks
                                if c.status == "fail" and c.failures()[0])
        detected = []
        for error in args.errors:
            wrong = scaled_program(error)
            candidates = [c for c in passed if c.differentiable and not c.impl and not c.op]
            hits = sum(verify_case(c, dtype=dtype, checks=["backward", "vjp"],
                                   program=lambda cc, d=dtype, w=wrong: w(cc, d)).status == "fail" for c in candidates)
            detected.append(f"{hits}/{len(candidates)}")
        run = len(passed) + failed
        print(f"| {dtype} | {run} | {len(passed)} | {failed} | {skipped} | " + " | ".join(detected) +
              f" | {time.perf_counter() - start:.0f} |")
        for f in failures:
            print(f"|  | failed: {f} |")


if __name__ == "__main__":
    main()

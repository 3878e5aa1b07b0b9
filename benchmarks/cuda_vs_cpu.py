"""torch's gradients on CUDA against the same gradients on the CPU, in ULPs of the dtype: the conformance cases
(cases/ops, float64 and float32) at the sweep's sample points, the same points and cotangents on both devices.

Needs a GPU. Prints one markdown table (per case: elements compared, share that differ, median and max ULPs of the
difference, NaN disagreements) and a summary per dtype. Usage:

    python benchmarks/cuda_vs_cpu.py [--points 20000] [--loop-points 1000] [--seconds 180]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from verifier.case.loading import collect  # noqa: E402
from verifier.dtypes import ulp  # noqa: E402
from verifier.survey.sweep import is_elementwise, sample_points, torch_grads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", nargs="*", default=["cases/ops"])
    parser.add_argument("--points", type=int, default=20_000, help="gradient elements per element-wise case")
    parser.add_argument("--loop-points", type=int, default=1_000, help="per case evaluated one sample at a time")
    parser.add_argument("--seconds", type=float, default=180.0, help="stop starting new cases after this long")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this benchmark compares CPU and CUDA")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}\n")
    print("| case | dtype | elements | differ | median ULPs | max ULPs | NaN mismatch |")
    print("|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    summary: dict[str, list[np.ndarray]] = {}
    skipped = []
    for case in collect(args.paths).cases:
        if time.perf_counter() - start > args.seconds:
            skipped.append(case.name)
            continue
        n = args.points if is_elementwise(case) else args.loopsample_points
        values, samples = sample_points(case, n, seed=0)
        try:
            cpu, _ = torch_grads(case, values, samples, case.dtype, np.random.default_rng(1), "cpu")
            gpu, _ = torch_grads(case, values, samples, case.dtype, np.random.default_rng(1), "cuda")
        except Exception as exc:  # noqa: BLE001 - an op torch does not run on one device: reported, not fatal
            print(f"| {case.name} | {case.dtype} | - | {type(exc).__name__}: {str(exc).splitlines()[0][:80]} | | | |")
            continue
        both = np.isfinite(cpu) & np.isfinite(gpu)
        nan_mismatch = int((np.isfinite(cpu) != np.isfinite(gpu)).sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            ulps = np.abs(gpu[both] - cpu[both]) / ulp(cpu[both], case.dtype)
        summary.setdefault(case.dtype, []).append(ulps)
        differ = float((ulps > 0).mean()) if ulps.size else 0.0
        print(f"| {case.name} | {case.dtype} | {ulps.size} | {differ:.1%} | {np.median(ulps) if ulps.size else 0:.3g} "
              f"| {ulps.max() if ulps.size else 0:.3g} | {nan_mismatch} |")
    print()
    for dtype, parts in summary.items():
        all_ulps = np.concatenate(parts)
        per_case = np.array([p.max() if p.size else 0 for p in parts])
        print(f"{dtype}: {len(parts)} cases, {all_ulps.size} elements; identical {np.mean(all_ulps == 0):.1%}; "
              f"p99 {np.percentile(all_ulps, 99):.3g} ULPs, max {all_ulps.max():.3g}; cases with max <= 1 ULP: "
              f"{int((per_case <= 1).sum())}, <= 4: {int((per_case <= 4).sum())}")
    if skipped:
        print(f"not run (time budget): {len(skipped)} cases")
    print(f"seconds: {time.perf_counter() - start:.0f}")


if __name__ == "__main__":
    main()

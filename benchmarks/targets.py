"""Issue 20's table, every row a ratio (or a time) measured in this run on this machine, beside its target.

    python benchmarks/targets.py            # about 5 minutes on 2 cores (the bundled suite twice)
    python benchmarks/targets.py --quick    # without the bundled-suite row

The machine is noisy: each figure is the minimum of several repetitions (more for the short torch passes). The
derivation cache is warm for every row but the first pass of the suite (which warms it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.speed import best  # noqa: E402  # the minimum of several timings
from tests.mutations import sin_exp  # noqa: E402
from verifier.assertions import assert_gradients_match  # noqa: E402
from verifier.case.validate import case_from_expression  # noqa: E402
from verifier.runner import run, verify_case, warm_up  # noqa: E402

SinExp = sin_exp(0.0)  # sin(x) * exp(x) with a hand-written backward: what gradcheck and the helper verify


def elementwise(n: int) -> tuple[float, float]:
    """(ours, torch's forward + backward) for sum(sin(x) * exp(x)) at n elements, the backward check."""
    x = torch.linspace(-2, 2, n, dtype=torch.float64)
    case = case_from_expression("sum(sin(x) * exp(x))", {"x": x.numpy()}, name="elementwise", checks=["backward"],
                                order=1)
    verify_case(case)  # warm: derivation cache, torch kernels

    def torch_pass():
        leaf = x.clone().requires_grad_(True)
        (torch.sin(leaf) * torch.exp(leaf)).sum().backward()

    reps = 5 if n >= 10**6 else 20
    ours = best(lambda: verify_case(case), reps)
    base = best(torch_pass, reps * 4)
    return ours, base


def versus_gradcheck(n: int) -> tuple[float, float]:
    x = torch.linspace(-2, 2, n, dtype=torch.float64)
    case = case_from_expression("sum(sin(x) * exp(x))", {"x": x.numpy()}, name="elementwise", checks=["backward"],
                                order=1)
    verify_case(case)
    ours = best(lambda: verify_case(case), 40)
    leaf = x.clone().requires_grad_(True)
    gc = best(lambda: torch.autograd.gradcheck(SinExp.apply, (leaf,)), 2)
    return ours, gc


def helper_per_call(order: int) -> tuple[float, float]:
    x = torch.linspace(-1, 1, 8, dtype=torch.float64, requires_grad=True)
    call = lambda: assert_gradients_match(SinExp.apply, "sin(x) * exp(x)", inputs={"x": x}, order=order)  # noqa: E731
    call()
    ours = best(call, 40)
    if order == 1:
        theirs = best(lambda: torch.autograd.gradcheck(SinExp.apply, (x,)), 30)
    else:
        theirs = best(lambda: torch.autograd.gradgradcheck(SinExp.apply, (x,)), 30)
    return ours, theirs


def suite_per_case() -> tuple[float, int, int]:
    """(seconds per case, cases, points verified): a conformance case verifies every one of its points."""
    run(["cases"], isolate=False)  # warms the derivation cache
    t = time.perf_counter()
    result = run(["cases"], isolate=False)
    points = sum(max(1, len(c.points or ())) for c in result.cases)
    return (time.perf_counter() - t) / max(1, len(result.cases)), len(result.cases), points


def torch_retained_pass(n: int) -> float:
    """torch's own forward and the backward check's three backward calls (one, the retained second, the refused
    third): the torch part of the check alone."""
    x = torch.linspace(-2, 2, n, dtype=torch.float64)

    def passes() -> None:
        leaf = x.clone().requires_grad_(True)
        y = (torch.sin(leaf) * torch.exp(leaf)).sum()
        y.backward(retain_graph=True)
        y.backward()
        try:
            y.backward()
        except RuntimeError:
            pass

    return best(passes, 20)


def import_floor() -> float:
    """A new process that imports torch and torch._dynamo (which torch.func's transforms import) and nothing else."""
    cmd = [sys.executable, "-c", "import torch, torch._dynamo"]
    return best(lambda: subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True), 3)


def one_case_process() -> float:
    cmd = [sys.executable, "-m", "verifier", "run", "cases/seed/01_two_ways.yaml", "--no-progress"]
    subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)  # warm the cache and the OS's file cache
    return best(lambda: subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True), 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the bundled-suite row")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    warm_up()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs\n")
    print("| what | now (this run) | target | met |")
    print("|---|---|---|---|")
    ours, base = elementwise(10**6)
    floors = [f"n = 10^6: torch's own forward and the check's three backward calls alone take "
              f"{torch_retained_pass(10**6) / base:.2f}x torch's forward+backward"]
    print(f"| element-wise n = 10^6, backward check, vs torch's forward+backward | {ours / base:.2f}x "
          f"({ours * 1e3:.0f} ms vs {base * 1e3:.1f} ms) | <= 3x | {'yes' if ours / base <= 3 else 'no'} |")
    ours, gc = versus_gradcheck(1000)
    print(f"| the same at n = 1,000 vs full gradcheck | {gc / ours:.0f}x faster ({ours * 1e3:.1f} ms vs "
          f"{gc * 1e3:.0f} ms) | >= 100x faster | {'yes' if gc / ours >= 100 else 'no'} |")
    ours, gc = helper_per_call(1)
    print(f"| assert_gradients_match, 8 elements, default checks, warm, vs gradcheck | {ours / gc:.1f}x slower "
          f"({ours * 1e3:.1f} ms vs {gc * 1e3:.2f} ms) | <= 3x | {'yes' if ours / gc <= 3 else 'no'} |")
    ours, ggc = helper_per_call(2)
    print(f"| the same at order=2 vs gradgradcheck | {ours / ggc:.1f}x slower ({ours * 1e3:.1f} ms vs "
          f"{ggc * 1e3:.2f} ms) | <= 2x | {'yes' if ours / ggc <= 2 else 'no'} |")
    if not args.quick:
        per, n, points = suite_per_case()
        print(f"| bundled suite, warm cache, serial, per case | {per * 1e3:.0f} ms ({n} cases) | <= 20 ms | "
              f"{'yes' if per <= 0.02 else 'no'} |")
        floors.append(f"suite: {per * n / points * 1e3:.0f} ms per point verified ({points} points in {n} cases)")
    wall = one_case_process()
    print(f"| one-case run from a new process, warm cache | {wall:.2f} s | <= 2 s | {'yes' if wall <= 2 else 'no'} |")
    floors.append(f"one case: a new process that only imports torch and torch._dynamo takes {import_floor():.2f} s")
    print("\nwhat stands under the figures:\n" + "\n".join(f"- {f}" for f in floors))


if __name__ == "__main__":
    main()

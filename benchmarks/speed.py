"""Speed and scale of gradverify, everything measured in this run on this machine. Prints one markdown table.

    python benchmarks/speed.py            # about 4 minutes on 2 cores
    python benchmarks/speed.py --quick    # smaller sizes, fewer repeats (a smoke run)

Rows: the bundled suite (cold and warm derivation cache, serial and -j 2); an element-wise function at n = 10^3 ..
10^7 against torch's own forward + backward; the same function as a custom autograd.Function against
torch.autograd.gradcheck (slow and fast_mode) at n = 10 .. 3,000, with the smallest relative error injected into the
backward that each one detects; least squares at 16^2, 64^2, 256^2.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import verifier.reference.cache as cache  # noqa: E402
from tests.mutations import sin_exp  # noqa: E402
from verifier import GradientMismatch  # noqa: E402
from verifier.assertions import assert_gradients_match  # noqa: E402
from verifier.case.validate import case_from_expression  # noqa: E402
from verifier.runner import verify_case, warm_up  # noqa: E402

EPSILONS = [10.0**-k for k in range(1, 15)]


def best(fn, repeats: int) -> float:
    """The minimum of several timings (the least disturbed by the rest of the machine)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# --- the suite --------------------------------------------------------------------------------------------------------


def suite_rows() -> list[tuple[str, str, str, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "GRADVERIFY_CACHE_DIR": cache}
        for label, extra in (("cold cache, serial", []), ("warm cache, serial", []), ("warm cache, -j 2", ["-j", "2"])):
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "verifier", "run", "cases", "--no-progress", *extra],
                                 cwd=ROOT, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t
            summary = out.stdout.strip().splitlines()[-1]
            rows.append((f"bundled suite, {label}", f"{wall:.1f} s wall", summary, "exit " + str(out.returncode)))
        env["GRADVERIFY_NO_CACHE"] = "1"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "verifier", "run", "cases", "--no-progress", "-j", "2"], cwd=ROOT,
                       env=env, capture_output=True, text=True)
        rows.append(("bundled suite, no cache, -j 2", f"{time.perf_counter() - t:.1f} s wall", "", ""))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, sympy"], capture_output=True)
        rows.append(("of which: importing torch and sympy", f"{time.perf_counter() - t:.1f} s", "", ""))
    return rows


# --- element-wise at scale -------------------------------------------------------------------------------------------


def elementwise_rows(sizes: list[int], repeats: int) -> list[tuple[str, str, str, str]]:
    rows = []
    for n in sizes:
        x_np = np.random.default_rng(0).uniform(-2, 2, n)
        case = case_from_expression("sum(sin(x) * exp(x))", {"x": x_np}, name="scale", checks=["grad"])
        verify_case(case)  # the derivation is cached: what is timed is a warm run

        def torch_fwd_bwd() -> None:
            x = torch.tensor(x_np, requires_grad=True)
            torch.autograd.grad((torch.sin(x) * torch.exp(x)).sum(), x)

        reps = max(2, repeats // (1 + n // 1_000_000))
        t_torch = best(torch_fwd_bwd, reps)
        t_ours = best(lambda: verify_case(case), reps)
        status = verify_case(case).status
        rows.append((f"element-wise n = {n:.0e}", f"{t_ours * 1e3:.1f} ms", f"torch fwd+bwd {t_torch * 1e3:.1f} ms",
                     f"ratio {t_ours / t_torch:.2f} ({status})"))
    return rows


# --- against gradcheck -------------------------------------------------------------------------------------------------


def gradcheck_flags(fn, x: torch.Tensor, fast: bool) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return not torch.autograd.gradcheck(fn, (x,), fast_mode=fast, raise_exception=False)
        except Exception:  # noqa: BLE001 - raising is flagging
            return True


def ours_flags(fn, x: torch.Tensor) -> bool:
    try:
        assert_gradients_match(fn, "sin(x) * exp(x)", {"x": x}, checks=["grad"])
    except GradientMismatch:
        return True
    return False


def sensitivity(flags) -> str:
    """The smallest injected relative error flagged (scanning 1e-1 .. 1e-14)."""
    smallest = None
    for eps in EPSILONS:
        if flags(sin_exp(eps).apply):
            smallest = eps
        else:
            break
    return "none" if smallest is None else f"{smallest:.0e}"


def gradcheck_rows(sizes: list[int], sens_at: int, repeats: int) -> list[tuple[str, str, str, str]]:
    rows = []
    correct = sin_exp(0.0).apply
    for n in sizes:
        x = torch.tensor(np.random.default_rng(1).uniform(-2, 2, n), requires_grad=True)
        ours_flags(correct, x)  # warm the derivation cache
        reps = 1 if n >= 1000 else repeats
        t_slow = best(lambda: gradcheck_flags(correct, x, False), reps)
        t_fast = best(lambda: gradcheck_flags(correct, x, True), repeats)
        t_ours = best(lambda: ours_flags(correct, x), repeats)
        row = [f"vs gradcheck n = {n}", f"ours {t_ours * 1e3:.1f} ms",
               f"gradcheck {t_slow * 1e3:.0f} ms, fast_mode {t_fast * 1e3:.1f} ms",
               f"gradcheck/ours {t_slow / t_ours:.0f}x, fast/ours {t_fast / t_ours:.1f}x"]
        if n == sens_at:
            s_ours = sensitivity(lambda fn: ours_flags(fn, x))
            s_fast = sensitivity(lambda fn: gradcheck_flags(fn, x, True))
            s_slow = sensitivity(lambda fn: gradcheck_flags(fn, x, False))
            row[3] += f"; smallest relative error detected: ours {s_ours}, gradcheck {s_slow}, fast_mode {s_fast}"
        rows.append(tuple(row))  # type: ignore[arg-type]
    return rows


# --- matrix ----------------------------------------------------------------------------------------------------------


def matrix_rows(sizes: list[int], repeats: int) -> list[tuple[str, str, str, str]]:
    rows = []
    for n in sizes:
        rng = np.random.default_rng(2)
        X, w, y = rng.normal(size=(n, n)), rng.normal(size=n), rng.normal(size=n)
        case = case_from_expression("sum((X @ w - y)**2)", {"X": X, "w": w, "y": y}, name=f"ls{n}")
        cache.set_enabled(False)  # the first run derives everything (sympy, the shrunken-copy check)
        t = time.perf_counter()
        first = verify_case(case)
        t_first = time.perf_counter() - t
        cache.set_enabled(True)
        t_warm = best(lambda: verify_case(case), repeats)

        def torch_fwd_bwd() -> None:
            Xt, wt, yt = (torch.tensor(a, requires_grad=True) for a in (X, w, y))
            torch.autograd.grad(((Xt @ wt - yt) ** 2).sum(), (Xt, wt, yt))

        t_torch = best(torch_fwd_bwd, repeats)
        rows.append((f"least squares {n}x{n}, every check", f"{t_warm * 1e3:.0f} ms warm, {t_first:.2f} s cold",
                     f"torch fwd+bwd {t_torch * 1e3:.2f} ms", f"{first.status}; {first.evaluation[:60]}..."))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-suite", action="store_true")
    args = parser.parse_args()
    warm_up()
    quick = args.quick
    rows = [] if args.skip_suite else suite_rows()
    rows += elementwise_rows([10**3, 10**4, 10**5] if quick else [10**3, 10**4, 10**5, 10**6, 10**7], 3 if quick else 7)
    rows += gradcheck_rows([10, 100, 300] if quick else [10, 100, 1000, 3000], 300 if quick else 1000, 3)
    rows += matrix_rows([16, 64] if quick else [16, 64, 256], 3)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"screen: {os.environ.get('GRADVERIFY_NUMERIC', 'torch')}\n")
    print("| what | gradverify | reference point | ratio / note |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()

"""The long fuzz run: >= 100,000 generated inputs through the parser and the loader, and valid random expressions
through the whole engine. Prints one markdown table. Usage:

    python benchmarks/fuzz.py [--inputs 100000] [--verify 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fuzz.strategies import DOC_INPUTS, any_expression, documents, expressions, yaml_texts  # noqa: E402
from verifier.case.loading import load_file  # noqa: E402
from verifier.case.validate import build_case  # noqa: E402
from verifier.errors import CaseError  # noqa: E402
from verifier.language.parse import parse  # noqa: E402
from verifier.runner import verify_case  # noqa: E402


def run(name: str, strategy, body, n: int, stats: dict) -> None:
    counts = {"inputs": 0, "accepted": 0, "rejected (CaseError)": 0, "crashed": 0}
    signatures: dict[str, str] = {}

    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def target(value) -> None:
        counts["inputs"] += 1
        try:
            body(value)
            counts["accepted"] += 1
        except CaseError:
            counts["rejected (CaseError)"] += 1
        except Exception as exc:  # noqa: BLE001 - a crash is what we count
            counts["crashed"] += 1
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            signature = f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
            if signature not in signatures:
                signatures[signature] = f"{value!r:.300}\n{traceback.format_exc(limit=6)}"
            counts[signature] = counts.get(signature, 0) + 1

    start = time.perf_counter()
    target()
    counts["seconds"] = round(time.perf_counter() - start, 1)
    stats[name] = counts
    for signature, example in signatures.items():
        print(f"CRASH {name}: {signature} x{counts[signature]}\n{example}", file=sys.stderr)


def load_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.yaml"
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        cases, errors = load_file(path)
        if errors:
            raise errors[0]


def verify(text: str) -> None:
    result = verify_case(build_case({"name": "fuzz", "inputs": DOC_INPUTS, "function": text}), timeout=60)
    if result.crashed or any(c.error for c in result.checks):
        raise RuntimeError(result.crashed or next(c.error for c in result.checks if c.error))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", type=int, default=100_000, help="parser + loader inputs in all")
    ap.add_argument("--verify", type=int, default=300, help="valid expressions verified end to end")
    args = ap.parse_args()
    stats: dict[str, dict] = {}
    share = args.inputs // 3
    run("expressions -> parse", any_expression, lambda t: parse(t, set(DOC_INPUTS)), share, stats)
    run("documents -> build_case", documents(), lambda d: build_case(d, file="fuzz.yaml"), share, stats)
    run("YAML text -> load_file", yaml_texts, load_text, args.inputs - 2 * share, stats)
    run("valid expressions -> verify_case", expressions(8), verify, args.verify, stats)
    print("| target | inputs | accepted | rejected (CaseError) | crashed | seconds |")
    print("|---|---|---|---|---|---|")
    for name, c in stats.items():
        print(f"| {name} | {c['inputs']} | {c['accepted']} | {c['rejected (CaseError)']} | {c['crashed']} | "
              f"{c['seconds']} |")
    total = sum(c["inputs"] for c in stats.values())
    crashed = sum(c["crashed"] for c in stats.values())
    print(f"\n{total} inputs, {crashed} crashed")
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The `gradverify` command: run, check, list. A thin face over the runner; torch and sympy load only when needed."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Sequence

from .case.suites import SUITES
from .commands import EXIT_FAIL, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, console, progress, refuse_overwrite
from .dtypes import FLOATS as DTYPES
from .limits import Limits, configure, flag
from .version import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gradverify",
        description="Verify PyTorch gradients against exact symbolic derivatives. Exit codes: 0 all pass, "
                    "1 a discrepancy, 2 bad input.",
    )
    p.add_argument("--version", action="version", version=f"gradverify {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="verify every case under the paths (default: cases/)")
    run.add_argument("paths", nargs="*", default=[], help="case files or directories (default: cases/, if there is one)")
    run.add_argument("-k", dest="pattern", help="only cases whose name contains PATTERN (or matches it as a glob)")
    run.add_argument("--dtype", choices=DTYPES, help="override every case's dtype")
    run.add_argument("--seed", type=int, help="seed of the random grad_outputs and tangents (default: each case's)")
    run.add_argument("--json", dest="json_path", metavar="FILE", help="also write a machine-readable report (- for "
                     "stdout; the text report then goes to stderr)")
    run.add_argument("--strict", action="store_true", default=None, help="fail at kinks instead of accepting "
                     "a value between the one-sided derivatives; conformance cases (op:) fail on findings and edges")
    run.add_argument("--timeout", type=float, default=None, help="seconds per case before a 'timeout' verdict "
                     "(default 120; 0 for none)")
    run.add_argument("-v", "--verbose", action="count", default=0, help="-v: the per-case table, the edge points, "
                     "the notes (kinks, undefined points, unsupported paths) and each train loop's log; -vv: every "
                     "check of every case")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("-j", "--jobs", type=int, default=1, help="verify cases in N processes (default 1)")
    run.add_argument("--compile", nargs="?", const="auto", default=None, choices=("auto", "inductor", "aot_eager", "eager"),
                     help="also verify torch.compile(fn) (backend: auto = inductor where a C++ compiler exists, else "
                          "aot_eager) against the exact derivative and against eager")
    run.add_argument("--device", default=None, help="run the torch side on this device (cpu, cuda, cuda:N; default: "
                     "each case's device key, else cpu); the exact reference is the same")

    check = sub.add_parser("check", help='verify one expression, e.g. check "x**2" --at x=3; or your code: '
                           'check --impl pkg.mod:MyFn --at x=[0.5,2] (no expression: derived from its forward)')
    check.add_argument("expression", nargs="?", default=None,
                       help="the function (the case language); with --impl, the reference (default: traced)")
    check.add_argument("--impl", default=None, metavar="MODULE:ATTR",
                       help="verify this callable (a Function, an nn.Module class, a function), imported from the "
                            "working folder or sys.path")
    check.add_argument("--gradient-of", default=None, metavar="EXPR",
                       help="with --impl: the surrogate whose derivatives the backward means (a straight-through "
                            "estimator's)")
    check.add_argument("--at", action="append", default=[], metavar="NAME=VALUE",
                       help="an input value: a number or a list like [1, 2]; repeat for several inputs")
    check.add_argument("--dtype", choices=DTYPES, default="float64")
    check.add_argument("--order", type=int, default=2, help="highest derivative order (default 2)")
    check.add_argument("--seed", type=int, default=None)
    check.add_argument("--strict", action="store_true", default=None)
    check.add_argument("--json", dest="json_path", metavar="FILE")
    check.add_argument("--device", default=None, help="cpu (default), cuda or cuda:N")
    check.add_argument("--compile", nargs="?", const="auto", default=None, choices=("auto", "inductor", "aot_eager", "eager"))

    for command in (run, check):
        command.add_argument("--ops", action="append", default=[], metavar="MODULE",
                             help="import MODULE first: the functions it registers (verifier.register_op) can be used "
                                  "in the expressions (repeat for several)")
        command.add_argument("--no-cache", action="store_true", help="neither read nor write the derivation cache "
                             "(see `gradverify cache`)")
        command.add_argument("--numeric", choices=("torch", "numpy"), help="array library of the float64 screen of "
                             "large tensors (default torch: its math kernels, no autograd; numpy: independent of "
                             "torch). Verdicts at disagreements always come from mpmath")
        limits = command.add_argument_group("limits (against hostile or huge input)")
        for field in fields(Limits):
            if field.name != "brackets":
                limits.add_argument(flag(field.name), dest=f"limit_{field.name}", type=int, metavar="N",
                                    help=f"default {field.default}")

    plot = sub.add_parser("plot", help="draw a case: f, f' and every torch path with their ULP errors; for train "
                                       "cases the loss curves and the fitted line or decision boundary")
    plot.add_argument("case", help="the case's name")
    plot.add_argument("paths", nargs="*", default=["cases"], help="where to look for it (default: cases/)")
    plot.add_argument("-o", "--output", default=None, help="PNG file (default: CASE.png)")
    plot.add_argument("--points", type=int, default=200, help="grid points over the domain (default 200)")
    plot.add_argument("--dtype", choices=DTYPES)

    sweep = sub.add_parser("sweep", help="torch's gradient at >= 10^5 points of each case's domain against the exact "
                                         "derivative: median and max error in ULPs (markdown and CSV tables, plots)")
    sweep.add_argument("paths", nargs="*", default=[], help="case files or directories (default: the bundled ops suite)")
    sweep.add_argument("-k", dest="pattern", help="only cases whose name contains PATTERN (or matches it as a glob)")
    sweep.add_argument("--points", type=int, default=100_000, help="gradient elements per case (default 100000)")
    sweep.add_argument("--seed", type=int, default=0)
    sweep.add_argument("-o", "--out", default=None, metavar="DIR",
                       help="write DIR/sweep.md and DIR/sweep.csv (and DIR/plots/*.png with --plot)")
    sweep.add_argument("--plot", action="store_true", help="also draw the error against the input for each case")
    sweep.add_argument("-j", "--jobs", type=int, default=1, help="sweep in N processes (default 1)")

    conv = sub.add_parser("conventions", help="run the conformance suite and write the table of torch's gradients at "
                                              "edge points (kinks, poles, 0·inf, removable singularities) and findings")
    conv.add_argument("paths", nargs="*", default=[], help="case files or directories (default: the bundled ops suite)")
    conv.add_argument("-o", "--output", default=None, metavar="FILE", help="markdown file (default: print it)")
    conv.add_argument("-j", "--jobs", type=int, default=1, help="verify cases in N processes (default 1)")

    for command, default in ((run, "cases/ if there is one"), (sweep, "ops"), (conv, "ops")):
        command.add_argument("--suite", action="append", default=[], choices=tuple(SUITES), metavar="NAME",
                             help=f"also a suite bundled with gradverify: {', '.join(SUITES)} (the seed examples, the "
                                  f"conformance suite, every bundled case); works from a wheel alone (default: "
                                  f"{default})")
    for command in (run, sweep, conv):
        command.add_argument("--scheduler", default=None, metavar="ADDRESS",
                             help="send the cases to a dask.distributed cluster: a scheduler's address "
                                  "(tcp://host:8786) or local[:N] (a LocalCluster of N worker processes); needs "
                                  "pip install gradverify[distributed]")
        command.add_argument("--shard", default=None, metavar="K/N",
                             help="only the K-th of N deterministic shares of the cases (by name), for CI matrices; "
                                  "`gradverify merge` joins the shards' JSON reports")
    merge = sub.add_parser("merge", help="join the JSON reports of shards (--shard K/N) into one: gradverify merge "
                                         "A.json B.json --json ALL.json")
    merge.add_argument("reports", nargs="+", help="JSON reports of `gradverify run --json`")
    merge.add_argument("--json", dest="json_path", metavar="FILE", required=True, help="the merged report (- for stdout)")

    cache = sub.add_parser("cache", help="the on-disk cache of symbolic derivations: where it is, how big; clear")
    cache.add_argument("action", choices=("info", "clear", "prune"), nargs="?", default="info")

    lst = sub.add_parser("list", help="list the cases under the paths (does not load torch or sympy)")
    lst.add_argument("paths", nargs="*", default=["cases"])
    lst.add_argument("-k", dest="pattern")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return EXIT_INPUT
    configure(**{k[len("limit_"):]: v for k, v in vars(args).items() if k.startswith("limit_")})
    if getattr(args, "numeric", None):
        import os

        os.environ["GRADVERIFY_NUMERIC"] = args.numeric  # read by the vectorised reference (and -j workers)
    if getattr(args, "no_cache", False):
        from .reference.cache import set_enabled

        set_enabled(False)
    if getattr(args, "ops", None):
        from .case.loading import import_ops
        from .errors import CaseError

        try:
            import_ops(args.ops)
        except CaseError as exc:
            print(f"gradverify: --ops: {exc.reason}", file=sys.stderr)
            return EXIT_INPUT
    if getattr(args, "shard", None):
        from .cluster import parse_shard

        try:
            args.shard = parse_shard(args.shard)
        except ValueError as exc:
            print(f"gradverify: {exc}", file=sys.stderr)
            return EXIT_INPUT
    if args.command in ("run", "sweep", "conventions"):
        from .case.suites import suite_path
        from .errors import CaseError

        try:
            args.paths = list(args.paths) + [str(suite_path(name)) for name in args.suite]
            if not args.paths:  # run: the working folder's cases/; sweep and conventions: the bundled ops suite
                args.paths = ["cases"] if args.command == "run" and Path("cases").is_dir() else \
                    [str(suite_path("ops" if args.command != "run" else "seed"))]
        except CaseError as exc:
            print(f"gradverify: {exc.reason}", file=sys.stderr)
            return EXIT_INPUT
    try:
        from . import commands

        return {"run": _run, "check": _check, "list": _list, "plot": commands.plot, "cache": _cache,
                "sweep": commands.sweep, "conventions": commands.conventions,
                "merge": commands.merge}[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _cache(args: argparse.Namespace) -> int:
    from .reference import cache

    where = cache.cache_dir()
    if args.action == "clear":
        count, size = cache.clear()
        print(f"removed {count} entries ({size / 1e6:.1f} MB) from {where}")
        return EXIT_OK
    if args.action == "prune":
        count, size = cache.prune()
        print(f"removed {count} least recently used entries ({size / 1e6:.1f} MB) from {where}")
        return EXIT_OK
    found = cache.entries()
    size = sum(p.stat().st_size for p in found)
    print(f"{where}: {len(found)} entries, {size / 1e6:.1f} MB of at most {cache.MAX_BYTES / 2**20:.0f} MB, the "
          "least recently used removed past it (set GRADVERIFY_CACHE_DIR to move it, GRADVERIFY_CACHE_MB to size it; "
          "--no-cache or GRADVERIFY_NO_CACHE=1 to bypass it)")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from . import report
    from .report import overview
    from .runner import run

    to_stdout = args.json_path == "-"
    out = console(stderr=to_stdout)  # --json -: the JSON is stdout, the words go to stderr
    problem = None if to_stdout else refuse_overwrite(args.json_path, args.paths)
    if problem:
        out.print(f"ERROR {problem}")
        return EXIT_INPUT
    timeout = None if args.timeout == 0 else (args.timeout or 120.0)
    progress_bar, callback = progress(out, "verifying", args.no_progress)
    try:
        result = run(args.paths, pattern=args.pattern, dtype=args.dtype, seed=args.seed, strict=args.strict,
                     timeout=timeout, progress=callback, jobs=max(1, args.jobs), device=args.device,
                     compile=args.compile, scheduler=args.scheduler, shard=args.shard)
    finally:
        if progress_bar is not None:
            progress_bar.stop()
    if args.seed is not None:
        result.seed = args.seed
    verbose = args.verbose
    out.print(report.header(result, verbose=bool(verbose)), soft_wrap=True)
    if result.scheduler or result.shard:
        workers = sorted({r.ran_on for r in result.cases if r.ran_on})
        out.print((f"shard {result.shard[0]}/{result.shard[1]}" if result.shard else "") +
                  (" | " if result.scheduler and result.shard else "") +
                  (f"on {result.scheduler}: {len(workers)} worker(s) ({', '.join(workers[:4])}"
                   f"{', ...' if len(workers) > 4 else ''}; -v: each case's)" if result.scheduler else ""),
                  markup=False, soft_wrap=True)
    if verbose and (result.cases or result.errors):
        out.print(report.table(result))
    elif not verbose:
        for line in overview.file_lines(result):
            out.print(line, markup=False, soft_wrap=True)
    for e in result.errors:
        out.print(report.error_text(e), markup=False, soft_wrap=True)
    for r in result.cases:
        text = report.case_text(r, verbose=bool(verbose)) if verbose or r.status in overview.SHOWN_IN_FULL else ""
        if text:
            out.print(text, markup=False, soft_wrap=True)
            out.print()
        if verbose >= 2 and r.checks:
            out.print(f"{r.name} ({r.location})", markup=False)
            out.print(report.check_table(r))
        for line in report.notes(r, verbose=True) if verbose else ():
            out.print(f"note: {line}", markup=False, soft_wrap=True)
        for line in overview.train_lines(r, verbose=True) if verbose else ():
            out.print(line, markup=False, soft_wrap=True)
    if not verbose:
        for line in overview.finding_lines(result):
            out.print(line, markup=False, soft_wrap=True)
        edges = overview.edge_line(result)
        if edges:
            out.print(edges, markup=False)
    out.print(report.summary(result))
    if args.json_path:  # "-": stdout
        report.write_json(args.json_path, report.run_json(result))
    if result.incomplete:
        return EXIT_INTERRUPTED
    return result.exit_code


def _parse_at(items: Sequence[str]) -> dict[str, Any]:
    import yaml

    from .errors import CaseError

    values: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise CaseError(f"--at takes NAME=VALUE, got {item!r}", file="<command line>")
        try:
            values[name.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise CaseError(f"--at {item!r}: the value is not a number or a list", file="<command line>") from None
    return values


def _check(args: argparse.Namespace) -> int:
    from . import report
    from .case.validate import case_from_expression
    from .errors import CaseError
    from .runner import verify_case, versions

    out = console()
    try:
        if args.expression is None and not args.impl:
            raise CaseError("give an expression, or --impl MODULE:ATTR (its forward is then traced)",
                            file="<command line>")
        case = case_from_expression(args.expression, _parse_at(args.at), name="check", file="<command line>",
                                    dtype=args.dtype, order=args.order, impl=args.impl,
                                    gradient_of=args.gradient_of)
    except CaseError as exc:
        out.print(report.error_text(exc), markup=False)
        return EXIT_INPUT
    result = verify_case(case, seed=args.seed, strict=args.strict, device=args.device, compile=args.compile)
    out.print(report.header(versions=versions(), seed=args.seed or 0))
    shown = args.expression or (result.derived or f"the forward of {args.impl}, traced")
    out.print(f"{shown} at " + ", ".join(f"{k} = {v.tolist()}" for k, v in result.points[0].items())
              if result.points else shown, markup=False)
    if result.checks:
        out.print(report.check_table(result))
    text = report.case_text(result)
    if text:
        out.print(text, markup=False, soft_wrap=True)
    for line in report.notes(result):
        out.print(f"note: {line}", markup=False, soft_wrap=True)
    out.print(f"verdict: {result.status}")
    if args.json_path:
        report.write_json(args.json_path, report.case_json(result))
    return {"pass": EXIT_OK, "invalid": EXIT_INPUT}.get(result.status, EXIT_FAIL)  # a timeout is a failed verdict


def _list(args: argparse.Namespace) -> int:
    from .case.loading import collect

    found = collect(args.paths)
    cases = found.cases
    if args.pattern:
        from fnmatch import fnmatchcase

        glob = any(ch in args.pattern for ch in "*?[")
        cases = [c for c in cases if (fnmatchcase(c.name, args.pattern) if glob else args.pattern in c.name)]
    for c in cases:
        print(f"{c.name}\t{c.location}\t{c.function_text}")
    for e in found.errors:
        print(f"ERROR {e}", file=sys.stdout)
    print(f"{len(cases)} case(s)" + (f", {len(found.errors)} invalid" if found.errors else ""))
    return EXIT_INPUT if found.errors else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

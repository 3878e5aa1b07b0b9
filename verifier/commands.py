"""The commands that survey or gather (plot, sweep, conventions, merge) and the helpers every command's output
shares: the consoles, the progress bar, the exit codes. A face: it imports runner, case.loading and report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, width=160)
    return console


def refuse_overwrite(json_path: str | None, inputs: Sequence[str]) -> str | None:
    if not json_path:
        return None
    target = Path(json_path).resolve()
    for raw in inputs:
        p = Path(raw).resolve()
        if target == p or (p.is_dir() and target.suffix in (".yaml", ".yml") and p in target.parents):
            return f"--json {json_path} would overwrite an input; choose another file"
    if target.is_dir():
        return f"--json {json_path} is a directory"
    return None


def progress(out: Any, what: str, off: bool) -> tuple[Any, Any]:
    """A rich progress bar on stderr while stdout is a terminal (none in CI logs or pipes), and its callback."""
    if off or not out.is_terminal:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console(stderr=True), transient=True)
    task = bar.add_task(what, total=None)

    def callback(result: Any, i: int, n: int) -> None:
        bar.update(task, completed=i, total=n, description=f"{what} {getattr(result, 'name', result)}")

    bar.start()
    return bar, callback


def without_matplotlib(what: str) -> bool:
    """True (after one line saying how to get it) when matplotlib, an optional extra, is not installed."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is not None:
        return False
    print(f"gradverify: {what} draws with matplotlib, which is not installed: pip install gradverify[plot]",
          file=sys.stderr)
    return True


def plot(args: argparse.Namespace) -> int:
    from . import report
    from .case.loading import collect
    from .errors import CaseError

    if without_matplotlib("plot"):
        return EXIT_INPUT

    found = collect(args.paths)
    matches = [c for c in found.cases if c.name == args.case]
    if not matches:
        print(f"ERROR no case named {args.case!r} under {', '.join(args.paths)}")
        return EXIT_INPUT
    case = matches[0]
    output = args.output or f"{case.name}.png"
    if Path(output).suffix.lower() != ".png" or refuse_overwrite(output, args.paths):
        print(f"ERROR -o {output}: give a new .png file")
        return EXIT_INPUT
    import numpy as np

    from .report import plots
    from .survey.curves import sweep_1d, training_curves

    try:
        if case.train is not None:
            plots.plot_training(training_curves(case, args.dtype), output)
        else:
            data = sweep_1d(case, args.points, args.dtype)
            plots.plot_sweep(data, output)
            worst = {k: float(np.nanmax(v)) if np.isfinite(v).any() else float("nan") for k, v in data["ulps"].items()}
            print("max error in ULPs: " + ", ".join(f"{k} {report.fmt(v)}" for k, v in worst.items()))
    except CaseError as exc:
        print(report.error_text(exc))
        return EXIT_INPUT
    print(f"wrote {output}")
    return EXIT_OK


MAX_SWEEP_POINTS = 10_000_000  # exact values are mpmath numbers: about 1 KB each


def sweep(args: argparse.Namespace) -> int:
    from . import report
    from .case.loading import collect, select
    from .report import plots, sweep_tables
    from .report.sweep_tables import short_number
    from .results import SweepResult
    from .survey import sweep

    if args.plot and without_matplotlib("sweep --plot"):
        return EXIT_INPUT
    out = console()
    found = collect(args.paths)
    cases = select(found.cases, args.pattern)
    if args.shard:
        from .cluster import in_shard

        cases = [c for c in cases if in_shard(c.family or c.name, args.shard)]
    for e in found.errors:
        out.print(report.error_text(e), markup=False, soft_wrap=True)
    if not 1 <= args.points <= MAX_SWEEP_POINTS:
        out.print(f"ERROR --points is between 1 and {MAX_SWEEP_POINTS}")
        return EXIT_INPUT
    if args.out and refuse_overwrite(str(Path(args.out) / "sweep.csv"), args.paths):
        out.print(f"ERROR --out {args.out} would overwrite an input")
        return EXIT_INPUT
    bar, callback = progress(out, "sweeping", False)
    try:
        results = sweep.sweep_all(cases, args.points, args.seed, max(1, args.jobs), scheduler=args.scheduler,
                                  progress=(lambda k, n: callback(f"{k}/{n}", k, n)) if callback else None)
    finally:
        if bar is not None:
            bar.stop()
    done = [r for r in results if isinstance(r, SweepResult)]
    failed = [r for r in results if not isinstance(r, SweepResult)]
    from rich.table import Table

    t = Table(header_style="bold")
    for col in ("case", "points", "median ULPs", "max ULPs", "non-finite", "undefined", "finding"):
        t.add_column(col, justify="left" if col == "case" else "right")
    for r in done:
        t.add_row(r.case, str(r.points), short_number(r.median_ulps), short_number(r.max_ulps), str(r.nonfinite),
                  str(r.undefined), "[magenta]yes[/]" if r.finding else "")
    out.print(t)
    for e in failed:
        out.print(report.error_text(e), markup=False, soft_wrap=True)
    if args.out:
        target = Path(args.out)
        target.mkdir(parents=True, exist_ok=True)
        command = "gradverify sweep " + " ".join(args.paths) + (f" -k {args.pattern}" if args.pattern else "") + \
            (f" --points {args.points}" if args.points != 100_000 else "") + f" -o {args.out}" + (" --plot" if args.plot else "")
        report.write_text(target / "sweep.md", sweep_tables.markdown(done, command))
        report.write_text(target / "sweep.csv", sweep_tables.csv_text(done))
        if args.plot:
            (target / "plots").mkdir(exist_ok=True)
            for r in done:
                plots.plot_ulps(r, target / "plots" / f"{r.case}.png")
        out.print(f"wrote {target / 'sweep.md'}, {target / 'sweep.csv'}" + (f" and {len(done)} plots" if args.plot else ""))
    findings = sum(r.finding for r in done)
    out.print(f"{len(done)} swept, {findings} with findings" + (f", {len(failed)} could not be swept" if failed else ""))
    return EXIT_INPUT if failed or found.errors else EXIT_OK


def conventions(args: argparse.Namespace) -> int:
    from . import report
    from .report.conventions import document
    from .runner import run

    if args.output and (Path(args.output).suffix.lower() != ".md" or refuse_overwrite(args.output, args.paths)):
        print(f"ERROR -o {args.output}: give a .md file that is not an input")
        return EXIT_INPUT
    bar, callback = progress(console(), "verifying", False)  # on stderr, while stdout is a terminal
    try:
        result = run(args.paths, strict=False, jobs=max(1, args.jobs), scheduler=args.scheduler, shard=args.shard,
                     progress=callback)
    finally:
        if bar is not None:
            bar.stop()
    for e in result.errors:
        print(report.error_text(e), file=sys.stderr)
    broken = [r for r in result.cases if r.status not in ("pass", "edge", "finding", "xfail")]
    for r in broken:
        print(report.case_text(r), file=sys.stderr)
    command = "gradverify conventions " + " ".join(args.paths) + (f" -o {args.output}" if args.output else "")
    text = document(result, command)
    if args.output:
        report.write_text(args.output, text)
        print(f"wrote {args.output}: {report.summary(result)}")
    else:
        print(text, end="")
    return EXIT_INPUT if result.errors else (EXIT_FAIL if broken else EXIT_OK)


def merge(args: argparse.Namespace) -> int:
    import json

    from . import report
    from .report.merge import merge_reports

    docs = []
    for path in args.reports:
        try:
            docs.append(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            print(f"gradverify merge: {path}: {exc}", file=sys.stderr)
            return EXIT_INPUT
    try:
        merged, lines = merge_reports(docs, args.reports)
    except ValueError as exc:
        print(f"gradverify merge: {exc}", file=sys.stderr)
        return EXIT_INPUT
    stream = sys.stderr if args.json_path == "-" else sys.stdout
    for line in lines:
        print(line, file=stream)
    report.write_json(args.json_path, merged)  # "-": stdout
    return int(merged["exit_code"])

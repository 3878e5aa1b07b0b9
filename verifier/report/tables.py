"""The results tables for the terminal (rich)."""

from __future__ import annotations

import math
from typing import Any

from ..compare import Comparison
from ..results import PASS, SKIP, UNSUPPORTED, CaseResult, RunResult
from .text import fmt, unsupported_text


def table(run: RunResult) -> Any:
    """A rich Table: one row per case."""
    from rich.table import Table

    t = Table(show_lines=False, header_style="bold")
    remote = any(r.ran_on for r in run.cases)  # a run on a dask cluster: which worker verified each case
    for col in ("case", "where", "reference", "checks", "points", "verdict", "time") + (("ran on",) if remote else ()):
        t.add_column(col, justify="right" if col in ("checks", "points", "time") else "left")
    style = {"pass": "green", "xfail": "green", "edge": "cyan", "finding": "magenta", "fail": "bold red",
             "error": "bold red", "timeout": "yellow", "invalid": "yellow", "skip": "dim"}
    for r in run.cases:
        applied = [c for c in r.checks if c.status not in (SKIP, UNSUPPORTED)]
        passed = sum(c.status == PASS for c in applied)
        unsupported = sum(c.status == UNSUPPORTED for c in r.checks)
        shown = f"{passed}/{len(applied)}" + (f" ({unsupported} n/s)" if unsupported else "")
        t.add_row(r.name, r.location, r.reference, shown, str(len(r.points)),
                  f"[{style.get(r.status, 'default')}]{r.status}[/]", f"{r.seconds:.2f}s", *((r.ran_on,) if remote else ()))
    for e in run.errors:
        t.add_row(e.case or "-", f"{e.file}:{e.line}" if e.line else (e.file or ""), "-", "-", "-", "[yellow]invalid[/]",
                  "-", *(("-",) if remote else ()))
    return t


def check_table(result: CaseResult) -> Any:
    """A rich Table for one case: one row per check and torch path."""
    from rich.table import Table

    t = Table(header_style="bold")
    for col in ("check", "quantity", "path", "exact", "torch", "ULPs", "verdict"):
        t.add_column(col)
    for check in result.checks:
        if check.status == SKIP:
            t.add_row(check.check, "-", "-", "-", "-", "-", f"skip: {check.skipped}")
            continue
        if check.status == UNSUPPORTED and not check.unsupported:
            t.add_row(check.check, "-", "-", "-", "-", "-", "not supported: nothing to compare")
            continue
        comparisons: list[Any] = list(check.comparisons)
        if check.check == "accumulate":
            comparisons = _grouped(check.comparisons)  # rows of (label, path, exact, got, ok)
        if check.check == "expect":
            comparisons = _hand_rows(check.comparisons)  # exact is sympy's, torch is torch's, the hand value apart
        for c in comparisons:
            if isinstance(c, tuple):
                label, path, exact, got, ok = c
                t.add_row(check.check, label, path, exact, got, "-", "[green]pass[/]" if ok else "[bold red]FAIL[/]")
                continue
            exact = fmt(c.expected) if c.expected == c.expected_hi else f"[{fmt(c.expected)}, {fmt(c.expected_hi)}]"
            ulps = f"{c.ulps:.2g}" if c.ulps is not None and math.isfinite(c.ulps) else "-"
            t.add_row(check.check, c.label, c.path, exact, fmt(c.got), ulps,
                      "[green]pass[/]" if c.passed else "[bold red]FAIL[/]")
        for f in check.facts:
            t.add_row(check.check, f.label, "-", repr(f.expected), repr(f.got), "-",
                      "[green]pass[/]" if f.passed else "[bold red]FAIL[/]")
        for u in check.unsupported:
            t.add_row(check.check, "-", unsupported_text(u)[:60], "-", "-", "-", "not supported")
        if check.error:
            t.add_row(check.check, "-", "-", "-", "-", "-", "[bold red]error[/]")
    return t


def _hand_rows(comparisons: list[Comparison]) -> list[Any]:
    """An expect check's pairs (hand vs sympy, hand vs autograd) as one row each: the exact column holds sympy's
    value, the torch column torch's, and the hand value (and sympy's formula) is named in the path column."""
    out: list[Any] = []
    k = 0
    while k < len(comparisons):
        first = comparisons[k]
        second = comparisons[k + 1] if k + 1 < len(comparisons) else None
        # a pair: the hand value against sympy (sympy's the exact side), then against autograd (the hand value's)
        if second is not None and second.label == first.label and first.exact_source != "hand" and \
                second.exact_source == "hand":
            hand = first.path.removesuffix(" vs sympy")
            shown = f"{hand} = {fmt(first.got)}"
            if first.formula:
                shown += f"; sympy: {first.formula}"
            out.append((first.label, shown, fmt(first.expected), fmt(second.got), first.passed and second.passed))
            k += 2
        else:
            out.append(first)
            k += 1
    return out


def _grouped(comparisons: list[Comparison]) -> list[tuple[str, str, str, str, bool]]:
    """Accumulation rows folded per path and input: 'x.grad after calls 1..4' with the sequences."""
    groups: dict[tuple[str, str | None], list[Comparison]] = {}
    for c in comparisons:
        groups.setdefault((c.path, c.wrt), []).append(c)
    rows = []
    for (path, wrt), items in groups.items():
        scalar = all(c.n == 1 for c in items)
        exact = ", ".join(fmt(c.expected) for c in items) if scalar else f"{len(items)} tensors"
        got = ", ".join(fmt(c.got) for c in items) if scalar else "-"
        rows.append((f"{wrt}.grad after calls 1..{len(items)}", path, exact, got, all(c.passed for c in items)))
    return rows

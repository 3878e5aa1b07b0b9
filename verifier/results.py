"""Result objects: what a run found, per case, per check. Plain data; the report module words them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .case.model import Case
from .compare import Comparison, Fact
from .errors import CaseError
from .torchside.paths import Unsupported

PASS, FAIL, ERROR, SKIP, TIMEOUT, INVALID, XFAIL = "pass", "fail", "error", "skip", "timeout", "invalid", "xfail"
# a check that compared nothing (every torch path it has is unsupported here): never a pass
UNSUPPORTED = "not supported"
# Verdicts of conformance cases (cases with `op:`, which verify torch's own derivative): every difference lies at a
# classified edge point (EDGE), or torch's gradient is wrong or inaccurate somewhere else (FINDING). Neither fails a
# run unless it is strict.
EDGE, FINDING = "edge", "finding"
OK = (PASS, XFAIL, EDGE, FINDING, SKIP)


@dataclass
class TrainSummary:
    """How a train check's torch.optim loop ran: where it stopped and why, the final loss and parameters, beside the
    loop driven by exact gradients (iterations are 0-based, as a tutorial's `for epoch in range(...)` counts)."""

    iterations: int  # how many ran; the last one is iterations - 1
    stopped: str  # "stop_below" (its loss was below the threshold) or "steps" (the step budget ran out)
    stop_below: float | None
    losses: list[float]  # torch's loss at each iteration (before its step)
    exact_losses: list[float]  # the exact-gradient loop's
    params: dict[str, list[Any]]  # torch's parameters after the last step
    exact_params: dict[str, list[Any]]
    metrics: dict[str, list[float]] = field(default_factory=dict)  # each metric at each iteration (torch's loop)
    log_every: int = 1
    diverged: bool = False  # the loss grew without bound (non-finite, or 100x its start and still rising)


@dataclass
class CheckResult:
    """One check of one case at one point."""

    check: str
    point: int
    comparisons: list[Comparison] = field(default_factory=list)
    facts: list[Fact] = field(default_factory=list)
    skipped: str | None = None  # the reason, when the check does not apply
    error: str | None = None  # an exception from the computation (traceback text)
    unsupported: list[Unsupported] = field(default_factory=list)  # torch paths not verified, and why
    no_kernel: bool = False  # skipped because torch has no kernel for the dtype (float32 runs the same check)
    train: TrainSummary | None = None  # the train check's loop: where it stopped, the final loss and parameters
    seconds: float = 0.0  # the time this check took at this point (the case's shared work is not in it)

    @property
    def status(self) -> str:
        if self.error:
            return ERROR
        if self.skipped is not None:
            return SKIP
        if any(not c.passed for c in self.comparisons) or any(not f.passed for f in self.facts):
            return FAIL
        if not self.comparisons and not self.facts:
            return UNSUPPORTED
        return PASS

    def failures(self) -> tuple[list[Comparison], list[Fact]]:
        return [c for c in self.comparisons if not c.passed], [f for f in self.facts if not f.passed]


@dataclass
class CaseResult:
    """Everything verified for one case (or why it could not be)."""

    name: str
    case: Case | None = None
    checks: list[CheckResult] = field(default_factory=list)
    error: CaseError | None = None  # the case is invalid or hit a limit
    timed_out: float | None = None
    crashed: str | None = None  # an unexpected exception in the engine, with traceback
    user_error: str | None = None  # the case's impl failed to import or to build, with traceback
    seconds: float = 0.0
    evaluation: str = ""
    reference: str = "expand"  # the kind of exact reference (reference.base.ReferenceKind's value)
    points: list[dict[str, Any]] = field(default_factory=list)
    point_kinds: list[str] = field(default_factory=list)  # what kind each point is ("" for the case's own)
    dtype: str = "float64"
    strict: bool = False  # edges and findings of a conformance case fail
    skipped: str | None = None  # why the case did not run here (its device is not available)
    device: str = ""  # where the torch side ran (the run's settled device; default: the case's)
    limit_enforced: bool = True  # False: a time limit was asked for where none can interrupt (off the main thread)
    trace_note: str = ""  # a traced forward that reads tensor values: how its traces compare between points
    derived: str = ""  # a traced forward: which code, and the formula derived from it (sympy's text, shortened)
    ran_on: str = ""  # the dask worker that verified it (a run with --scheduler); "" for this process

    def __post_init__(self) -> None:
        if not self.device:
            self.device = self.case.device if self.case is not None else "cpu"

    @property
    def status(self) -> str:
        if self.error is not None:
            return INVALID
        if self.skipped is not None:
            return SKIP
        if self.timed_out is not None:
            return TIMEOUT
        if self.crashed or self.user_error:
            return ERROR
        statuses = {c.status for c in self.checks}
        wanted = self.case.expect_failure if self.case is not None else None
        if wanted is not None:
            return XFAIL if self.expected_failure_seen() else FAIL
        if ERROR in statuses:
            return ERROR
        conformance = self.case is not None and self.case.op is not None and not self.strict
        if FAIL in statuses:
            if not conformance or any(f for c in self.checks for f in c.failures()[1]):
                return FAIL
            return FINDING if self.findings() else EDGE
        if conformance and self.edges():
            return EDGE
        return PASS

    def findings(self) -> list[Comparison]:
        """Failing comparisons with mismatches away from every edge point."""
        return [c for ch in self.checks for c in ch.comparisons if not c.passed and c.unclassified]

    def edges(self) -> list[tuple[CheckResult, Comparison]]:
        """Comparisons that met edge points (kinks, poles, 0·inf, removable singularities, outside the domain)."""
        return [(ch, c) for ch in self.checks for c in ch.comparisons if c.edge_count]

    def diagnoses(self) -> set[str]:
        """The diagnosis kinds of every failing comparison, and the causes of every failing fact that names one."""
        return ({c.diagnosis.kind for ch in self.checks for c in ch.comparisons if not c.passed and c.diagnosis}
                | {f.cause for ch in self.checks for f in ch.facts if not f.passed and f.cause})

    def expected_failure_seen(self) -> bool:
        wanted = self.case.expect_failure if self.case is not None else None
        failed = any(c.status in (FAIL, ERROR) for c in self.checks)
        return bool(wanted) and failed and (wanted == "any" or wanted in self.diagnoses())

    @property
    def location(self) -> str:
        if self.case is not None:
            return self.case.location
        if self.error is not None and self.error.file:
            return f"{self.error.file}:{self.error.line}" if self.error.line else self.error.file
        return ""


def died_result(case: Case, dtype: str, how: str) -> CaseResult:
    """The verdict of a case whose worker process died under it (how: the signal or exit code)."""
    res = CaseResult(name=case.name, case=case, dtype=dtype)
    res.crashed = (f"the case's process died ({how}): a crash of the code under test (an extension, os._exit, the "
                   "out-of-memory killer); the other cases ran on")
    return res


def stuck_result(case: Case, dtype: str, limit: float) -> CaseResult:
    """The verdict of a case whose worker was killed past its time limit (the limit held inside a C call too)."""
    res = CaseResult(name=case.name, case=case, dtype=dtype)
    res.timed_out = limit
    return res


@dataclass
class RunResult:
    """A whole run: every case result and every input error, with the run's settings."""

    cases: list[CaseResult] = field(default_factory=list)
    errors: list[CaseError] = field(default_factory=list)  # files or cases that could not be loaded
    seed: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    incomplete: bool = False
    shard: tuple[int, int] | None = None  # (K, N): this run verified the K-th of N shares of the cases
    scheduler: str | None = None  # the dask cluster the cases ran on

    @property
    def exit_code(self) -> int:
        """0: everything passed; 1: a discrepancy, a timed-out case or an engine error; 2: bad input (after running
        the rest); 130: interrupted (what finished is reported). The JSON report's exit_code is this one."""
        if self.incomplete:
            return 130
        if self.errors or any(c.status == INVALID for c in self.cases):
            return 2
        if any(c.status not in OK for c in self.cases):
            return 1
        return 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cases:
            out[c.status] = out.get(c.status, 0) + 1
        if self.errors:
            out[INVALID] = out.get(INVALID, 0) + len(self.errors)
        return out


FINDING_ULPS = 16.0  # a max error above this many ULPs of the dtype is marked a finding in the table


@dataclass
class SweepResult:
    """One case swept: error statistics in ULPs of its dtype over every sampled gradient element."""

    case: str
    op: str
    dtype: str
    points: int  # gradient elements compared (both finite)
    samples: int
    median_ulps: float
    max_ulps: float
    p999_ulps: float
    worst: dict[str, Any]  # inputs at the worst sample, the element, exact and torch values
    nonfinite: int  # torch NaN/inf where the exact derivative is finite
    undefined: int  # elements where the exact derivative does not exist or overflows the dtype
    seconds: float
    x: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # first input's value per element (plots)
    ulps: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    input_name: str = ""

    @property
    def finding(self) -> bool:
        return self.max_ulps > FINDING_ULPS or self.nonfinite > 0


WIDE = 100.0  # a domain wider than this (or spanning more than 3 decades) is sampled log-spaced

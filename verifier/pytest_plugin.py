"""The pytest plugin: every YAML case is collected as one test item per check (``file.yaml::case[check]``).

Registered through the ``pytest11`` entry point. YAML files are collected when they lie under a directory named in
the ``verifier_case_dirs`` ini option (default: ``cases``) or are named on the command line. Follows pytest's
documented recipe for non-Python tests: pytest_collect_file -> File -> Item, repr_failure, reportinfo.
"""

from __future__ import annotations

import re
import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .dtypes import FLOATS
from .errors import CaseError, DeviceUnavailable, FindingWarning

if TYPE_CHECKING:  # the case model loads numpy: only once a case file is collected
    from .case.model import Case
    from .config import RunConfig

SUFFIXES = (".yaml", ".yml")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("verifier", "gradverify: YAML gradient cases")
    group.addoption("--verifier-dtype", choices=FLOATS, default=None,
                    help="override every case's dtype")
    group.addoption("--verifier-seed", type=int, default=None, help="seed of random grad_outputs and tangents")
    group.addoption("--verifier-device", default=None, help="run the torch side on this device (cpu, cuda, cuda:N); "
                    "cases skip where it is not available")
    group.addoption("--verifier-strict", action="store_true", default=None,
                    help="fail at kinks; conformance cases (op:) fail on findings and edges")
    group.addoption("--verifier-timeout", type=float, default=120.0, help="seconds per case (0: none)")
    group.addoption("--verifier-no-collect", action="store_true", help="do not collect YAML cases")
    group.addoption("--verifier-no-cache", action="store_true", help="neither read nor write the derivation cache")
    parser.addini("verifier_case_dirs", type="args", default=["cases"],
                  help="directory names whose YAML files are gradverify cases")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("verifier_no_cache", default=False):
        from .reference.cache import set_enabled

        set_enabled(False)


RUN_CONFIG = pytest.StashKey["RunConfig"]()


def run_config(config: pytest.Config) -> RunConfig:
    """The --verifier-* options as one frozen run configuration, settled once per session (in pytest's stash)."""
    if RUN_CONFIG not in config.stash:
        from .config import RunConfig

        opt = config.getoption
        config.stash[RUN_CONFIG] = RunConfig(
            dtype=opt("verifier_dtype"), seed=opt("verifier_seed"), strict=opt("verifier_strict"),
            timeout=opt("verifier_timeout") or None, device=opt("verifier_device"))
    return config.stash[RUN_CONFIG]


def _header(config: pytest.Config) -> str:
    seed = config.getoption("verifier_seed")
    return (f"gradverify {_version('gradverify')}: torch {_version('torch')}, sympy {_version('sympy')}, "
            f"seed {seed if seed is not None else 'per case'}")


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> str | None:
    """Our line in pytest's header only when case files were collected (a plain test run never sees it)."""
    if any(isinstance(i, (CaseItem, InvalidCase)) for i in items):
        return _header(config)
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Under xdist the controller collects nothing itself: the header, once, when a worker collected case files."""
    config = node.config
    if HEADER_SHOWN in config.stash or not any(i.split("::")[0].endswith(SUFFIXES) for i in ids):
        return
    config.stash[HEADER_SHOWN] = True
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(_header(config))


HEADER_SHOWN = pytest.StashKey[bool]()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `-n N --dist load` (xdist's default), each case file goes to one worker whole: a case is verified once
    for all its checks (the items of one case share that work), not again on every worker that gets one of them.
    Other tests are scheduled one by one, as `load` does. An explicit --dist loadfile/loadscope/... is left alone."""
    if config.getoption("dist", "no") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class CaseFileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path.endswith(SUFFIXES) else nodeid

    return CaseFileScheduling(config, log)


def _explicit(config: pytest.Config) -> set[Path]:
    out = set()
    for arg in config.args:
        path = Path(arg.split("::")[0])
        if path.suffix in SUFFIXES:
            out.add(path.resolve())
    return out


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    config = parent.config
    if file_path.suffix not in SUFFIXES or config.getoption("verifier_no_collect"):
        return None
    dirs = set(config.getini("verifier_case_dirs"))
    try:
        parts = file_path.resolve().relative_to(config.rootpath.resolve()).parts[:-1]
    except ValueError:
        parts = file_path.parts[:-1]
    if dirs & set(parts) or file_path.resolve() in _explicit(config):
        return CaseFile.from_parent(parent, path=file_path)
    return None


TAG_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a tag that can be a marker (a name -m expressions can use)
MARKERS = pytest.StashKey[set]()


def _register_marker(config: pytest.Config, tag: str) -> None:
    """A case file's tag, registered as a marker (so --strict-markers accepts it) the first time it is seen."""
    seen = config.stash.setdefault(MARKERS, set())
    if tag not in seen:
        seen.add(tag)
        config.addinivalue_line("markers", f"{tag}: gradverify cases tagged {tag!r}")


class CaseFailure(Exception):
    """A case check failed; the message is gradverify's report."""


class CaseFile(pytest.File):
    """One YAML file: an item per case and check, and a failing item per broken case."""

    def collect(self) -> Any:
        from .case.loading import load_file

        cases, errors = load_file(self.path)
        self._results: dict[str, Any] = {}
        for error in errors:
            yield InvalidCase.from_parent(self, name=error.case or f"line{error.line or 0}", error=error)
        for case in cases:
            for check in case.checks:
                item = CaseItem.from_parent(self, name=f"{case.name}[{check}]", case=case, check=check)
                for tag in case.tags:  # a case's tags are its items' markers: -m 'not slow'
                    if TAG_RE.match(tag):
                        _register_marker(self.config, tag)
                        item.add_marker(tag)
                yield item

    def verified(self, case: Case) -> Any:
        """The case's result if it has been verified in this session (None before)."""
        return self._results.get(case.name)

    def result_for(self, case: Case) -> Any:
        """Verify a case once (all its checks) and share the result between its items."""
        if case.name not in self._results:
            from .runner import verify_with

            self._results[case.name] = verify_with(case, run_config(self.config))
        return self._results[case.name]


class CaseItem(pytest.Item):
    """One check of one case."""

    def __init__(self, *, case: Case, check: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.check = check

    def runtest(self) -> None:
        from . import report

        assert isinstance(self.parent, CaseFile)  # items are collected by their file
        result = self.parent.result_for(self.case)
        if isinstance(result.error, DeviceUnavailable):
            pytest.skip(str(result.error.reason))
        if result.skipped:
            pytest.skip(result.skipped)
        if result.status in ("invalid", "timeout") or result.crashed or result.user_error:
            raise CaseFailure(report.case_text(result))
        if self.case.expect_failure:
            if not result.expected_failure_seen():
                raise CaseFailure(report.case_text(result))
            mine = [c for c in result.checks if c.check == self.check and c.status in ("fail", "error")]
            if mine:
                pytest.xfail(f"deliberately broken: failed as expected ({self.case.expect_failure})")
            return
        mine = [c for c in result.checks if c.check == self.check]
        if result.status in ("edge", "finding"):  # a conformance case: torch's own behaviour, reported, not failed
            text = report.case_text(result, checks={self.check})
            if text:  # at the case's own line of its YAML file, where the user looks (not at this module)
                warnings.warn_explicit(FindingWarning(text), FindingWarning, filename=str(self.path),
                                       lineno=self.case.line or 1, module="verifier.cases")
            return
        if mine and all(c.status == "skip" for c in mine):
            pytest.skip(mine[0].skipped or "does not apply")
        if mine and all(c.status == report.UNSUPPORTED for c in mine):  # compared nothing: never a pass
            why = "; ".join(report.unsupported_text(u) for c in mine for u in c.unsupported[:2])
            pytest.skip(f"not supported by torch here: {why or 'the check had nothing to compare'}")
        text = report.case_text(result, checks={self.check})
        if text:
            raise CaseFailure(text)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, (CaseFailure, FindingWarning)):  # -W error::verifier.FindingWarning: our report
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, (self.case.line or 1) - 1, f"{self.case.name}[{self.check}]"


class InvalidCase(pytest.Item):
    """A case that could not be loaded: it fails with the error, the file's other cases still run."""

    def __init__(self, *, error: CaseError, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error = error

    def runtest(self) -> None:
        raise CaseFailure(f"ERROR {self.error}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return str(excinfo.value)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, (self.error.line or 1) - 1, f"invalid case {self.name}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Each case item is charged its own check's time and an equal share of the case's common work (the exact
    reference, the torch inputs), not the first item the whole case: what JUnit XML and --durations show."""
    outcome = yield
    if call.when != "call" or not isinstance(item, CaseItem) or not isinstance(item.parent, CaseFile):
        return
    report = outcome.get_result()
    if report.skipped and isinstance(report.longrepr, tuple):  # -rs: where the case is, not where we skipped it
        report.longrepr = (str(item.path), item.case.line or 1, report.longrepr[2])
    result = item.parent.verified(item.case)
    if result is None or not result.checks:
        return
    own = sum(c.seconds for c in result.checks if c.check == item.check)
    common = max(0.0, result.seconds - sum(c.seconds for c in result.checks)) / max(1, len(item.case.checks))
    report.duration = own + common

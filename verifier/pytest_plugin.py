"""The pytest plugin: every YAML case is collected as one test item per check (``file.yaml::case[check]``).

Registered through the ``pytest11`` entry point. YAML files are collected when they lie under a directory named in
the ``verifier_case_dirs`` ini option (default: ``cases``) or are named on the command line. Follows pytest's
documented recipe for non-Python tests: pytest_collect_file -> File -> Item, repr_failure, reportinfo.
"""

from __future__ import annotations

import warnings
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .dtypes import FLOATS
from .errors import CaseError, DeviceUnavailable

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


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.getoption("verifier_no_collect"):
        return None
    seed = config.getoption("verifier_seed")
    return (f"gradverify {_version('gradverify')}: torch {_version('torch')}, sympy {_version('sympy')}, "
            f"seed {seed if seed is not None else 'per case'}")


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
                yield CaseItem.from_parent(self, name=f"{case.name}[{check}]", case=case, check=check)

    def result_for(self, case: Case) -> Any:
        """Verify a case once (all its checks) and share the result between its items."""
        if case.name not in self._results:
            from .runner import verify_with

            self._results[case.name] = verify_with(case, run_config(self.config))
        return self._results[case.name]


class FindingWarning(UserWarning):
    """A finding of a conformance case (torch's own gradient wrong or inaccurate): reported, not failed, unless
    --verifier-strict."""


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
            if text:
                warnings.warn(FindingWarning(text), stacklevel=1)
            return
        if mine and all(c.status == "skip" for c in mine):
            pytest.skip(mine[0].skipped or "does not apply")
        if mine and all(c.status == report.UNSUPPORTED for c in mine):  # compared nothing: never a pass
            pytest.skip("not supported by torch here: " + "; ".join(
                report.unsupported_text(u) for c in mine for u in c.unsupported[:2]) or "nothing to compare")
        text = report.case_text(result, checks={self.check})
        if text:
            raise CaseFailure(text)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CaseFailure):
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

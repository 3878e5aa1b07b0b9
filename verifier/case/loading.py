"""YAML -> Case: a line-tracking safe loader with limits, and collection that keeps going past broken cases."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import CaseError, LimitError
from ..limits import LIMITS, flag
from .fields import kind
from .model import Case
from .validate import build_case, build_cases, case_from_expression

__all__ = ["CASE_SUFFIXES", "Collection", "build_case", "case_from_expression", "collect", "load_cases", "load_file"]

CASE_SUFFIXES = (".yaml", ".yml")




class _Map(dict):
    """A YAML mapping that remembers its line and the line of each key."""

    line: int | None = None
    key_lines: dict[Any, int]


class _Loader(yaml.SafeLoader):
    """SafeLoader with line numbers, duplicate-key errors and limits on aliases and nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > LIMITS.yaml_aliases:
                mark = self.peek_event().start_mark
                raise LimitError(f"more than {LIMITS.yaml_aliases} YAML aliases (*ref) in one file; aliases are "
                                 f"limited to stop 'billion laughs' documents (raise it with {flag('yaml_aliases')})",
                                 line=mark.line + 1)
        self.depth += 1
        try:
            if self.depth > LIMITS.yaml_depth:
                mark = self.peek_event().start_mark
                raise LimitError(f"YAML nests deeper than {LIMITS.yaml_depth} levels "
                                 f"(raise it with {flag('yaml_depth')})", line=mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Any:
    data = _Map()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise CaseError(f"a mapping key must be a plain value, got {type(key).__name__}",
                            line=key_node.start_mark.line + 1) from None
        if key in data:
            raise CaseError(f"key {key!r} appears twice in one mapping", line=key_node.start_mark.line + 1,
                            key=str(key))
        data.key_lines[key] = key_node.start_mark.line + 1
        data[key] = loader.construct_object(value_node, deep=True)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)


@dataclass
class Collection:
    """What loading found: the valid cases and one error per broken file or case."""

    cases: list[Case] = field(default_factory=list)
    errors: list[CaseError] = field(default_factory=list)


def load_cases(path: str | Path) -> list[Case]:
    """Load every case under a file or directory; raise the first CaseError if any case is broken."""
    found = collect([path])
    if found.errors:
        raise found.errors[0]
    return found.cases


def collect(paths: Iterable[str | Path]) -> Collection:
    """Load every case under the given files and directories, keeping going past broken ones."""
    out = Collection()
    seen: dict[str, Case] = {}
    read: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in CASE_SUFFIXES and p.is_file())
            if not files:
                out.errors.append(CaseError("directory holds no case files (*.yaml, *.yml)", file=str(path)))
        elif path.is_file():
            files = [path]
        else:
            out.errors.append(CaseError("no such file or directory", file=str(path)))
            files = []
        for file in files:
            if file.resolve() in read:  # one file named twice (a path and a suite holding it): read once
                continue
            read.add(file.resolve())
            cases, errors = load_file(file)
            out.errors.extend(errors)
            for case in cases:
                if case.name in seen:
                    first = seen[case.name]
                    out.errors.append(CaseError(
                        f"duplicate case name {case.name!r}: already defined at {first.location}; names are unique",
                        file=case.file, line=case.line, case=case.name, key="name"))
                    continue
                seen[case.name] = case
                out.cases.append(case)
    return out


def load_file(path: str | Path) -> tuple[list[Case], list[CaseError]]:
    """Load one YAML file: the valid cases and the errors of the broken ones."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return [], [CaseError(f"cannot read file: {exc.strerror}", file=file)]
    if len(raw) > LIMITS.yaml_bytes:
        return [], [LimitError(f"file is {len(raw)} bytes; the limit is {LIMITS.yaml_bytes} (split the file, or "
                               f"raise it with {flag('yaml_bytes')})", file=file)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return [], [CaseError(f"file is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                              file=file, line=line)]
    try:
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]  # noqa: S506 - a SafeLoader
    except CaseError as exc:
        return [], [exc.located(file=file)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return [], [CaseError(f"invalid YAML: {reason}", file=file, line=mark.line + 1 if mark else None)]
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        return [], [CaseError(f"invalid YAML: {type(exc).__name__}: {str(exc)[:200]}", file=file)]
    entries: list[Any] = []
    for doc in docs:
        entries.extend(doc if isinstance(doc, list) else [doc])
    if not entries:
        return [], [CaseError("file holds no cases (it is empty)", file=file)]
    cases, errors = [], []
    for entry in entries:
        try:
            if isinstance(entry, Mapping) and set(entry) == {"ops"}:  # functions this file's cases use
                import_ops(entry["ops"], Path(path).resolve().parent)
                continue
            if not isinstance(entry, Mapping):
                raise CaseError(f"a case is a mapping of keys, got {kind(entry)}")
            cases.extend(build_cases(entry, file=file))
        except CaseError as exc:
            name = entry.get("name") if isinstance(entry, Mapping) and isinstance(entry.get("name"), str) else None
            errors.append(exc.located(file=file, line=getattr(entry, "line", None), case=name))
    return cases, errors


OPS_MODULE_RE = re.compile(r"^(?!.*__)[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def import_ops(value: Any, folder: Path | None = None) -> None:
    """Import the modules that register a case file's functions (``ops: mypkg.gradverify_ops``, or a list): user code,
    imported when the file is loaded to run, from the file's folder, the working folder or sys.path (like impl:)."""
    import importlib
    import os
    import sys

    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) and OPS_MODULE_RE.match(n) for n in names):
        raise CaseError(f"ops names a module or a list of modules (dotted names, no '__'), got {kind(value)}",
                        key="ops")
    search = [str(d) for d in (folder, Path(os.getcwd())) if d is not None]
    added = [d for d in search if d not in sys.path]
    sys.path[:0] = added
    try:
        for name in names:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as exc:
                raise CaseError(f"ops: no module named {exc.name!r} (looked in {', '.join(search)} and sys.path)",
                                key="ops") from None
        _remember(names, search)
    finally:
        for d in added:
            sys.path.remove(d)


OPS_ENV = "GRADVERIFY_OPS"  # module@folder;... imported again in spawned workers (they do not inherit registrations)


def _remember(names: list[str], search: list[str]) -> None:
    import os

    known = [e for e in os.environ.get(OPS_ENV, "").split(";") if e]
    for name in names:
        entry = f"{name}@{search[0] if search else ''}"
        if entry not in known:
            known.append(entry)
    os.environ[OPS_ENV] = ";".join(known)


def reimport_ops() -> None:
    """In a worker process: import the modules the parent imported for ops: keys and --ops."""
    import os

    for entry in [e for e in os.environ.get(OPS_ENV, "").split(";") if e]:
        name, _, folder = entry.partition("@")
        import_ops(name, Path(folder) if folder else None)


def select(cases: list[Case], pattern: str | None) -> list[Case]:
    """Cases whose name contains the pattern (or matches it as a glob when it has * ? [)."""
    if not pattern:
        return cases
    if any(ch in pattern for ch in "*?["):
        return [c for c in cases if fnmatch.fnmatchcase(c.name, pattern)]
    return [c for c in cases if pattern in c.name]

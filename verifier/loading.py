"""YAML -> Case: a line-tracking safe loader, validation with errors that point into the file, and collection."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .case import CHECKS, DIAGNOSES, DTYPES, Case, Define, Expect, Input, Tolerance
from .errors import CaseError, LimitError
from .expr import infer_shape, parse
from .limits import LIMITS, flag
from .ops import CONSTANTS, OPS, Shape

MAX_ORDER = 6
CASE_SUFFIXES = (".yaml", ".yml")
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
VAR_RE = re.compile(r"^(?!.*__)[A-Za-z][A-Za-z0-9_]{0,63}$")  # no '__': reserved for element symbols
CASE_KEYS = (
    "name", "description", "inputs", "define", "function", "dtype", "checks", "expect", "tolerance", "points",
    "domain", "samples", "seed", "order", "grad_output", "retain_grad", "backward", "accumulate", "strict", "tags",
    "impl", "impl_args", "impl_kwargs", "module_params", "expect_failure", "train", "picture",
)
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
IMPL_RE = re.compile(rf"^(?!.*__){_DOTTED}:{_DOTTED}$")  # package.module:attr, no dunder anywhere
INPUT_KEYS = ("value", "shape", "sample", "seed", "requires_grad", "fill")
CONSTRUCTORS = ("eye", "ones", "zeros", "arange", "full")
RESERVED = {"output"}


class _Map(dict):  # type: ignore[type-arg]
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
            if not isinstance(entry, Mapping):
                raise CaseError(f"a case is a mapping of keys, got {_kind(entry)}")
            cases.append(build_case(entry, file=file))
        except CaseError as exc:
            name = entry.get("name") if isinstance(entry, Mapping) and isinstance(entry.get("name"), str) else None
            errors.append(exc.located(file=file, line=getattr(entry, "line", None), case=name))
    return cases, errors


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r:.60})"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


class _Ctx:
    """Builds errors that name the line of a key inside the case being validated."""

    def __init__(self, doc: Mapping[str, Any], file: str | None) -> None:
        self.doc = doc
        self.file = file
        self.name = doc.get("name") if isinstance(doc.get("name"), str) else None

    def line(self, mapping: Any, key: Any = None) -> int | None:
        lines = getattr(mapping, "key_lines", {})
        return lines.get(key) or getattr(mapping, "line", None) or getattr(self.doc, "line", None)

    def locate(self, key: str) -> int | None:
        """The line of a dotted key like 'inputs.x.shape': the deepest part of the path that has a line."""
        node: Any = self.doc
        line = self.line(self.doc, key.split(".")[0])
        for part in key.split("."):
            part = part.split("[")[0]
            if not isinstance(node, Mapping) or part not in node:
                break
            line = getattr(node, "key_lines", {}).get(part, line)
            node = node[part]
        return line

    def error(self, key: str, message: str, mapping: Any = None, subkey: Any = None) -> CaseError:
        if mapping is not None:
            line = self.line(mapping, subkey if subkey is not None else key)
        else:
            line = self.locate(key)
        return CaseError(message, file=self.file, line=line, case=self.name, key=key)

    def wrap(self, exc: CaseError, key: str, mapping: Any = None, subkey: Any = None) -> CaseError:
        return exc.located(file=self.file, line=self.line(mapping if mapping is not None else self.doc,
                                                          subkey if subkey is not None else key),
                           case=self.name, key=key)


def _check_keys(ctx: _Ctx, mapping: Mapping[str, Any], allowed: tuple[str, ...], key: str) -> None:
    for k in mapping:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = f"{key}.{k}" if key else str(k)
            raise ctx.error(where, f"unknown key {k!r}{hint}; allowed keys: {', '.join(allowed)}", mapping, k)


def number(value: Any, *, finite: bool = True) -> float:
    """A YAML scalar as a float ('1e-12' is a string to YAML 1.1); ValueError when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number, got {_kind(value)}")
    if isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {_kind(value)}") from None
    else:
        try:
            out = float(value)
        except OverflowError:
            raise ValueError(f"number {value} is too large") from None
    if finite and not math.isfinite(out):
        raise ValueError(f"expected a finite number, got {value!r}")
    return out


def tensor(value: Any, *, finite: bool = False) -> np.ndarray:
    """A number or a nested list of numbers as a float64 array; ValueError when ragged or not numeric."""
    if isinstance(value, list):
        flat: list[float] = []
        shape = _nested_shape(value, flat, 0)
        if math.prod(shape) > LIMITS.elements:
            raise ValueError(f"literal has {math.prod(shape)} elements; the limit is {LIMITS.elements} "
                             f"(raise it with {flag('elements')})")
        return np.array([number(v, finite=finite) for v in flat], dtype=np.float64).reshape(shape)
    return np.array(number(value, finite=finite), dtype=np.float64)


def _nested_shape(value: Any, flat: list[Any], depth: int) -> Shape:
    if depth > 8:
        raise ValueError("literal tensor nests deeper than 8 dimensions")
    if not isinstance(value, list):
        flat.append(value)
        return ()
    if not value:
        raise ValueError("empty lists are not tensors here")
    shapes = {_nested_shape(v, flat, depth + 1) for v in value}
    if len(shapes) != 1:
        raise ValueError("ragged nested list: every row must have the same length")
    return (len(value),) + shapes.pop()


def _shape(ctx: _Ctx, value: Any, key: str, mapping: Any) -> Shape:
    if isinstance(value, bool) or not (isinstance(value, list) or isinstance(value, int)):
        raise ctx.error(key, f"shape must be a list of non-negative integers, got {_kind(value)}", mapping, "shape")
    dims = value if isinstance(value, list) else [value]
    if len(dims) > 8 or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d for d in dims):
        raise ctx.error(key, f"shape must be a list of at most 8 positive integers, got {value!r:.80}", mapping, "shape")
    if math.prod(dims) > LIMITS.elements:
        raise LimitError(f"shape {dims} has {math.prod(dims)} elements; the limit is {LIMITS.elements} "
                         f"(raise it with {flag('elements')})",
                         file=ctx.file, line=ctx.line(mapping, "shape"), case=ctx.name, key=key)
    return tuple(dims)


def value_spec(ctx: _Ctx, spec: Any, key: str, seed: int, *, default_shape: Shape | None = None) -> tuple[np.ndarray, bool]:
    """Parse an input-like value: number, literal list or {value|sample, shape, ...}; returns (array, requires_grad)."""
    parent = spec if isinstance(spec, Mapping) else None
    if not isinstance(spec, Mapping):
        try:
            return tensor(spec), True
        except ValueError as exc:
            raise ctx.error(key, str(exc)) from None
    _check_keys(ctx, spec, INPUT_KEYS, key)
    requires_grad = spec.get("requires_grad", True)
    if not isinstance(requires_grad, bool):
        raise ctx.error(f"{key}.requires_grad", f"expected true or false, got {_kind(requires_grad)}", parent,
                        "requires_grad")
    shape = _shape(ctx, spec["shape"], key, parent) if "shape" in spec else default_shape
    if "sample" in spec and "value" in spec:
        raise ctx.error(key, "give either value or sample, not both", parent, "sample")
    if "sample" in spec:
        return _sample(ctx, spec, key, shape or (), spec.get("seed", seed)), requires_grad
    if "value" not in spec:
        raise ctx.error(key, "needs a value (number, list or one of " + ", ".join(CONSTRUCTORS) + ") or a sample",
                        parent)
    raw = spec["value"]
    if isinstance(raw, str) and raw in CONSTRUCTORS:
        if shape is None:
            raise ctx.error(f"{key}.shape", f"constructor {raw!r} needs a shape", parent, "value")
        return _construct(ctx, raw, shape, spec, key), requires_grad
    try:
        array = tensor(raw)
    except ValueError as exc:
        hint = f"; constructors: {', '.join(CONSTRUCTORS)}" if isinstance(raw, str) else ""
        raise ctx.error(f"{key}.value", f"{exc}{hint}", parent, "value") from None
    if shape is not None and array.shape != shape:
        if array.ndim:
            raise ctx.error(f"{key}.shape", f"value has shape {list(array.shape)} but shape says {list(shape)}",
                            parent, "shape")
        array = np.full(shape, float(array))
    return array, requires_grad


def _construct(ctx: _Ctx, name: str, shape: Shape, spec: Mapping[str, Any], key: str) -> np.ndarray:
    if name == "eye":
        if len(shape) != 2:
            raise ctx.error(f"{key}.shape", f"eye needs a 2-D shape, got {list(shape)}", spec, "shape")
        return np.eye(*shape)
    if name == "ones":
        return np.ones(shape)
    if name == "zeros":
        return np.zeros(shape)
    if name == "arange":
        return np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    if "fill" not in spec:
        raise ctx.error(f"{key}.fill", "constructor 'full' needs a fill value", spec, "value")
    try:
        return np.full(shape, number(spec["fill"]))
    except ValueError as exc:
        raise ctx.error(f"{key}.fill", str(exc), spec, "fill") from None


def _sample(ctx: _Ctx, spec: Mapping[str, Any], key: str, shape: Shape, seed: Any) -> np.ndarray:
    sample = spec["sample"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ctx.error(f"{key}.seed", f"seed must be a non-negative integer, got {_kind(seed)}", spec, "seed")
    if not isinstance(sample, Mapping) or len(sample) != 1 or next(iter(sample)) not in ("uniform", "normal"):
        raise ctx.error(f"{key}.sample", "sample is {uniform: [low, high]} or {normal: [mean, std]}, got "
                        f"{_kind(sample)}", spec, "sample")
    (kind, params), = sample.items()
    try:
        if not isinstance(params, list) or len(params) != 2:
            raise ValueError(f"{kind} takes two numbers, got {_kind(params)}")
        a, b = number(params[0]), number(params[1])
        if (kind == "uniform" and not a < b) or (kind == "normal" and not b > 0):
            raise ValueError(f"{kind} needs {'low < high' if kind == 'uniform' else 'std > 0'}, got {params}")
    except ValueError as exc:
        raise ctx.error(f"{key}.sample", str(exc), spec, "sample") from None
    rng = np.random.default_rng(seed)
    return rng.uniform(a, b, size=shape) if kind == "uniform" else rng.normal(a, b, size=shape)


def _variable_name(ctx: _Ctx, name: Any, key: str, mapping: Any) -> str:
    if not isinstance(name, str) or not VAR_RE.match(name):
        raise ctx.error(key, f"name {name!r:.60} must be a letter followed by letters, digits or single '_'", mapping, name)
    if name in OPS or name in CONSTANTS or name in RESERVED:
        raise ctx.error(key, f"name {name!r} is taken by the language (a function, constant or 'output')",
                        mapping, name)
    return name


def build_case(doc: Mapping[str, Any], *, file: str | None = None) -> Case:
    """Validate one case mapping and build its Case; CaseError names the key at fault."""
    ctx = _Ctx(doc, file)
    _check_keys(ctx, doc, CASE_KEYS, "")
    name = doc.get("name")
    if name is None:
        raise ctx.error("name", "missing required key 'name' (an id of letters, digits, '_', '.', '-')")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ctx.error("name", f"name must match [A-Za-z0-9_.-]{{1,100}}, got {_kind(name)}")
    if "function" not in doc:
        raise ctx.error("function", "missing required key 'function' (the expression to verify)")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise ctx.error("description", f"expected a string, got {_kind(description)}")
    seed = doc.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ctx.error("seed", f"seed must be an integer in [0, 2**32), got {_kind(seed)}")

    raw_inputs = doc.get("inputs", {})
    if not isinstance(raw_inputs, Mapping):
        raise ctx.error("inputs", f"inputs is a mapping of name: value, got {_kind(raw_inputs)}")
    inputs = []
    for i, (iname, spec) in enumerate(raw_inputs.items()):
        iname = _variable_name(ctx, iname, "inputs", raw_inputs)
        array, requires_grad = value_spec(ctx, spec, f"inputs.{iname}", [seed, i])  # type: ignore[arg-type]
        inputs.append(Input(iname, array, requires_grad, ctx.line(raw_inputs, iname)))
    shapes: dict[str, Shape] = {i.name: i.shape for i in inputs}

    raw_defines = doc.get("define", {})
    if not isinstance(raw_defines, Mapping):
        raise ctx.error("define", f"define is a mapping of name: expression, got {_kind(raw_defines)}")
    defines = []
    for dname, text in raw_defines.items():
        dname = _variable_name(ctx, dname, "define", raw_defines)
        if dname in shapes:
            raise ctx.error(f"define.{dname}", f"{dname!r} is already an input", raw_defines, dname)
        try:
            node = parse(text, set(shapes))
            shapes[dname] = infer_shape(node, shapes)
        except CaseError as exc:
            raise ctx.wrap(exc, f"define.{dname}", raw_defines, dname) from None
        defines.append(Define(dname, node, str(text), ctx.line(raw_defines, dname)))
    try:
        function = parse(doc["function"], set(shapes))
        output_shape = infer_shape(function, shapes)
    except CaseError as exc:
        raise ctx.wrap(exc, "function") from None

    dtype = doc.get("dtype", "float64")
    if dtype not in DTYPES:
        raise ctx.error("dtype", f"dtype {dtype!r:.40} is not supported; allowed: {', '.join(DTYPES)}")
    checks = _checks(ctx, doc.get("checks"))
    order = doc.get("order", 2)
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= MAX_ORDER:
        raise ctx.error("order", f"order is the highest derivative order, an integer 1..{MAX_ORDER}, got {_kind(order)}")
    tolerance = _tolerance(ctx, doc.get("tolerance"))
    by_name = {i.name: i for i in inputs}
    points = _points(ctx, doc, by_name, seed)
    grad_output = None
    if "grad_output" in doc:
        grad_output, _ = value_spec(ctx, doc["grad_output"], "grad_output", seed, default_shape=output_shape)
        if grad_output.shape != output_shape:
            try:
                grad_output = np.broadcast_to(grad_output, output_shape).copy() if grad_output.ndim == 0 else None
            except ValueError:
                grad_output = None
            if grad_output is None:
                raise ctx.error("grad_output", f"grad_output must have the output's shape {list(output_shape)}")
    retain = doc.get("retain_grad", [])
    if not isinstance(retain, list) or any(r not in {d.name for d in defines} for r in retain):
        raise ctx.error("retain_grad", f"retain_grad lists intermediates of define "
                        f"({', '.join(d.name for d in defines) or 'none'}), got {retain!r:.80}")
    backward_calls, zero_grad = _backward(ctx, doc.get("backward", {}))
    accumulate_calls = _int_option(ctx, doc.get("accumulate", {}), "accumulate", "calls", 4, 2, 100)
    strict = doc.get("strict", False)
    if not isinstance(strict, bool):
        raise ctx.error("strict", f"expected true or false, got {_kind(strict)}")
    tags = doc.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ctx.error("tags", f"tags is a list of strings, got {_kind(tags)}")
    expect = _expect(ctx, doc.get("expect"), by_name, {d.name for d in defines}, output_shape, shapes)
    impl = _impl(ctx, doc, by_name)
    expect_failure = doc.get("expect_failure")
    if expect_failure is not None and expect_failure not in DIAGNOSES:
        raise ctx.error("expect_failure", f"expect_failure is a diagnosis, one of {', '.join(DIAGNOSES)}; "
                        f"got {_kind(expect_failure)}")
    from .training import parse_train

    train = parse_train(ctx, doc.get("train"), by_name, output_shape) if "train" in doc else None
    if train is None and "train" in checks:
        raise ctx.error("checks", "the train check needs a `train` section")
    if train is not None and doc.get("checks") is None:
        checks = checks + ("train",)
    return Case(
        name=name, function=function, function_text=str(doc["function"]), inputs=tuple(inputs),
        defines=tuple(defines), description=description, dtype=dtype, checks=checks, expect=expect,
        tolerance=tolerance, points=points, order=order, grad_output=grad_output, retain_grad=tuple(retain),
        backward_calls=backward_calls, zero_grad=zero_grad, accumulate_calls=accumulate_calls, strict=strict,
        seed=seed, file=file, line=getattr(doc, "line", None), shapes=shapes, output_shape=output_shape,
        tags=tuple(tags), expect_failure=expect_failure, train=train, **impl,
        domain=_domain_bounds(doc), picture=_picture(ctx, doc.get("picture"), set(shapes)),
    )


PICTURES = {"line_fit": ("x", "y", "w", "b"), "decision_boundary": ("class0", "class1", "w", "b")}


def _picture(ctx: _Ctx, raw: Any, names: set[str]) -> dict[str, Any]:
    """What `gradverify plot` draws for a train case: a fitted line over points, or a decision boundary."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or raw.get("kind") not in PICTURES:
        raise ctx.error("picture", f"picture is {{kind: {' | '.join(PICTURES)}, ...}}, got {_kind(raw)}")
    want = PICTURES[raw["kind"]]
    _check_keys(ctx, raw, ("kind", *want), "picture")
    for key in want:
        if raw.get(key) not in names:
            raise ctx.error(f"picture.{key}", f"picture.{key} names an input or intermediate, got {_kind(raw.get(key))}",
                            raw, key)
    return dict(raw)


def _domain_bounds(doc: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """The validated domain (the points were already built from it) as bounds, for plots and sweeps."""
    raw = doc.get("domain") or {}
    return {n: (number(b[0]), number(b[1])) for n, b in raw.items()}


def _plain(value: Any, depth: int = 0) -> bool:
    """Constructor arguments are plain data: numbers, strings, booleans, null, lists and mappings of them."""
    if depth > 6:
        return False
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False


def _impl(ctx: _Ctx, doc: Mapping[str, Any], inputs: dict[str, Input]) -> dict[str, Any]:
    """impl: "package.module:attr" (user code, imported only when this case runs), its constructor arguments and
    the module parameters that are inputs."""
    if "impl" not in doc:
        for key in ("impl_args", "impl_kwargs", "module_params"):
            if key in doc:
                raise ctx.error(key, f"{key} needs an impl")
        return {}
    target = doc["impl"]
    if not isinstance(target, str) or not IMPL_RE.match(target):
        raise ctx.error("impl", f"impl is 'package.module:attr' (names only, no '__'), got {_kind(target)}")
    args = doc.get("impl_args", [])
    if not isinstance(args, list) or not _plain(args):
        raise ctx.error("impl_args", f"impl_args is a list of plain values, got {_kind(args)}")
    kwargs = doc.get("impl_kwargs", {})
    if not isinstance(kwargs, Mapping) or not _plain(kwargs):
        raise ctx.error("impl_kwargs", f"impl_kwargs is a mapping of plain values, got {_kind(kwargs)}")
    params = doc.get("module_params", {})
    if not isinstance(params, Mapping) or not all(isinstance(k, str) and v in inputs for k, v in params.items()):
        raise ctx.error("module_params", "module_params maps a module parameter name to an input name "
                        f"(inputs: {', '.join(inputs)}), got {params!r:.80}")
    return {"impl": target, "impl_args": tuple(args), "impl_kwargs": dict(kwargs), "module_params": dict(params)}


def _checks(ctx: _Ctx, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return tuple(c for c in CHECKS if c != "train")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ctx.error("checks", f"checks is a list of: {', '.join(CHECKS)}; got {_kind(raw)}")
    for c in raw:
        if c not in CHECKS:
            close = difflib.get_close_matches(str(c), CHECKS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ctx.error("checks", f"unknown check {c!r:.40}{hint}; allowed: {', '.join(CHECKS)}")
    return tuple(dict.fromkeys(raw))


def _tolerance(ctx: _Ctx, raw: Any) -> Tolerance | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ctx.error("tolerance", f"tolerance is {{rtol: R, atol: A}}, got {_kind(raw)}")
    _check_keys(ctx, raw, ("rtol", "atol"), "tolerance")
    if set(raw) != {"rtol", "atol"}:
        raise ctx.error("tolerance", "give rtol and atol together, e.g. {rtol: 1e-12, atol: 0}")
    try:
        rtol, atol = number(raw["rtol"]), number(raw["atol"])
    except ValueError as exc:
        raise ctx.error("tolerance", str(exc)) from None
    if rtol < 0 or atol < 0:
        raise ctx.error("tolerance", f"rtol and atol must be >= 0, got rtol={rtol}, atol={atol}")
    return Tolerance(rtol, atol)


def _int_option(ctx: _Ctx, raw: Any, key: str, sub: str, default: int, lo: int, hi: int) -> int:
    if not isinstance(raw, Mapping):
        raise ctx.error(key, f"{key} is a mapping like {{{sub}: {default}}}, got {_kind(raw)}")
    value = raw.get(sub, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ctx.error(f"{key}.{sub}", f"expected an integer in {lo}..{hi}, got {_kind(value)}", raw, sub)
    return value


def _backward(ctx: _Ctx, raw: Any) -> tuple[int, bool]:
    if not isinstance(raw, Mapping):
        raise ctx.error("backward", f"backward is a mapping like {{calls: 1, zero_grad: true}}, got {_kind(raw)}")
    _check_keys(ctx, raw, ("calls", "zero_grad"), "backward")
    calls = _int_option(ctx, raw, "backward", "calls", 1, 1, 100)
    zero = raw.get("zero_grad", True)
    if not isinstance(zero, bool):
        raise ctx.error("backward.zero_grad", f"expected true or false, got {_kind(zero)}", raw, "zero_grad")
    return calls, zero


def _points(ctx: _Ctx, doc: Mapping[str, Any], inputs: dict[str, Input], seed: int) -> tuple[dict[str, np.ndarray], ...]:
    base = {n: i.value for n, i in inputs.items()}
    points: list[dict[str, np.ndarray]] = []
    raw = doc.get("points")
    if raw is not None:
        if not isinstance(raw, list) or not raw:
            raise ctx.error("points", f"points is a list of mappings {{input: value}}, got {_kind(raw)}")
        for k, entry in enumerate(raw):
            if not isinstance(entry, Mapping):
                raise ctx.error("points", f"point {k + 1} is {_kind(entry)}, expected a mapping {{input: value}}")
            point = dict(base)
            for n, v in entry.items():
                if n not in inputs:
                    raise ctx.error("points", f"point {k + 1} names {n!r}, which is not an input; inputs: "
                                    f"{', '.join(inputs)}", entry, n)
                point[n] = _fit(ctx, v, inputs[n], f"points[{k + 1}].{n}", entry)
            points.append(point)
    domain = doc.get("domain")
    if domain is not None:
        if not isinstance(domain, Mapping) or not domain:
            raise ctx.error("domain", f"domain is a mapping {{input: [low, high]}}, got {_kind(domain)}")
        samples = doc.get("samples", 5)
        if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples:
            raise ctx.error("samples", f"samples is a positive integer, got {_kind(samples)}")
        if samples > LIMITS.points:
            raise LimitError(f"samples is {samples}; the limit is {LIMITS.points} (raise it with {flag('points')})",
                             file=ctx.file, line=ctx.locate("samples"), case=ctx.name, key="samples")
        rng = np.random.default_rng([seed, 7919])
        bounds = {}
        for n, b in domain.items():
            if n not in inputs:
                raise ctx.error("domain", f"{n!r} is not an input; inputs: {', '.join(inputs)}", domain, n)
            try:
                if not isinstance(b, list) or len(b) != 2:
                    raise ValueError(f"expected [low, high], got {_kind(b)}")
                lo, hi = number(b[0]), number(b[1])
                if not lo < hi:
                    raise ValueError(f"expected low < high, got {b}")
            except ValueError as exc:
                raise ctx.error(f"domain.{n}", str(exc), domain, n) from None
            bounds[n] = (lo, hi)
        for _ in range(samples):
            point = dict(base)
            for n, (lo, hi) in bounds.items():
                point[n] = rng.uniform(lo, hi, size=inputs[n].shape)
            points.append(point)
    elif "samples" in doc:
        raise ctx.error("samples", "samples needs a domain: {input: [low, high]}")
    if len(points) > LIMITS.points:
        raise LimitError(f"{len(points)} points; the limit is {LIMITS.points} (raise it with {flag('points')})",
                         file=ctx.file,
                         line=ctx.line(doc, "points"), case=ctx.name, key="points")
    return tuple(points) or (base,)


def _fit(ctx: _Ctx, raw: Any, target: Input | Shape, key: str, mapping: Any, subkey: Any = None) -> np.ndarray:
    """A literal value checked against (or broadcast from a scalar to) the expected shape."""
    shape = target.shape if isinstance(target, Input) else target
    try:
        array = tensor(raw)
    except ValueError as exc:
        raise ctx.error(key, str(exc), mapping, subkey if subkey is not None else key.rsplit(".", 1)[-1]) from None
    if array.shape == shape:
        return array
    if array.ndim == 0:
        return np.full(shape, float(array))
    raise ctx.error(key, f"value has shape {list(array.shape)}, expected {list(shape)}", mapping,
                    subkey if subkey is not None else key.rsplit(".", 1)[-1])


def _hand(ctx: _Ctx, raw: Any, shape: Shape, key: str, mapping: Any, subkey: Any, shapes: dict[str, Shape]) -> Any:
    """A hand-derived value: a number, a nested list, or a formula in the case language (the manual derivative)."""
    if isinstance(raw, str) and not _is_number(raw):
        try:
            node = parse(raw, set(shapes))
            got = infer_shape(node, shapes)
        except CaseError as exc:
            raise ctx.wrap(exc, key, mapping, subkey) from None
        if got != shape and got != ():
            raise ctx.error(key, f"formula {raw!r:.60} has shape {list(got)}, expected {list(shape)}", mapping, subkey)
        return node
    return _fit(ctx, raw, shape, key, mapping, subkey)


def _is_number(text: str) -> bool:
    try:
        number(text, finite=False)
    except ValueError:
        return False
    return True


def _expect(ctx: _Ctx, raw: Any, inputs: dict[str, Input], defines: set[str], output_shape: Shape,
            shapes: dict[str, Shape] | None = None) -> Expect:
    if raw is None:
        return Expect()
    if not isinstance(raw, Mapping):
        raise ctx.error("expect", f"expect is a mapping of check: values, got {_kind(raw)}")
    _check_keys(ctx, raw, ("value", "grad", "vjp", "accumulate", "higher", "graph"), "expect")
    diff = {n: i for n, i in inputs.items() if i.requires_grad}

    def per_input(key: str) -> dict[str, Any]:
        section = raw.get(key, {})
        if not isinstance(section, Mapping):
            raise ctx.error(f"expect.{key}", f"expected a mapping {{input: value}}, got {_kind(section)}", raw, key)
        for n in section:
            if n not in diff:
                raise ctx.error(f"expect.{key}", f"{n!r} is not a differentiable input; those are: "
                                f"{', '.join(diff) or '(none)'}", section, n)
        return dict(section)

    shapes = shapes or {}
    value = _hand(ctx, raw["value"], output_shape, "expect.value", raw, "value", shapes) if "value" in raw else None
    grad = {n: _hand(ctx, v, diff[n].shape, f"expect.grad.{n}", raw.get("grad"), n, shapes)
            for n, v in per_input("grad").items()}
    vjp = {n: _hand(ctx, v, diff[n].shape, f"expect.vjp.{n}", raw.get("vjp"), n, shapes)
           for n, v in per_input("vjp").items()}
    accumulate = {}
    for n, seq in per_input("accumulate").items():
        if not isinstance(seq, list) or not seq:
            raise ctx.error(f"expect.accumulate.{n}", f"expected a list, one value per backward call, got {_kind(seq)}",
                            raw.get("accumulate"), n)
        accumulate[n] = tuple(_fit(ctx, v, diff[n], f"expect.accumulate.{n}", raw.get("accumulate"), n) for v in seq)
    higher = {}
    section = raw.get("higher", {})
    if not isinstance(section, Mapping):
        raise ctx.error("expect.higher", f"expected a mapping {{order: value}}, got {_kind(section)}", raw, "higher")
    n_diff = sum(i.value.size for i in diff.values())
    for order, v in section.items():
        if isinstance(order, bool) or not isinstance(order, int) or not 2 <= order <= MAX_ORDER:
            raise ctx.error("expect.higher", f"orders are integers 2..{MAX_ORDER}, got {order!r:.20}", section, order)
        higher[order] = _hand(ctx, v, (n_diff,) * order, f"expect.higher.{order}", section, order, shapes)
    graph = {}
    section = raw.get("graph", {})
    if not isinstance(section, Mapping):
        raise ctx.error("expect.graph", f"expected a mapping {{node: facts}}, got {_kind(section)}", raw, "graph")
    for node, facts in section.items():
        if node not in inputs and node not in defines and node != "output":
            raise ctx.error("expect.graph", f"{node!r} is not a node; nodes: {', '.join([*inputs, *defines, 'output'])}",
                            section, node)
        if not isinstance(facts, Mapping):
            raise ctx.error(f"expect.graph.{node}", f"expected a mapping of facts, got {_kind(facts)}", section, node)
        _check_keys(ctx, facts, ("is_leaf", "requires_grad", "grad_fn", "grad"), f"expect.graph.{node}")
        checked: dict[str, Any] = {}
        for k, v in facts.items():
            if k in ("is_leaf", "requires_grad") and not isinstance(v, bool):
                raise ctx.error(f"expect.graph.{node}.{k}", f"expected true or false, got {_kind(v)}", facts, k)
            if k == "grad_fn" and v is not None and not isinstance(v, str):
                raise ctx.error(f"expect.graph.{node}.grad_fn", f"expected a class name or null, got {_kind(v)}",
                                facts, k)
            if k == "grad" and v is not None:
                try:
                    v = tensor(v)
                except ValueError as exc:
                    raise ctx.error(f"expect.graph.{node}.grad", str(exc), facts, k) from None
            checked[k] = v
        graph[node] = checked
    return Expect(value=value, grad=grad, vjp=vjp, accumulate=accumulate, higher=higher, graph=graph)


def case_from_expression(
    expression: str,
    inputs: Mapping[str, Any],
    *,
    name: str = "expression",
    file: str | None = None,
    **options: Any,
) -> Case:
    """Build a Case from an expression and input values (numbers or nested lists), through the same validation."""
    doc: dict[str, Any] = {"name": name, "function": expression, "inputs": dict(inputs)}
    doc.update({k: v for k, v in options.items() if v is not None})
    return build_case(doc, file=file)

"""A case mapping -> a validated Case: every key checked, every error naming the key and its line."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import CaseError
from ..language.analysis import infer_shape
from ..language.parse import did_you_mean, parse
from ..language.shapes import Shape
from .catalog import CHECKS, DEFAULT
from .complex import COMPLEX_DTYPES, as_complex_case
from .draws import is_draw, parse_draw, torch_seed_of
from .expect import parse_expect
from .fields import IMPL_RE, Ctx, check_keys, kind, number, value_spec, variable_name
from .model import COMPILE_BACKENDS, DIAGNOSES, DTYPES, MAX_ORDER, REFERENCES, Case, Define, Input, Tolerance
from .points import domain_bounds, parse_bounds, parse_points, wants_auto

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
CASE_KEYS = (
    "name", "description", "inputs", "define", "function", "dtype", "checks", "expect", "tolerance", "points",
    "domain", "samples", "seed", "order", "grad_output", "retain_grad", "backward", "accumulate", "strict", "reference", "tags",
    "impl", "impl_args", "impl_kwargs", "module_params", "expect_failure", "train", "picture", "op", "sweep",
    "device", "compile", "gradient_of", "torch_seed",
)
# what a case without `function` (its impl's forward traced) cannot have: they need the output's shape or its nodes
# before anything runs
NEEDS_FUNCTION = ("define", "expect", "grad_output", "retain_grad", "train", "picture")
DEVICE_RE = re.compile(r"^(cpu|cuda|cuda:[0-9]{1,2})$")
OP_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def build_cases(doc: Mapping[str, Any], *, file: str | None = None) -> list[Case]:
    """Validate one case mapping: one Case, or one per dtype when ``dtype`` lists several (named NAME.DTYPE)."""
    dtypes = doc.get("dtype")
    if not isinstance(dtypes, list):
        return [build_case(doc, file=file)]
    ctx = Ctx(doc, file)
    allowed = DTYPES + tuple(COMPLEX_DTYPES)
    if not dtypes or len(set(map(str, dtypes))) != len(dtypes) or any(d not in allowed for d in dtypes):
        raise ctx.error("dtype", f"dtype is one of {', '.join(allowed)} or a list of distinct ones, got {kind(dtypes)}")
    if len({d in COMPLEX_DTYPES for d in dtypes}) > 1:
        raise ctx.error("dtype", "a dtype list is all real or all complex (the inputs are stored differently)")
    base = build_case(doc, file=file, dtype=dtypes[0])
    names = [f"{base.name}.{d}" for d in dtypes]
    if any(not NAME_RE.match(n) for n in names):
        raise ctx.error("name", f"name {base.name!r} is too long to take a .{dtypes[0]} suffix (100 characters)")
    return [replace(base, name=n, dtype=COMPLEX_DTYPES.get(d, d), family=base.name) for n, d in zip(names, dtypes)]


def build_case(doc: Mapping[str, Any], *, file: str | None = None, dtype: str | None = None,
               traced: bool = False) -> Case:
    """Validate one case mapping and build its Case; CaseError names the key at fault.

    A case with an impl and no function (or ``traced``, the helper called without a reference) takes its function
    from the impl's forward, traced when it runs."""
    ctx = Ctx(doc, file)
    check_keys(ctx, doc, CASE_KEYS, "")
    name = doc.get("name")
    if name is None:
        raise ctx.error("name", "missing required key 'name' (an id of letters, digits, '_', '.', '-')")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ctx.error("name", f"name must match [A-Za-z0-9_.-]{{1,100}}, got {kind(name)}")
    traced = traced or ("function" not in doc and "impl" in doc)
    if "function" not in doc and not traced:
        raise ctx.error("function", "missing required key 'function' (the expression to verify; an impl case may "
                        "leave it out: its forward is traced)")
    for key in NEEDS_FUNCTION if traced else ():
        if key in doc:
            raise ctx.error(key, f"{key} needs a written function: the traced forward's shape and intermediates "
                            "are known only when it runs")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise ctx.error("description", f"expected a string, got {kind(description)}")
    seed = doc.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ctx.error("seed", f"seed must be an integer in [0, 2**32), got {kind(seed)}")

    wanted = dtype or doc.get("dtype")
    complex_case = isinstance(wanted, str) and wanted in COMPLEX_DTYPES  # anything else is checked below
    raw_inputs = doc.get("inputs", {})
    if not isinstance(raw_inputs, Mapping):
        raise ctx.error("inputs", f"inputs is a mapping of name: value, got {kind(raw_inputs)}")
    inputs = []
    own_complex: dict[str, str] = {}  # inputs with their own complex dtype beside real ones
    torch_seed = torch_seed_of(ctx, doc)
    for i, (iname, spec) in enumerate(raw_inputs.items()):
        iname = variable_name(ctx, iname, "inputs", raw_inputs)
        if is_draw(spec):
            draw, placeholder, requires_grad = parse_draw(ctx, spec, f"inputs.{iname}", torch_seed)
            inputs.append(Input(iname, placeholder, requires_grad, ctx.line(raw_inputs, iname), draw=draw))
            continue
        own = spec.get("dtype") if isinstance(spec, Mapping) else None
        if own in COMPLEX_DTYPES:
            own_complex[iname] = own
        array, requires_grad = value_spec(ctx, spec, f"inputs.{iname}", [seed, i],  # type: ignore[arg-type]  # YAML keys are strings: variable_name checked it
                                          complex_values=complex_case or own in COMPLEX_DTYPES)
        integer = _integer(ctx, spec, f"inputs.{iname}", array, requires_grad)
        inputs.append(Input(iname, array, requires_grad, ctx.line(raw_inputs, iname), integer=integer))
    shapes: dict[str, Shape] = {i.name: i.shape for i in inputs}

    raw_defines = doc.get("define", {})
    if not isinstance(raw_defines, Mapping):
        raise ctx.error("define", f"define is a mapping of name: expression, got {kind(raw_defines)}")
    defines = []
    for dname, text in raw_defines.items():
        dname = variable_name(ctx, dname, "define", raw_defines)
        if dname in shapes:
            raise ctx.error(f"define.{dname}", f"{dname!r} is already an input", raw_defines, dname)
        try:
            node = parse(text, set(shapes))
            shapes[dname] = infer_shape(node, shapes)
        except CaseError as exc:
            raise ctx.wrap(exc, f"define.{dname}", raw_defines, dname) from None
        defines.append(Define(dname, node, str(text), ctx.line(raw_defines, dname)))
    function, output_shape = _function(ctx, doc, shapes, traced)
    value_function = None
    if "gradient_of" in doc:
        try:
            surrogate = parse(doc["gradient_of"], set(shapes))
            shape = infer_shape(surrogate, shapes)
        except CaseError as exc:
            raise ctx.wrap(exc, "gradient_of") from None
        if not traced and shape != output_shape:
            raise ctx.error("gradient_of", f"gradient_of has the shape {list(shape)}, the function {list(output_shape)}")
        value_function, function, output_shape = (None if traced else function), surrogate, shape

    mixed = bool(own_complex) and not complex_case
    if mixed:  # a complex input beside real ones: the parts' dtype is the case's
        parts = {COMPLEX_DTYPES[d] for d in own_complex.values()}
        dtype = dtype or doc.get("dtype") or next(iter(parts))
        if parts != {dtype}:
            raise ctx.error("inputs", f"complex inputs of a {dtype} case are complex128 (float64 parts) or complex64 "
                            f"(float32 parts) to match, got {', '.join(sorted(set(own_complex.values())))}")
    dtype = dtype or doc.get("dtype", "float64")
    if complex_case:
        dtype = COMPLEX_DTYPES[dtype]  # the parts' dtype; the inputs are complex
    if dtype not in DTYPES:
        raise ctx.error("dtype", f"dtype {dtype!r:.40} is not supported; allowed: "
                        f"{', '.join(DTYPES + tuple(COMPLEX_DTYPES))}")
    checks = _checks(ctx, doc.get("checks"))
    order = doc.get("order", 2)
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= MAX_ORDER:
        raise ctx.error("order", f"order is the highest derivative order, an integer 1..{MAX_ORDER}, got {kind(order)}")
    tolerance = _tolerance(ctx, doc.get("tolerance"))
    by_name = {i.name: i for i in inputs}
    points = parse_points(ctx, doc, by_name, seed, complex_case or mixed)
    grad_output = None
    if "grad_output" in doc:
        grad_output, _ = value_spec(ctx, doc["grad_output"], "grad_output", seed, default_shape=output_shape,
                                    complex_values=complex_case)
        if grad_output.shape != output_shape:
            try:
                grad_output = np.broadcast_to(grad_output, output_shape).copy() if grad_output.ndim == 0 else None
            except ValueError:
                grad_output = None
            if grad_output is None:
                raise ctx.error("grad_output", f"grad_output must have the output's shape {list(output_shape)}")
    retain = doc.get("retain_grad", [])
    names = {d.name for d in defines}
    if not isinstance(retain, list) or any(not isinstance(r, str) or r not in names for r in retain):
        raise ctx.error("retain_grad", f"retain_grad lists intermediates of define "
                        f"({', '.join(d.name for d in defines) or 'none'}), got {retain!r:.80}")
    backward_calls, zero_grad = _backward(ctx, doc.get("backward", {}))
    accumulate_calls = _int_option(ctx, doc.get("accumulate", {}), "accumulate", "calls", 4, 2, 100)
    strict = doc.get("strict", False)
    if not isinstance(strict, bool):
        raise ctx.error("strict", f"expected true or false, got {kind(strict)}")
    reference = doc.get("reference", "auto")
    if reference not in REFERENCES:
        raise ctx.error("reference", f"reference is one of {', '.join(REFERENCES)}; got {kind(reference)}")
    tags = doc.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ctx.error("tags", f"tags is a list of strings, got {kind(tags)}")
    expect = parse_expect(ctx, doc.get("expect"), by_name, {d.name for d in defines}, output_shape, shapes)
    impl = _impl(ctx, doc, by_name)
    for inp in inputs:
        taken = impl.get("module_params", {})
        if inp.draw is not None and inp.draw.kind == "module" and taken.get(inp.draw.param) != inp.name:
            raise ctx.error(f"inputs.{inp.name}.param", f"draw: module takes {inp.draw.param!r} from the case's impl "
                            f"module: the case needs an impl and module_params {{{inp.draw.param}: {inp.name}}}",
                            raw_inputs[inp.name], "param")
    expect_failure = doc.get("expect_failure")
    if expect_failure is not None and expect_failure not in DIAGNOSES:
        raise ctx.error("expect_failure", f"expect_failure is a diagnosis, one of {', '.join(DIAGNOSES)}; "
                        f"got {kind(expect_failure)}")
    op = doc.get("op")
    if op is not None and (not isinstance(op, str) or not OP_RE.match(op) or len(op) > 100):
        raise ctx.error("op", f"op names the torch operation this case verifies (e.g. torch.sinc), got {kind(op)}")
    sweep = parse_bounds(ctx, doc, "sweep", by_name) if "sweep" in doc else {}
    if (op is not None or wants_auto(doc)) and doc.get("checks") is None and "positions" not in checks:
        checks = checks + ("positions", "inplace")  # the points that expose bugs come with these checks
    device = doc.get("device", "cpu")
    if not isinstance(device, str) or not DEVICE_RE.match(device):
        raise ctx.error("device", f"device is cpu, cuda or cuda:N, got {kind(device)}")
    compile_ = doc.get("compile", False)
    if compile_ is True:
        compile_ = "auto"
    if compile_ is not False and compile_ not in COMPILE_BACKENDS:
        raise ctx.error("compile", f"compile is true, false or a backend ({', '.join(COMPILE_BACKENDS)}), got {kind(compile_)}")
    compile_ = compile_ or ("auto" if "compile" in checks else None)
    if compile_ and doc.get("checks") is None and "compile" not in checks:
        checks = checks + ("compile",)
    from .train import parse_train

    train = parse_train(ctx, doc.get("train"), by_name, output_shape, shapes) if "train" in doc else None
    if train is None and "train" in checks:
        raise ctx.error("checks", "the train check needs a `train` section")
    if train is not None and doc.get("checks") is None:
        checks = checks + ("train",)
    case = Case(
        name=name, function=function, function_text=str(doc.get("gradient_of", doc.get("function", ""))),
        inputs=tuple(inputs), traced=traced, surrogate="gradient_of" in doc, value_function=value_function,
        defines=tuple(defines), description=description, dtype=dtype, checks=checks, expect=expect,
        tolerance=tolerance, points=points, order=order, grad_output=grad_output, retain_grad=tuple(retain),
        backward_calls=backward_calls, zero_grad=zero_grad, accumulate_calls=accumulate_calls, strict=strict,
        reference=reference, seed=seed, file=file, line=getattr(doc, "line", None), shapes=shapes, output_shape=output_shape,
        tags=tuple(tags), expect_failure=expect_failure, train=train, torch_seed=torch_seed, **impl,
        domain=domain_bounds(doc), picture=_picture(ctx, doc.get("picture"), set(shapes)), op=op,
        sweep=sweep, device=device, compile=compile_, auto_points=wants_auto(doc) or op is not None,
    )
    if mixed:
        return as_complex_case(ctx, doc, case, tuple(own_complex))
    return as_complex_case(ctx, doc, case) if complex_case else case


def _function(ctx: Ctx, doc: Mapping[str, Any], shapes: dict[str, Shape], traced: bool) -> tuple[Any, Shape]:
    """The written function and its shape (a traced case's: a placeholder until the trace supplies them)."""
    if traced:
        from ..language.nodes import Num

        return Num("0"), ()
    try:
        function = parse(doc["function"], set(shapes))
        return function, infer_shape(function, shapes)
    except CaseError as exc:
        raise ctx.wrap(exc, "function") from None


PICTURES = {"line_fit": ("x", "y", "w", "b"), "decision_boundary": ("class0", "class1", "w", "b")}


def _picture(ctx: Ctx, raw: Any, names: set[str]) -> dict[str, Any]:
    """What `gradverify plot` draws for a train case: a fitted line over points, or a decision boundary."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or raw.get("kind") not in PICTURES:
        raise ctx.error("picture", f"picture is {{kind: {' | '.join(PICTURES)}, ...}}, got {kind(raw)}")
    want = PICTURES[raw["kind"]]
    check_keys(ctx, raw, ("kind", *want), "picture")
    for key in want:
        if raw.get(key) not in names:
            raise ctx.error(f"picture.{key}", f"picture.{key} names an input or intermediate, got {kind(raw.get(key))}",
                            raw, key)
    return dict(raw)


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


def _impl(ctx: Ctx, doc: Mapping[str, Any], inputs: dict[str, Input]) -> dict[str, Any]:
    """impl: "package.module:attr" (user code, imported only when this case runs), its constructor arguments and
    the module parameters that are inputs."""
    if "impl" not in doc:
        for key in ("impl_args", "impl_kwargs", "module_params"):
            if key in doc:
                raise ctx.error(key, f"{key} needs an impl")
        return {}
    target = doc["impl"]
    if not isinstance(target, str) or not IMPL_RE.match(target):
        raise ctx.error("impl", f"impl is 'package.module:attr' (names only, no '__'), got {kind(target)}")
    args = doc.get("impl_args", [])
    if not isinstance(args, list) or not _plain(args):
        raise ctx.error("impl_args", f"impl_args is a list of plain values, got {kind(args)}")
    kwargs = doc.get("impl_kwargs", {})
    if not isinstance(kwargs, Mapping) or not _plain(kwargs):
        raise ctx.error("impl_kwargs", f"impl_kwargs is a mapping of plain values, got {kind(kwargs)}")
    params = doc.get("module_params", {})
    if not isinstance(params, Mapping) or not all(isinstance(k, str) and v in inputs for k, v in params.items()):
        raise ctx.error("module_params", "module_params maps a module parameter name to an input name "
                        f"(inputs: {', '.join(inputs)}), got {params!r:.80}")
    return {"impl": target, "impl_args": tuple(args), "impl_kwargs": dict(kwargs), "module_params": dict(params)}


def _checks(ctx: Ctx, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return DEFAULT
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise ctx.error("checks", f"checks is a list of: {', '.join(CHECKS)}; got {kind(raw)}")
    for k, c in enumerate(raw):
        if c in raw[:k]:
            raise ctx.error("checks", f"check {c!r:.40} is listed twice")
        if c not in CHECKS:
            hint = did_you_mean(c, CHECKS)
            raise ctx.error("checks", f"unknown check {c!r:.40}{hint}; allowed: {', '.join(CHECKS)}")
    return tuple(dict.fromkeys(raw))


def _tolerance(ctx: Ctx, raw: Any) -> Tolerance | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ctx.error("tolerance", f"tolerance is {{rtol: R, atol: A}}, got {kind(raw)}")
    check_keys(ctx, raw, ("rtol", "atol"), "tolerance")
    if set(raw) != {"rtol", "atol"}:
        raise ctx.error("tolerance", "give rtol and atol together, e.g. {rtol: 1e-12, atol: 0}")
    try:
        rtol, atol = number(raw["rtol"]), number(raw["atol"])
    except ValueError as exc:
        raise ctx.error("tolerance", str(exc)) from None
    if rtol < 0 or atol < 0:
        raise ctx.error("tolerance", f"rtol and atol must be >= 0, got rtol={rtol}, atol={atol}")
    return Tolerance(rtol, atol)


def _int_option(ctx: Ctx, raw: Any, key: str, sub: str, default: int, lo: int, hi: int) -> int:
    if not isinstance(raw, Mapping):
        raise ctx.error(key, f"{key} is a mapping like {{{sub}: {default}}}, got {kind(raw)}")
    value = raw.get(sub, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ctx.error(f"{key}.{sub}", f"expected an integer in {lo}..{hi}, got {kind(value)}", raw, sub)
    return value


def _backward(ctx: Ctx, raw: Any) -> tuple[int, bool]:
    if not isinstance(raw, Mapping):
        raise ctx.error("backward", f"backward is a mapping like {{calls: 1, zero_grad: true}}, got {kind(raw)}")
    check_keys(ctx, raw, ("calls", "zero_grad"), "backward")
    calls = _int_option(ctx, raw, "backward", "calls", 1, 1, 100)
    zero = raw.get("zero_grad", True)
    if not isinstance(zero, bool):
        raise ctx.error("backward.zero_grad", f"expected true or false, got {kind(zero)}", raw, "zero_grad")
    return calls, zero


def _integer(ctx: Ctx, spec: Any, key: str, array: np.ndarray, requires_grad: bool) -> bool:
    """An input's `integer: true` (class labels, indices): passed to torch as int64, never differentiated."""
    if not isinstance(spec, Mapping) or ("integer" not in spec and spec.get("dtype") != "int64"):
        return False
    flag = spec.get("integer", True)
    if not isinstance(flag, bool):
        raise ctx.error(f"{key}.integer", f"expected true or false, got {kind(flag)}", spec, "integer")
    if flag and requires_grad:
        raise ctx.error(f"{key}.integer", "an integer input cannot require grad: give requires_grad: false", spec,
                        "integer")
    if flag and (np.iscomplexobj(array) or not np.all(np.mod(array, 1) == 0) or np.any(np.abs(array) > 2.0**53)):
        raise ctx.error(f"{key}.integer", "an integer input's values must be whole numbers (|v| <= 2**53)", spec,
                        "value")
    return flag


def case_from_expression(
    expression: str | None,
    inputs: Mapping[str, Any],
    *,
    name: str = "expression",
    file: str | None = None,
    **options: Any,
) -> Case:
    """Build a Case from an expression and input values (numbers or nested lists), through the same validation.
    No expression: the function is the forward of the implementation the case is run with, traced."""
    doc: dict[str, Any] = {"name": name, "inputs": dict(inputs)}
    if expression is not None:
        doc["function"] = expression
    doc.update({k: v for k, v in options.items() if v is not None})
    return build_case(doc, file=file, traced=expression is None)

"""The case language: a whitelisting parser from expression text to a small typed AST, and shape inference.

Case text is untrusted. It is parsed with :func:`ast.parse` (which only parses, never runs) and then every node is
checked against a whitelist; anything else is a :class:`~verifier.errors.CaseError`. No text ever reaches
``eval``, ``exec``, ``sympify`` or ``parse_expr``.
"""

from __future__ import annotations

import ast
import difflib
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, Union

from .errors import CaseError, LimitError
from .limits import LIMITS, flag
from .ops import CONSTANTS, ELEMENTWISE, OPS, REDUCTION, Shape, broadcast_shapes, known_names

MAX_LITERAL_DIGITS = 60

BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.MatMult: "@"}
COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


@dataclass(frozen=True)
class Num:
    text: str

    @property
    def value(self) -> Fraction:
        return Fraction(self.text)


@dataclass(frozen=True)
class Const:
    name: str


@dataclass(frozen=True)
class Name:
    id: str


@dataclass(frozen=True)
class Neg:
    operand: Node


@dataclass(frozen=True)
class Bin:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Cmp:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Node, ...]
    axis: int | tuple[int, ...] | None = None


@dataclass(frozen=True)
class Index:
    base: Node
    index: tuple[int, ...]


Node = Union[Num, Const, Name, Neg, Bin, Cmp, Call, Index]


def parse(text: object, names: frozenset[str] | set[str], *, max_length: int | None = None) -> Node:
    """Parse case-language text into a Node, accepting only whitelisted constructs.

    Args:
        text: the expression (anything not a string is rejected).
        names: the variable names the expression may use (inputs and earlier intermediates).
        max_length: the longest expression accepted (default: the configured limit).
    Returns:
        The root Node.
    Raises:
        CaseError: the text is not an expression of the case language.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise CaseError(f"expected an expression string, got {type(text).__name__} {text!r:.80}")
    text = str(text)
    max_length = LIMITS.expr_length if max_length is None else max_length
    if len(text) > max_length:
        raise LimitError(f"expression is {len(text)} characters long; the limit is {max_length} "
                         f"(raise it with {flag('expr_length')})")
    for i, ch in enumerate(text):
        if ord(ch) > 126 or (ord(ch) < 32 and ch not in " \t\n"):
            raise CaseError(f"character {ch!r} (U+{ord(ch):04X}) at position {i + 1} is not allowed: "
                            "expressions are plain ASCII")
    if "^" in text:
        raise CaseError("'^' is not a power operator here; write x**2")
    if not text.strip():
        raise CaseError("expression is empty")
    depth = 0
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth > LIMITS.brackets:
            raise LimitError(f"expression nests deeper than {LIMITS.brackets} brackets (a fixed limit)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning "invalid decimal literal": we reject or accept anyway
            tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise CaseError(f"not a valid expression{where}: {exc.msg}: {text!r:.120}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise CaseError(f"not a valid expression: {type(exc).__name__}: {str(exc)[:120]}") from None
    return _Converter(frozenset(names)).convert(tree.body, 0, top=True)


class _Converter:
    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self.count = 0

    def convert(self, node: ast.AST, depth: int, *, top: bool = False, condition: bool = False) -> Node:
        self.count += 1
        if self.count > LIMITS.expr_nodes:
            raise LimitError(f"expression has more than {LIMITS.expr_nodes} parts (raise it with {flag('expr_nodes')})")
        if depth > LIMITS.expr_depth:
            raise LimitError(f"expression nests deeper than {LIMITS.expr_depth} levels "
                             f"(raise it with {flag('expr_depth')})")
        d = depth + 1
        if isinstance(node, ast.Constant):
            return self._number(node.value)
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.convert(node.operand, d)
            return Neg(operand) if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
            op = BINARY[type(node.op)]
            left, right = self.convert(node.left, d), self.convert(node.right, d)
            if op == "**":
                _check_exponent(right)
            return Bin(op, left, right)
        if isinstance(node, ast.Compare):
            if not condition:
                raise CaseError("comparisons are allowed only as the condition of where(cond, a, b)")
            if len(node.ops) != 1 or type(node.ops[0]) not in COMPARE:
                raise CaseError("a condition compares two values with one of < <= > >= == !=")
            return Cmp(COMPARE[type(node.ops[0])], self.convert(node.left, d), self.convert(node.comparators[0], d))
        if isinstance(node, ast.Call):
            return self._call(node, d)
        if isinstance(node, ast.Subscript):
            return Index(self.convert(node.value, d), _index(node.slice))
        if isinstance(node, ast.Attribute):
            if node.attr != "T":
                raise CaseError(f"attribute access '.{node.attr}' is not allowed; the only attribute is .T (transpose)")
            return Call("transpose", (self.convert(node.value, d),))
        raise CaseError(f"{_describe(node)} is not allowed in an expression")

    def _number(self, value: object) -> Num:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CaseError(f"literal {value!r:.40} is not allowed; only real numbers are")
        text = repr(value)
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            raise CaseError(f"literal {text} is not a finite number")
        if len(text.lstrip("-").replace(".", "").split("e")[0]) > MAX_LITERAL_DIGITS:
            raise LimitError(f"number literal has more than {MAX_LITERAL_DIGITS} digits")
        return Num(text)

    def _name(self, name: str) -> Node:
        if name.startswith("_"):
            raise CaseError(f"name {name!r} is not allowed: names may not start with '_'")
        if name in self.names:
            return Name(name)
        if name in CONSTANTS:
            return Const(name)
        if name in OPS:
            raise CaseError(f"{name!r} is a function; call it as {name}(...)")
        raise CaseError(f"unknown name {name!r}{_did_you_mean(name, self.names | set(CONSTANTS))}; "
                        f"defined names: {', '.join(sorted(self.names)) or '(none)'}")

    def _call(self, node: ast.Call, depth: int) -> Call:
        if not isinstance(node.func, ast.Name):
            if not isinstance(node.func, ast.Lambda):
                self.convert(node.func, depth)  # names the real problem (an attribute, a dunder name) if there is one
            raise CaseError(f"only named functions can be called, not {_describe(node.func)}")
        name = node.func.id
        if name.startswith("_"):
            raise CaseError(f"name {name!r} is not allowed: names may not start with '_'")
        op = OPS.get(name)
        if op is None:
            raise CaseError(f"unknown function {name!r}{_did_you_mean(name, OPS)}; known functions: {known_names()}. "
                            "Register one with verifier.register_op")
        axis = None
        for kw in node.keywords:
            if kw.arg is None or kw.arg not in op.keywords:
                allowed = ", ".join(op.keywords) or "none"
                raise CaseError(f"{name}() got keyword {kw.arg or '**'!r}; allowed keywords: {allowed}")
            axis = _axis(kw.value)
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise CaseError(f"{name}(): *arguments are not allowed")
        lo, hi = op.arity
        if not lo <= len(node.args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise CaseError(f"{name}() takes {want} argument(s), got {len(node.args)}")
        args = tuple(self.convert(a, depth, condition=(name == "where" and i == 0)) for i, a in enumerate(node.args))
        if name == "where" and not isinstance(args[0], Cmp):
            raise CaseError("where() needs a comparison as its first argument, e.g. where(x > 0, x, 0)")
        return Call(name, args, axis)


def _int_literal(node: ast.AST) -> int:
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        sign, node = -1, node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int and abs(node.value) < 2**31:
        return sign * node.value
    raise CaseError(f"an index or axis must be an integer literal, got {_describe(node)}")


def _index(node: ast.AST) -> tuple[int, ...]:
    if isinstance(node, ast.Tuple):
        return tuple(_int_literal(e) for e in node.elts)
    if isinstance(node, ast.Slice):
        raise CaseError("slices are not supported; index single elements, e.g. x[0] or A[1, 2]")
    return (_int_literal(node),)


def _axis(node: ast.AST) -> int | tuple[int, ...]:
    if isinstance(node, ast.Tuple):
        return tuple(_int_literal(e) for e in node.elts)
    return _int_literal(node)


def _check_exponent(node: Node) -> None:
    value = _literal_value(node)
    if value is not None and abs(value) > LIMITS.exponent:
        raise LimitError(f"exponent {float(value):g} is larger than the limit {LIMITS.exponent} "
                         f"(raise it with {flag('exponent')})")


def _literal_value(node: Node) -> Fraction | None:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Neg):
        inner = _literal_value(node.operand)
        return None if inner is None else -inner
    return None


def _describe(node: ast.AST) -> str:
    kinds = {
        ast.Lambda: "a lambda", ast.ListComp: "a comprehension", ast.GeneratorExp: "a generator",
        ast.DictComp: "a comprehension", ast.SetComp: "a comprehension", ast.JoinedStr: "an f-string",
        ast.Dict: "a dict", ast.List: "a list", ast.Set: "a set", ast.Tuple: "a tuple",
        ast.BoolOp: "'and'/'or'", ast.IfExp: "'if ... else'", ast.NamedExpr: "':='", ast.Await: "'await'",
        ast.Starred: "'*'", ast.Slice: "a slice",
    }
    if isinstance(node, ast.BinOp):
        return f"operator {type(node.op).__name__}"
    if isinstance(node, ast.UnaryOp):
        return f"operator {type(node.op).__name__}"
    if isinstance(node, ast.Constant):
        return f"literal {node.value!r:.40}"
    if isinstance(node, ast.Name):
        return f"name {node.id!r}"
    if isinstance(node, ast.Attribute):
        return f"attribute access '.{node.attr}'"
    return kinds.get(type(node), f"syntax {type(node).__name__}")


def _did_you_mean(name: str, options: object) -> str:
    close = difflib.get_close_matches(name, sorted(options), n=1)  # type: ignore[arg-type]
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- shapes -------------------------------------------------------------------------------------------------------


def infer_shape(node: Node, shapes: dict[str, Shape]) -> Shape:
    """The shape of the value of ``node`` given the shapes of the names; CaseError on a mismatch."""
    if isinstance(node, (Num, Const)):
        return ()
    if isinstance(node, Name):
        return shapes[node.id]
    if isinstance(node, Neg):
        return infer_shape(node.operand, shapes)
    try:
        if isinstance(node, (Bin, Cmp)):
            left, right = infer_shape(node.left, shapes), infer_shape(node.right, shapes)
            if isinstance(node, Bin) and node.op == "@":
                return OPS["matmul"].shape(left, right)  # type: ignore[misc]
            return broadcast_shapes(left, right)
        if isinstance(node, Index):
            base = infer_shape(node.base, shapes)
            if len(node.index) > len(base):
                raise ValueError(f"{len(node.index)} indices for a tensor of shape {list(base)}")
            for i, dim in zip(node.index, base):
                if not -dim <= i < dim:
                    raise ValueError(f"index {i} is out of range for an axis of size {dim} (shape {list(base)})")
            return base[len(node.index):]
        assert isinstance(node, Call)
        op = OPS[node.func]
        args = [infer_shape(a, shapes) for a in node.args]
        kw = {} if node.axis is None else {"axis": node.axis}
        if op.kind == ELEMENTWISE:
            return broadcast_shapes(*args)
        if op.kind == REDUCTION or op.shape is not None:
            return op.shape(*args, **kw)  # type: ignore[misc]
        return broadcast_shapes(*args)
    except ValueError as exc:
        raise CaseError(f"shape mismatch in {unparse(node)!r}: {exc}") from None


def names_in(node: Node) -> set[str]:
    """The variable names a node reads."""
    if isinstance(node, Name):
        return {node.id}
    out: set[str] = set()
    for child in children(node):
        out |= names_in(child)
    return out


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Neg):
        return (node.operand,)
    if isinstance(node, (Bin, Cmp)):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Index):
        return (node.base,)
    return ()


def walk(node: Node) -> Iterator[Node]:
    """The node and every node below it."""
    yield node
    for child in children(node):
        yield from walk(child)


def depth(node: Node) -> int:
    return 1 + max((depth(c) for c in children(node)), default=0)


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "@": 2, "**": 4}


def unparse(node: Node) -> str:
    """Render a node back to case-language text."""
    if isinstance(node, Num):
        return node.text
    if isinstance(node, (Const,)):
        return node.name
    if isinstance(node, Name):
        return node.id
    if isinstance(node, Neg):
        return f"-{_wrap(node.operand, 3)}"
    if isinstance(node, Bin):
        p = _PREC[node.op]
        return f"{_wrap(node.left, p)} {node.op} {_wrap(node.right, p + (node.op != '**'))}"
    if isinstance(node, Cmp):
        return f"{unparse(node.left)} {node.op} {unparse(node.right)}"
    if isinstance(node, Index):
        return f"{_wrap(node.base, 5)}[{', '.join(map(str, node.index))}]"
    assert isinstance(node, Call)
    args = ", ".join(unparse(a) for a in node.args)
    return f"{node.func}({args}{'' if node.axis is None else f', axis={node.axis}'})"


def _wrap(node: Node, prec: int) -> str:
    inner = unparse(node)
    mine = _PREC.get(node.op, 5) if isinstance(node, Bin) else (3 if isinstance(node, Neg) else 5)
    return f"({inner})" if mine < prec else inner


# --- what the definition implies for the torch graph --------------------------------------------------------------

_BIN_GRAD_FN = {"+": "AddBackward0", "-": "SubBackward0", "*": "MulBackward0", "/": "DivBackward0"}


def needs_grad(node: Node, grad_names: set[str] | frozenset[str]) -> bool:
    """Whether torch's value of the node requires grad: it depends on a differentiable name other than via detach."""
    return bool(grad_sources(node, {n: {n} for n in grad_names}))


def grad_sources(node: Node, reach: dict[str, set[str]]) -> set[str]:
    """The differentiable leaves whose gradient flows from this node (paths through detach or a condition carry none).

    ``reach`` maps each name to its own sources (an input: itself, if it requires grad).
    """
    if isinstance(node, Name):
        return set(reach.get(node.id, set()))
    if isinstance(node, Cmp) or (isinstance(node, Call) and node.func == "detach"):
        return set()
    kids = node.args[1:] if isinstance(node, Call) and node.func == "where" else children(node)
    out: set[str] = set()
    for child in kids:
        out |= grad_sources(child, reach)
    return out


def expected_grad_fn(node: Node, grad_names: set[str] | frozenset[str]) -> str | None:
    """The grad_fn class name torch gives the node's value, '' where any non-None name will do, None for no grad."""
    if not needs_grad(node, grad_names):
        return None
    if isinstance(node, Bin):
        if node.op == "**":
            return "PowBackward0" if not needs_grad(node.right, grad_names) and _literal_value(node.right) is not None \
                else ("PowBackward1" if needs_grad(node.left, grad_names) else "")
        return _BIN_GRAD_FN.get(node.op, "")
    if isinstance(node, Neg):
        return "NegBackward0"
    if isinstance(node, Index):
        return "SelectBackward0"
    if isinstance(node, Call):
        op = OPS[node.func]
        if op.grad_fn and node.axis is not None and op.grad_fn in ("SumBackward0", "MeanBackward0"):
            return op.grad_fn[:-1] + "1"
        if node.func in ("prod", "logsumexp", "norm", "transpose") or (node.func == "prod" and node.axis is not None):
            return ""  # the class depends on axis and rank
        return op.grad_fn or ""
    return ""

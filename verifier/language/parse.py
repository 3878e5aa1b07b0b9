"""The case language: a whitelisting parser from expression text to a small typed AST, and shape inference.

Case text is untrusted. It is parsed with :func:`ast.parse` (which only parses, never runs) and then every node is
checked against a whitelist; anything else is a :class:`~verifier.errors.CaseError`. No text ever reaches
``eval``, ``exec``, ``sympify`` or ``parse_expr``.
"""

from __future__ import annotations

import ast
import difflib
import warnings
from collections.abc import Iterable
from fractions import Fraction

from ..errors import CaseError, LimitError
from ..limits import LIMITS, flag
from .nodes import BINARY, COMPARE, Bin, Call, Cmp, Const, Index, Name, Neg, Node, Num
from .ops import CONSTANTS, OPS, known_names, public_ops

MAX_LITERAL_DIGITS = 60


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
        raise CaseError(f"unknown name {name!r}{did_you_mean(name, self.names | set(CONSTANTS))}; "
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
        if op is None or op.internal:
            raise CaseError(f"unknown function {name!r}{did_you_mean(name, public_ops())}; known functions: {known_names()}. "
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
    value = literal_value(node)
    if value is not None and abs(value) > LIMITS.exponent:
        raise LimitError(f"exponent {float(value):g} is larger than the limit {LIMITS.exponent} "
                         f"(raise it with {flag('exponent')})")


def literal_value(node: Node) -> Fraction | None:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Neg):
        inner = literal_value(node.operand)
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


def did_you_mean(name: object, options: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest option, or '' (the one helper of every unknown-name error)."""
    choices = list(options) if isinstance(options, (list, tuple)) else sorted(options)
    close = difflib.get_close_matches(str(name), choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""

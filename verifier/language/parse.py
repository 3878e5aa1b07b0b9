"""The case language: a whitelisting parser from expression text to a small typed AST, and shape inference.

Case text is untrusted. It is parsed with :func:`ast.parse` (which only parses, never runs) and then every node is
checked against a whitelist; anything else is a :class:`~verifier.errors.CaseError`. No text ever reaches
``eval``, ``exec``, ``sympify`` or ``parse_expr``.
"""

from __future__ import annotations

import ast
import difflib
import re
import warnings
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from ..errors import CaseError, LimitError
from ..limits import LIMITS, flag
from .nodes import BINARY, COMPARE, Bin, Call, Cmp, Const, Index, Name, Neg, Node, Num, unparse
from .ops import CONSTANTS, OPS, Op, known_names, public_ops
from .spellings import ALIASES, KEYWORD_ALIASES, POSITIONAL, SWAPPED

EINSUM_RE = re.compile(r"^[a-zA-Z,.\->]{1,64}$")
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
        if condition and isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            # sympy prints And / Or of conditions as & and |
            fn = "logical_and" if isinstance(node.op, ast.BitAnd) else "logical_or"
            return Call(fn, (self.convert(node.left, d, condition=True), self.convert(node.right, d, condition=True)))
        if condition and isinstance(node, ast.BoolOp):
            fn = "logical_and" if isinstance(node.op, ast.And) else "logical_or"
            parts = [self.convert(v, d, condition=True) for v in node.values]
            out = parts[0]
            for part in parts[1:]:
                out = Call(fn, (out, part))
            return out
        if condition and isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Invert, ast.Not)):
            return Call("logical_not", (self.convert(node.operand, d, condition=True),))
        if isinstance(node, ast.Compare):
            if not condition:
                raise CaseError("comparisons are allowed only as the condition of where(cond, a, b)")
            if len(node.ops) != 1 or type(node.ops[0]) not in COMPARE:
                raise CaseError("a condition compares two values with one of < <= > >= == !=")
            return Cmp(COMPARE[type(node.ops[0])], self.convert(node.left, d), self.convert(node.comparators[0], d))
        if isinstance(node, ast.Call):
            return self._call(node, d)
        if isinstance(node, ast.Subscript):
            base = self.convert(node.value, d)
            if isinstance(node.slice, ast.Name) and node.slice.id in self.names:  # x[labels]: an integer input
                return Call("index_by", (base, Name(node.slice.id)))
            key = _key(node.slice)
            if all(isinstance(k, int) for k in key):
                return Index(base, key)
            return Call("getitem", (base,), params=(("key", key),))
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
            return Const(CONSTANTS[name])
        if name in OPS:
            raise CaseError(f"{name!r} is a function; call it as {name}(...)")
        raise CaseError(f"unknown name {name!r}{did_you_mean(name, self.names | set(CONSTANTS))}; "
                        f"defined names: {', '.join(sorted(self.names)) or '(none)'}")

    def _call(self, node: ast.Call, depth: int) -> Node:
        if not isinstance(node.func, ast.Name):
            if not isinstance(node.func, ast.Lambda):
                self.convert(node.func, depth)  # names the real problem (an attribute, a dunder name) if there is one
            raise CaseError(f"only named functions can be called, not {_describe(node.func)}")
        name = node.func.id
        if name.startswith("_"):
            raise CaseError(f"name {name!r} is not allowed: names may not start with '_'")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise CaseError(f"{name}(): *arguments are not allowed")
        if name == "Piecewise":
            return self._piecewise(node, depth)
        if name == "einsum":
            return self._einsum(node, depth)
        if name == "log" and len(node.args) == 2 and not node.keywords:  # sympy's log(x, base)
            x, base = (self.convert(a, depth) for a in node.args)
            return Bin("/", Call("log", (x,)), Call("log", (base,)))
        given = list(node.args)
        if name in SWAPPED and len(given) == 2:  # sympy's (n, x) where the row is torch's (x, n)
            given.reverse()
        name = ALIASES.get(name, name)
        op = OPS.get(name)
        if op is None or op.internal:
            raise CaseError(f"unknown function {name!r}{did_you_mean(name, public_ops())}; known functions: "
                            f"{known_names()}. Register one with verifier.register_op (a case file names its module "
                            "with `ops:`, the CLI with --ops)")
        if name in ("max", "min") and len(given) > 2 and not node.keywords:  # sympy's Max(a, b, c)
            out = Call(name, (self.convert(given[0], depth), self.convert(given[1], depth)))
            for extra in given[2:]:
                out = Call(name, (out, self.convert(extra, depth)))
            return out
        lo, hi = op.arity
        keywords = list(node.keywords)
        if len(given) > hi and name in POSITIONAL:  # torch's positional parameters: reshape(x, (2, 3))
            trailing, given = given[hi:], given[:hi]
            if len(trailing) > len(POSITIONAL[name]):
                raise CaseError(f"{name}() takes {hi} tensor argument(s) and then at most "
                                f"{len(POSITIONAL[name])} parameter(s) ({', '.join(POSITIONAL[name])}), "
                                f"got {len(trailing)}")
            keywords = [ast.keyword(arg=k, value=v) for k, v in zip(POSITIONAL[name], trailing)] + keywords
        axis, params = self._keywords(name, op, keywords)
        if not lo <= len(given) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise CaseError(f"{name}() takes {want} argument(s), got {len(given)}")
        args = tuple(self.convert(a, depth, condition=(name == "where" and i == 0)) for i, a in enumerate(given))
        for i in op.integer_args:
            value = literal_value(args[i]) if i < len(args) else None
            if value is None or value.denominator != 1 or not 0 <= value <= 1000:
                raise CaseError(f"{name}(): argument {i + 1} is a degree or order: an integer literal 0..1000, got "
                                f"{unparse(args[i]) if i < len(args) else 'nothing'}")
        if name == "where" and not (isinstance(args[0], Cmp) or
                                    (isinstance(args[0], Call) and args[0].func.startswith("logical_"))):
            raise CaseError("where() needs a comparison as its first argument, e.g. where(x > 0, x, 0)")
        return Call(name, args, axis, params)

    def _keywords(self, name: str, op: Op, keywords: list[ast.keyword]) -> tuple[Any, tuple[tuple[str, object], ...]]:
        """axis=, and the op's parameters: numbers, True/False, and the strings torch documents for the keyword."""
        axis = None
        params: list[tuple[str, object]] = []
        choices = dict(op.choices)
        for kw in keywords:
            if kw.arg in KEYWORD_ALIASES and KEYWORD_ALIASES[kw.arg] in op.keywords:
                kw = ast.keyword(arg=KEYWORD_ALIASES[kw.arg], value=kw.value)
            if kw.arg is None or kw.arg not in op.keywords:
                allowed = ", ".join(op.keywords) or "none"
                raise CaseError(f"{name}() got keyword {kw.arg or '**'!r}; allowed keywords: {allowed}")
            if any(k == kw.arg for k, _ in params) or (kw.arg == "axis" and axis is not None):
                raise CaseError(f"{name}(): keyword {kw.arg!r} given twice")
            if kw.arg == "axis":
                axis = _axis(kw.value)
                continue
            value = kw.value
            if kw.arg in choices:
                if not (isinstance(value, ast.Constant) and isinstance(value.value, str) and
                        value.value in choices[kw.arg]):
                    raise CaseError(f"{name}(): {kw.arg} is one of {', '.join(map(repr, choices[kw.arg]))}, got "
                                    f"{_describe(value)}")
                params.append((kw.arg, value.value))
            elif isinstance(value, ast.Constant) and isinstance(value.value, bool):
                params.append((kw.arg, value.value))
            elif kw.arg == "shape":  # reshape(x, shape=(2, -1)) or reshape(x, -1)
                try:
                    shape = _axis(value)
                except CaseError:
                    raise CaseError(f"{name}(): shape takes an integer literal or a tuple of them, got "
                                    f"{_describe(value)}") from None
                params.append((kw.arg, shape if isinstance(shape, tuple) else (shape,)))
            elif kw.arg == "diagonal":
                try:
                    params.append((kw.arg, _int_literal(value)))
                except CaseError:
                    raise CaseError(f"{name}(): diagonal takes an integer literal, got {_describe(value)}") from None
            elif isinstance(value, ast.Tuple):
                raise CaseError(f"{name}(): {kw.arg} takes a number literal, got a tuple")
            else:
                sign = -1 if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub) else 1
                inner = value.operand if sign < 0 else value  # type: ignore[attr-defined]  # a UnaryOp's operand
                if not isinstance(inner, ast.Constant) or isinstance(inner.value, (bool, str)):
                    raise CaseError(f"{name}(): {kw.arg} takes a number literal, got {_describe(value)}")
                number = self._number(inner.value)
                params.append((kw.arg, Num(("-" if sign < 0 else "") + number.text)))
        return axis, tuple(params)

    def _einsum(self, node: ast.Call, depth: int) -> Node:
        """einsum("ij,jk->ik", A, B): the subscripts are letters, commas, '->' and '...' only, never evaluated."""
        if node.keywords or len(node.args) < 2:
            raise CaseError('einsum takes the subscripts and the tensors: einsum("ij,jk->ik", A, B)')
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str) and EINSUM_RE.match(first.value)):
            raise CaseError(f"einsum's subscripts are a string of letters, ',', '->' and '...' (at most 64), got "
                            f"{_describe(first)}")
        args = tuple(self.convert(a, depth) for a in node.args[1:])
        if len(args) != first.value.split("->")[0].count(",") + 1:
            raise CaseError(f"einsum subscripts {first.value!r} name {first.value.split('->')[0].count(',') + 1} "
                            f"tensor(s), {len(args)} given")
        return Call("einsum", args, params=(("subscripts", first.value),))

    def _piecewise(self, node: ast.Call, depth: int) -> Node:
        """sympy's Piecewise((a, cond), ..., (z, True)): nested where()s."""
        pairs = node.args
        if node.keywords or not pairs or not all(isinstance(p, ast.Tuple) and len(p.elts) == 2 for p in pairs):
            raise CaseError("Piecewise takes (value, condition) pairs: Piecewise((a, x > 0), (b, True))")
        last = pairs[-1].elts[1]  # type: ignore[attr-defined]  # checked to be a Tuple above
        if not (isinstance(last, ast.Constant) and last.value is True):
            raise CaseError("Piecewise needs a last pair (value, True): the value where no condition holds")
        out = self.convert(pairs[-1].elts[0], depth)  # type: ignore[attr-defined]
        for pair in reversed(pairs[:-1]):
            value, cond = pair.elts  # type: ignore[attr-defined]
            out = Call("where", (self.convert(cond, depth, condition=True), self.convert(value, depth), out))
        return out


def _int_literal(node: ast.AST) -> int:
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        sign, node = -1, node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int and abs(node.value) < 2**31:
        return sign * node.value
    raise CaseError(f"an index or axis must be an integer literal, got {_describe(node)}")


def _key(node: ast.AST) -> tuple[Any, ...]:
    """A subscript of integer literals and slices of integer literals (a positive step, as torch allows)."""
    items = node.elts if isinstance(node, ast.Tuple) else [node]
    key: list[Any] = []
    for item in items:
        if isinstance(item, ast.Slice):
            bounds = [None if b is None else _int_literal(b) for b in (item.lower, item.upper, item.step)]
            if bounds[2] is not None and bounds[2] <= 0:
                raise CaseError(f"a slice step must be a positive integer literal (torch has no negative steps), got "
                                f"{bounds[2]}")
            key.append(("slice", *bounds))
        else:
            key.append(_int_literal(item))
    return tuple(key)


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

"""The case language's AST: small frozen node types, their walks and their text (no numpy, sympy or torch)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterator, Union

BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.MatMult: "@"}
COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


@dataclass(frozen=True)
class Num:
    """A number. ``binary``: the text is the shortest decimal of a binary float that no short decimal equals (a
    constant traced from users' code, 0.1 as the double nearest it): the value is that float exactly."""

    text: str
    binary: bool = False

    @property
    def value(self) -> Fraction:
        return Fraction(float(self.text)) if self.binary else Fraction(self.text)


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
    """A function of the op table. ``params``: further keyword arguments as (name, value) pairs of hashable plain
    values (ints, tuples of ints, numbers, strings): what a traced forward passes to an op."""

    func: str
    args: tuple[Node, ...]
    axis: int | tuple[int, ...] | None = None
    params: tuple[tuple[str, object], ...] = ()

    def keywords(self) -> dict[str, object]:
        """The keyword arguments the op's meanings (sympy, torch, shape rule) receive (a number as a Fraction)."""
        kw: dict[str, object] = {} if self.axis is None else {"axis": self.axis}
        kw.update((k, v.value if isinstance(v, Num) else v) for k, v in self.params)
        return kw


@dataclass(frozen=True)
class Index:
    base: Node
    index: tuple[int, ...]


Node = Union[Num, Const, Name, Neg, Bin, Cmp, Call, Index]


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
    """Render a node back to case-language text (faithfully: the derivation cache keys on it)."""
    if isinstance(node, Num):
        return f"float64({node.text})" if node.binary else node.text
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
    if node.func == "getitem":  # the parser's form of a subscript with slices
        key: Any = dict(node.params)["key"]
        items = [":".join("" if b is None else str(b) for b in k[1:]).removesuffix(":") if isinstance(k, tuple)
                 else str(k) for k in key]
        return f"{_wrap(node.args[0], 5)}[{', '.join(items)}]"
    if node.func == "einsum":
        return f"einsum({dict(node.params)['subscripts']!r}, {', '.join(unparse(a) for a in node.args)})"
    args = ", ".join(unparse(a) for a in node.args)
    if node.params:  # op parameters (a number as its text), and a traced op's index maps
        args += "".join(f", {k}={unparse(v) if isinstance(v, Num) else repr(v)}" for k, v in node.params)
    return f"{node.func}({args}{'' if node.axis is None else f', axis={node.axis}'})"


def _wrap(node: Node, prec: int) -> str:
    inner = unparse(node)
    mine = _PREC.get(node.op, 5) if isinstance(node, Bin) else (3 if isinstance(node, Neg) else 5)
    return f"({inner})" if mine < prec else inner

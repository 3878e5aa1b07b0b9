"""The safe parser: what it accepts, what it rejects and how it says so; shape inference."""

from __future__ import annotations

import pytest

from verifier.errors import CaseError, LimitError
from verifier.language.analysis import infer_shape
from verifier.language.nodes import Bin, Call, Index, Name, Neg, Num, unparse
from verifier.language.parse import parse

NAMES = {"x", "y", "A", "w"}


def test_parses_arithmetic_with_precedence():
    node = parse("-x + y * 2 ** 3", NAMES)
    assert node == Bin("+", Neg(Name("x")), Bin("*", Name("y"), Bin("**", Num("2"), Num("3"))))


def test_parses_calls_axis_index_and_transpose():
    node = parse("sum(A.T @ x, axis=0) + A[1, -1]", NAMES)
    assert isinstance(node, Bin)
    assert node.left == Call("sum", (Bin("@", Call("transpose", (Name("A"),)), Name("x")),), 0)
    assert node.right == Index(Name("A"), (1, -1))


@pytest.mark.parametrize("text", ["x**2", "sin(x)*exp(-y)", "where(x > 0, x, 0)", "detach(x) * x", "max(x, y)",
                                  "softmax(A, axis=-1)", "sum(A, axis=(0, 1))", "pi * E * x", "1e-3 * x"])
def test_round_trips_through_unparse(text):
    node = parse(text, NAMES)
    assert parse(unparse(node), NAMES) == node


@pytest.mark.parametrize("text, message", [
    ("foo(x)", "unknown function 'foo' (did you mean 'floor'?); known functions: abs, acos"),
    ("sine(x)", "unknown function 'sine' (did you mean 'sin'?)"),
    ("z + 1", "unknown name 'z'; defined names: A, w, x, y"),
    ("xx + 1", "unknown name 'xx' (did you mean 'x'?)"),
    ("x ^ 2", "'^' is not a power operator here; write x**2"),
    ("x.grad", "attribute access '.grad' is not allowed; the only attribute is .T (transpose)"),
    ("x.__class__", "attribute access '.__class__' is not allowed"),
    ("__import__('os')", "name '__import__' is not allowed: names may not start with '_'"),
    ("(lambda: 1)()", "only named functions can be called, not a lambda"),
    ("[t for t in x]", "a comprehension is not allowed in an expression"),
    ("'abc'", "literal 'abc' is not allowed; only real numbers are"),
    ("x if y else w", "'if ... else' is not allowed in an expression"),
    ("x[2:0:-1]", "a slice step must be a positive integer literal"),
    ("x[z]", "an index or axis must be an integer literal, got name 'z'"),
    ("sum(x, axis=y)", "an index or axis must be an integer literal"),
    ("sin(x, y)", "sin() takes 1 argument(s), got 2"),
    ("sin(x=1)", "sin() got keyword 'x'; allowed keywords: none"),
    ("x > 0", "comparisons are allowed only as the condition of where(cond, a, b)"),
    ("where(x, 1, 2)", "where() needs a comparison as its first argument"),
    ("sin", "'sin' is a function; call it as sin(...)"),
    ("x +", "not a valid expression"),
    ("1j * x", "literal 1j is not allowed"),
    ("ｘ + 1", "character 'ｘ' (U+FF58) at position 1 is not allowed: expressions are plain ASCII"),
    ("", "expression is empty"),
])
def test_rejections_are_pinned(text, message):
    with pytest.raises(CaseError) as info:
        parse(text, NAMES)
    assert message in str(info.value)


def test_non_string_expressions_are_rejected():
    with pytest.raises(CaseError, match="expected an expression string, got list"):
        parse(["x"], NAMES)


@pytest.mark.parametrize("text, limit", [("(" * 100 + "x" + ")" * 100, "nests deeper than 64"),
                                         ("x" + " + x" * 300, "nests deeper than 200 levels"),
                                         ("x ** 100000", "exponent 100000 is larger than the limit 1000"),
                                         ("x" * 30000, "the limit is 20000")])
def test_limits(text, limit):
    with pytest.raises(LimitError, match=limit):
        parse(text, NAMES)


def test_node_count_limit():
    def balanced(n: int) -> str:
        return "x" if n == 1 else f"({balanced(n // 2)}+{balanced(n - n // 2)})"

    with pytest.raises(LimitError, match="more than 5000 parts"):
        parse(balanced(4000), NAMES, max_length=10**6)


def test_shape_inference_broadcasts_and_reduces():
    shapes = {"x": (3,), "A": (2, 3), "y": (), "w": (3, 1)}
    assert infer_shape(parse("A * x + y", NAMES), shapes) == (2, 3)
    assert infer_shape(parse("sum(A, axis=1)", NAMES), shapes) == (2,)
    assert infer_shape(parse("A @ x", NAMES), shapes) == (2,)
    assert infer_shape(parse("A.T", NAMES), shapes) == (3, 2)
    assert infer_shape(parse("x + w", NAMES), shapes) == (3, 3)
    assert infer_shape(parse("A[1, 2]", NAMES), shapes) == ()


@pytest.mark.parametrize("text, message", [
    ("A + w", "shape mismatch in 'A + w': shapes [2, 3] and [3, 1] do not broadcast"),
    ("A @ A", "inner dimensions 3 and 2 differ"),
    ("det(A)", "det needs a square 2-D matrix, got shape [2, 3]"),
    ("A[2, 0]", "index 2 is out of range for an axis of size 2"),
    ("sum(x, axis=1)", "axis 1 is out of range for a tensor with 1 dimension(s)"),
    ("dot(x, A)", "dot needs two 1-D tensors of the same length"),
])
def test_shape_errors(text, message):
    shapes = {"x": (3,), "A": (2, 3), "y": (), "w": (3, 1)}
    with pytest.raises(CaseError) as info:
        infer_shape(parse(text, NAMES), shapes)
    assert message in str(info.value)

"""Hypothesis strategies for the case language and case documents: valid by grammar, then randomly mutated."""

from __future__ import annotations

import yaml
from hypothesis import strategies as st

from verifier.language.ops import OPS

NAMES = ["x", "y", "v", "A"]  # x, y scalars; v a 3-vector; A a 2x3 matrix (see DOC_INPUTS)
DOC_INPUTS = {"x": 0.7, "y": -1.3, "v": [0.5, -0.25, 2.0], "A": [[1.0, 2.0, -0.5], [0.3, -1.1, 0.8]]}
SAFE_UNARY = ["sin", "cos", "tanh", "exp", "sigmoid", "softplus", "atan", "sinh", "erf", "abs", "relu", "silu",
              "asinh", "gelu", "mish", "erfc"]
ALL_FUNCS = sorted(OPS)

numbers = st.one_of(st.integers(-5, 5).map(str), st.floats(-4, 4, allow_nan=False, width=32).map(lambda f: f"{f:.3g}"))


def expressions(max_leaves: int = 12) -> st.SearchStrategy[str]:
    """Valid expressions over scalars x and y (and reductions of v and A): every one parses and verifies."""
    leaves = st.one_of(st.sampled_from(["x", "y", "x", "y", "sum(v)", "mean(A)", "v[1]", "A[1, 2]", "pi",
                                        # the shaping and sympy forms of issue 17, each a scalar
                                        "sum(v[0:2])", "sum(A[:, 1])", "sum(v[::2])", "einsum('ij,j->i', A, v)[0]",
                                        "sum(reshape(A, shape=(3, 2))[0])", "sum(cat(v, v, axis=0))",
                                        "norm(v, p=3)", "max(logsumexp(A, axis=1, keepdim=True))"]), numbers)

    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(children, st.sampled_from(["+", "-", "*"]), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(SAFE_UNARY), children).map(lambda t: f"{t[0]}({t[1]})"),
            children.map(lambda c: f"-({c})"),
            st.tuples(children, st.integers(0, 3)).map(lambda t: f"({t[0]})**{t[1]}"),
            st.tuples(children, children).map(lambda t: f"({t[0]}) / (2 + ({t[1]})**2)"),
            st.tuples(children, children, children).map(lambda t: f"where({t[0]} > 0, {t[1]}, {t[2]})"),
            st.tuples(children, children).map(lambda t: f"max({t[0]}, {t[1]})"),
            st.tuples(children, children, children).map(lambda t: f"Max({t[0]}, {t[1]}, {t[2]})"),
            st.tuples(children, children).map(lambda t: f"Piecewise(({t[0]}, {t[1]} > 0), ({t[1]}, True))"),
            st.tuples(st.sampled_from(["leaky_relu({}, negative_slope=0.2)", "gelu({}, approximate='tanh')",
                                       "softplus({}, beta=2)", "elu({}, alpha=0.5)", "clamp({}, min=-1)",
                                       "hardtanh({}, min_val=-2, max_val=2)", "leaky_relu({}, 0.1)",
                                       "hardtanh({}, -1.5, 0.5)", "softplus({}, 3, 4)"]), children).map(
                lambda t: t[0].format(t[1])),
        )

    return st.recursive(leaves, extend, max_leaves=max_leaves)


PIECES = ["(", ")", "[", "]", ",", ".", "__", "_", "'", '"', "**", "^", "@", ":", "=", "lambda", "import", "os",
          "T", "axis=", " if ", " for ", "{", "}", "\\", "\n", "\x00", "ｘ", "0x1f", "1e999", "nan", "...", "*",
          "Piecewise(", "einsum(", "'ij->'", "keepdim=True", "shape=(", "::", "approximate='tanh'", "True", "&", "~",
          "dim=", ", 0)", ", (2, -1))"]


def mutated(base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Random edits of a string: delete, insert a piece or a random character, or swap a span."""

    @st.composite
    def edit(draw: st.DrawFn) -> str:
        text = draw(base)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(text)))
            j = draw(st.integers(i, min(len(text), i + 4)))
            kind = draw(st.integers(0, 3))
            if kind == 0:
                text = text[:i] + text[j:]
            elif kind == 1:
                text = text[:i] + draw(st.sampled_from(PIECES)) + text[i:]
            elif kind == 2:
                text = text[:i] + draw(st.characters()) + text[j:]
            else:
                text = text[:i] + draw(st.sampled_from(ALL_FUNCS + NAMES)) + text[j:]
        return text

    return edit()


any_expression = st.one_of(expressions(), mutated(expressions()), st.text(max_size=40),
                           st.text(alphabet="xyvA()+-*/.,[]0123456789 _sinexpumaT=", max_size=30))

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.text(max_size=12)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children,
                                                                                max_size=4)),
    max_leaves=10,
)


@st.composite
def documents(draw: st.DrawFn) -> dict:
    """Case documents: a valid core with random keys replaced, added or removed."""
    doc: dict = {"name": "fuzz", "inputs": dict(DOC_INPUTS), "function": draw(expressions(6))}
    keys = ["name", "description", "inputs", "define", "function", "dtype", "checks", "expect", "tolerance",
            "points", "domain", "samples", "seed", "order", "grad_output", "retain_grad", "backward", "accumulate",
            "strict", "tags", "fucntion", "impl", "__class__"]
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(keys))
        action = draw(st.integers(0, 2))
        if action == 0:
            doc.pop(key, None)
        else:
            doc[key] = draw(st.one_of(json_values, any_expression))
    if draw(st.booleans()):  # this round's input keys: constants and integer labels, well and badly formed
        name = draw(st.sampled_from(sorted(DOC_INPUTS)))
        doc.setdefault("inputs", {})
        if isinstance(doc["inputs"], dict):
            doc["inputs"][name] = {"value": draw(st.one_of(json_values, st.lists(st.integers(-3, 3), max_size=4))),
                                   "requires_grad": draw(st.one_of(st.booleans(), json_values)),
                                   "integer": draw(st.one_of(st.booleans(), json_values))}
    if draw(st.booleans()):
        doc["checks"] = draw(st.one_of(st.sampled_from(["repeat", ["repeat", "vjp"], ["repeat", "repeat"]]), json_values))
    return doc


yaml_texts = st.one_of(
    documents().map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    mutated(documents().map(lambda d: yaml.safe_dump(d))),
    st.text(max_size=200),
)

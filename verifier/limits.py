"""The limits that keep hostile or huge input from hanging or exhausting the machine, in one place.

Each has a CLI flag (and pytest option) that raises it; every error that hits one names the flag.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Limits:
    expr_length: int = 20_000  # characters in one expression            --max-expr-length
    expr_nodes: int = 5_000  # parts of one parsed expression              --max-expr-nodes
    expr_depth: int = 200  # depth of one parsed expression (a sum of n terms is n deep)  --max-expr-depth
    brackets: int = 64  # nesting of brackets in one expression         (fixed: Python's parser itself recurses)
    exponent: int = 1_000  # magnitude of a literal exponent              --max-exponent
    yaml_bytes: int = 1 << 20  # size of one case file                  --max-yaml-bytes
    yaml_aliases: int = 64  # YAML aliases (*ref) in one file             --max-yaml-aliases
    yaml_depth: int = 32  # YAML nesting                                   --max-yaml-depth
    elements: int = 10_000_000  # elements of one input tensor           --max-elements
    symbols: int = 4_096  # elements expanded into sympy symbols per case  --max-symbols
    derivatives: int = 20_000  # derivative expressions built per case   --max-derivatives
    points: int = 1_000  # points per case                                --max-points


LIMITS = Limits()


def flag(name: str) -> str:
    return "--max-" + name.replace("_", "-")


def configure(**values: int | None) -> None:
    """Set limits by field name (None leaves a limit as it is)."""
    known = {f.name for f in fields(Limits)}
    for name, value in values.items():
        if name not in known:
            raise ValueError(f"unknown limit {name!r}")
        if value is not None:
            setattr(LIMITS, name, int(value))

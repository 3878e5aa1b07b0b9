"""The case language: nodes, the parser, the op table (ops.py and more_ops.py, both registered here)."""

from . import more_ops, ops  # noqa: F401 - every row of the op table is registered on first import

"""A walk of a sympy expression DAG, each shared sub-expression evaluated once, without recursion (deep expressions
do not hit Python's recursion limit). The mpmath and the array evaluators differ only in how a node is applied."""

from __future__ import annotations

from typing import Any

import sympy as sp


class DagEvaluator:
    """Values of sympy expressions; the memo is shared by every expression evaluated with the same instance."""

    memo: dict[sp.Basic, Any]

    def __call__(self, expr: sp.Basic) -> Any:
        memo = self.memo
        if expr in memo:
            return memo[expr]
        stack: list[tuple[sp.Basic, bool]] = [(expr, False)]
        while stack:
            node, ready = stack.pop()
            if node in memo:
                continue
            if self._whole(node):
                continue
            args = self._arguments(node)
            if not ready and args:
                stack.append((node, True))
                stack.extend((a, False) for a in args if a not in memo)
                continue
            memo[node] = self._apply(node)
        return memo[expr]

    def _whole(self, node: sp.Basic) -> bool:
        """Evaluate a node without its arguments first (e.g. only the taken branch); True when done."""
        return False

    def _arguments(self, node: sp.Basic) -> tuple[sp.Basic, ...]:
        """The arguments evaluated before the node (all of them, unless a walk needs fewer)."""
        return node.args

    def _apply(self, node: sp.Basic) -> Any:
        raise NotImplementedError

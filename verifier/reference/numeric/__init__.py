"""Numbers from sympy expressions: one table of functions, and DAG walkers for mpmath, numpy and torch."""

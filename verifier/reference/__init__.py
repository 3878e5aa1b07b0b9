"""The exact side: sympy and mpmath, never torch autograd. Every reference implements base.py's protocols."""

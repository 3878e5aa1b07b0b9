"""The element-expansion reference: one sympy expression per element, exact everywhere."""

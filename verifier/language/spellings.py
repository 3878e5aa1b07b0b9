"""sympy's spellings of the op table's functions: what sympy's printer emits, read by the parser as the rows they
mean (sympy's own sinc is unnormalised: it is the row sinc_unnormalized, not this table's; see the README)."""

from __future__ import annotations

# sympy's spellings (what its printer emits) for the functions above: the parser reads them as these rows
ALIASES = {"Abs": "abs", "Max": "max", "Min": "min", "Heaviside": "heaviside", "loggamma": "lgamma",
           "ceiling": "ceil", "re": "real", "im": "imag", "conjugate": "conj", "airyai": "airy_ai",
           "multigammaln": "mvlgamma", "psi": "digamma", "gammaln": "lgamma", "expit": "sigmoid", "arctan2": "atan2",
           "chebyshevt": "chebyshev_polynomial_t", "chebyshevu": "chebyshev_polynomial_u",
           "hermite": "hermite_polynomial_h", "hermite_prob": "hermite_polynomial_he",
           "laguerre": "laguerre_polynomial_l", "legendre": "legendre_polynomial_p"}
# sympy's (n, x) argument order where torch's rows take (x, n)
SWAPPED = frozenset({"chebyshevt", "chebyshevu", "hermite", "hermite_prob", "laguerre", "legendre"})

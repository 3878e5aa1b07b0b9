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

# torch's positional parameters after the tensor arguments, in torch's order: reshape(x, (2, 3)), unsqueeze(x, 0),
# leaky_relu(x, 0.2), sum(X, 0, True), norm(x, 3). Each must still be a literal the keyword accepts.
POSITIONAL = {"reshape": ("shape",), "squeeze": ("axis",), "unsqueeze": ("axis",), "diag": ("diagonal",),
              "tril": ("diagonal",), "triu": ("diagonal",), "leaky_relu": ("negative_slope",), "elu": ("alpha",),
              "celu": ("alpha",), "softplus": ("beta", "threshold"), "hardtanh": ("min_val", "max_val"),
              "sum": ("axis", "keepdim"), "mean": ("axis", "keepdim"), "prod": ("axis", "keepdim"),
              "logsumexp": ("axis", "keepdim"), "softmax": ("axis",), "log_softmax": ("axis",), "cumsum": ("axis",),
              "cumprod": ("axis",), "logcumsumexp": ("axis",), "norm": ("p", "axis", "keepdim")}
# torch's keyword spellings of the language's own: sum(X, dim=0) is sum(X, axis=0)
KEYWORD_ALIASES = {"dim": "axis"}

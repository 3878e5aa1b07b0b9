"""More rows of the op table: the special functions of torch.special and sympy (the gamma family, incomplete gamma,
Hurwitz zeta, the reciprocal trigonometric functions, Bessel, Airy, orthogonal polynomials) and tensor shaping.
Registered when the language package is imported (verifier/language/__init__.py), like the rows of ops.py."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from .meanings import (
    index_key,
    integer_of,
    np_module,
    polynomial,
    shape_of,
    sym_einsum,
    sym_gather,
    sym_index_by,
    sym_nll,
    torch_bessel,
)
from .ops import ELEMENTWISE, TENSOR, Op, elementwise_op, register_op, unary_op

BACKWARD = "Backward0"
S_HALF = Fraction(1, 2)  # heaviside's value at 0 by default (sympy's and torch's documented one)


# --- the gamma family, inverse reciprocal trigonometry, Bessel, Airy, orthogonal polynomials (torch.special) ---------


def _sp(name: str) -> Callable[..., Any]:
    return lambda T, *a: getattr(T.special, name)(*a)


unary_op("gamma", lambda S, x: S.gamma(x), lambda T, x: T.exp(T.lgamma(x)) * T.where((x > 0) | (T.floor(x) % 2 == 0), 1, -1),
       doc="Gamma(x) (torch has no gamma: exp(lgamma(x)) with the sign of Gamma)")
elementwise_op("polygamma", 2, lambda S, n, x: S.polygamma(n, x), lambda T, n, x: T.special.polygamma(integer_of(n), x),
             "Polygamma" + BACKWARD, doc="polygamma(n, x), n a constant integer >= 0", integer_args=(0,))
elementwise_op("mvlgamma", 2, lambda S, x, p: S.Add(*[S.LogAbsGamma(x + S.Rational(1 - j, 2)) for j in range(1, int(p) + 1)])
             + p * (p - 1) / 4 * S.log(S.pi), lambda T, x, p: T.special.multigammaln(x, integer_of(p)), "Mvlgamma" + BACKWARD,
             doc="the multivariate log-gamma function, p a constant integer (torch.special.multigammaln)",
             integer_args=(1,))
elementwise_op("beta", 2, lambda S, a, b: S.gamma(a) * S.gamma(b) / S.gamma(a + b),
             lambda T, a, b: T.exp(T.lgamma(a) + T.lgamma(b) - T.lgamma(a + b)), doc="the beta function B(a, b)")
elementwise_op("betaln", 2, lambda S, a, b: S.LogAbsGamma(a) + S.LogAbsGamma(b) - S.LogAbsGamma(a + b),
             lambda T, a, b: T.lgamma(a) + T.lgamma(b) - T.lgamma(a + b), doc="log |B(a, b)|")
elementwise_op("gammainc", 2, lambda S, a, x: S.lowergamma(a, x) / S.gamma(a), _sp("gammainc"), None,
             doc="the regularised lower incomplete gamma function P(a, x) (torch.special.gammainc)")
elementwise_op("gammaincc", 2, lambda S, a, x: S.uppergamma(a, x) / S.gamma(a), _sp("gammaincc"), None,
             doc="the regularised upper incomplete gamma function Q(a, x)")
elementwise_op("lowergamma", 2, lambda S, a, x: S.lowergamma(a, x),
             lambda T, a, x: T.special.gammainc(a, x) * T.exp(T.lgamma(a)), doc="sympy's lowergamma(a, x)")
elementwise_op("uppergamma", 2, lambda S, a, x: S.uppergamma(a, x),
             lambda T, a, x: T.special.gammaincc(a, x) * T.exp(T.lgamma(a)), doc="sympy's uppergamma(a, x)")
elementwise_op("zeta", 2, lambda S, x, q: S.Zeta(x, q), _sp("zeta"), "SpecialZeta" + BACKWARD,
             doc="the Hurwitz zeta function zeta(x, q) (torch.special.zeta)")
for _name, _of in (("cot", "tan"), ("sec", "cos"), ("csc", "sin"), ("coth", "tanh"), ("sech", "cosh"),
                   ("csch", "sinh")):
    unary_op(_name, (lambda n: lambda S, x: getattr(S, n)(x))(_name),
           (lambda f: lambda T, x: 1 / getattr(T, f)(x))(_of), doc=f"1 / {_of}(x)")
for _name, _of in (("acot", "atan"), ("asec", "acos"), ("acsc", "asin"), ("acoth", "atanh"), ("asech", "acosh"),
                   ("acsch", "asinh")):
    unary_op(_name, (lambda n: lambda S, x: getattr(S, n)(x))(_name),
           (lambda f: lambda T, x: getattr(T, f)(1 / x))(_of), doc=f"{_of}(1 / x) (sympy's principal branch)")
unary_op("erfcinv", lambda S, x: S.erfcinv(x), lambda T, x: T.erfinv(1 - x), doc="the inverse of erfc")
elementwise_op("erf2", 2, lambda S, x, y: S.erf2(x, y), lambda T, x, y: T.erf(y) - T.erf(x), doc="erf(y) - erf(x)")
register_op(Op("heaviside", ELEMENTWISE, (1, 2), lambda S, x, v=S_HALF: S.Heaviside(x, v),
               lambda T, x, v=0.5: T.heaviside(x, T.as_tensor(v).to(x)), grad_fn="Heaviside" + BACKWARD, smooth=False,
               doc="heaviside(x, value at 0 = 1/2): derivative 0 away from 0"))
unary_op("sinc_unnormalized", lambda S, x: S.Sinc(x / S.pi), lambda T, x: T.sinc(x / math.pi),
       doc="sin(x) / x, 1 at 0 (sympy's sinc; the language's sinc is torch's, sin(pi x) / (pi x))")
for _name, _sym in (("besselj", "besselj"), ("bessely", "bessely"), ("besseli", "besseli"), ("besselk", "besselk")):
    elementwise_op(_name, 2, (lambda n: lambda S, nu, x: getattr(S, n)(nu, x))(_sym),
                 (lambda n: lambda T, nu, x: torch_bessel(T, n, integer_of(nu), x))(_name), None,
                 doc=f"sympy's {_name}(n, x); torch has orders 0 and 1", integer_args=(0,))
for _name, (_sym, _order) in {"bessel_j0": ("besselj", 0), "bessel_j1": ("besselj", 1), "bessel_y0": ("bessely", 0),
                              "bessel_y1": ("bessely", 1), "modified_bessel_i0": ("besseli", 0),
                              "modified_bessel_i1": ("besseli", 1), "modified_bessel_k0": ("besselk", 0),
                              "modified_bessel_k1": ("besselk", 1)}.items():
    unary_op(_name, (lambda n, k: lambda S, x: getattr(S, n)(k, x))(_sym, _order), _sp(_name),
           doc=f"torch.special.{_name}")
unary_op("scaled_modified_bessel_k0", lambda S, x: S.exp(x) * S.besselk(0, x), _sp("scaled_modified_bessel_k0"))
unary_op("scaled_modified_bessel_k1", lambda S, x: S.exp(x) * S.besselk(1, x), _sp("scaled_modified_bessel_k1"))
unary_op("spherical_bessel_j0", lambda S, x: S.Sinc(x / S.pi), _sp("spherical_bessel_j0"), doc="sin(x) / x")
unary_op("airy_ai", lambda S, x: S.airyai(x), _sp("airy_ai"), doc="the Airy function Ai")


for _name, _kind in (("shifted_chebyshev_polynomial_t", "t"), ("shifted_chebyshev_polynomial_u", "u"),
                     ("shifted_chebyshev_polynomial_v", "v"), ("shifted_chebyshev_polynomial_w", "w")):
    elementwise_op(_name, 2, (lambda k: lambda S, x, n: polynomial(k)(S, 2 * x - 1, n))(_kind),
                   (lambda n: lambda T, x, k: getattr(T.special, n)(x, integer_of(k)))(_name),
                   doc=f"torch.special.{_name}(x, n): the degree-n polynomial in 2x - 1", integer_args=(1,))
for _name, _kind in (("chebyshev_polynomial_t", "t"), ("chebyshev_polynomial_u", "u"), ("chebyshev_polynomial_v", "v"),
                     ("chebyshev_polynomial_w", "w"), ("hermite_polynomial_h", "h"), ("hermite_polynomial_he", "he"),
                     ("laguerre_polynomial_l", "l"), ("legendre_polynomial_p", "p")):
    elementwise_op(_name, 2, polynomial(_kind), (lambda n: lambda T, x, k: getattr(T.special, n)(x, integer_of(k)))(_name),
                 doc=f"torch.special.{_name}(x, n): the degree-n polynomial in x, n a constant integer",
                 integer_args=(1,))

# --- tensor shaping (numpy's meaning on the object arrays, torch's on tensors; shapes from numpy's own rule) -------


def _shaping(name: str, sym: Callable[..., Any], tch: Callable[..., Any], arity: tuple[int, int] = (1, 1),
             keywords: tuple[str, ...] = (), doc: str = "", numpy: Callable[..., Any] | None = None) -> None:
    register_op(Op(name, TENSOR, arity, sym, tch, shape=shape_of(numpy or (lambda np, *a, **kw: sym(None, *a, **kw))),
                   keywords=keywords, doc=doc))


def _int(v: Any) -> int:
    return int(v)


_shaping("reshape", lambda S, a, shape=(): np_module().reshape(a, shape), lambda T, a, shape=(): T.reshape(a, shape),
         keywords=("shape",), doc="reshape(x, shape=(2, -1))")
_shaping("flatten", lambda S, a: np_module().reshape(a, -1), lambda T, a: T.flatten(a), doc="the elements in one axis")
_shaping("squeeze", lambda S, a, axis=None: np_module().squeeze(a, axis), lambda T, a, axis=None: a.squeeze()
         if axis is None else a.squeeze(axis), keywords=("axis",), doc="drop axes of size 1 (or the one at axis=)")
_shaping("unsqueeze", lambda S, a, axis=0: np_module().expand_dims(a, axis), lambda T, a, axis=0: a.unsqueeze(axis),
         keywords=("axis",), doc="a new axis of size 1 at axis=")
_shaping("cat", lambda S, *a, axis=0: np_module().concatenate(a, axis=axis), lambda T, *a, axis=0: T.cat(a, dim=axis),
         arity=(1, 64), keywords=("axis",), doc="cat(a, b, ..., axis=0)")
_shaping("stack", lambda S, *a, axis=0: np_module().stack(a, axis=axis), lambda T, *a, axis=0: T.stack(a, dim=axis),
         arity=(1, 64), keywords=("axis",), doc="stack(a, b, ..., axis=0)")
_shaping("diag", lambda S, a, diagonal=0: np_module().diag(a, _int(diagonal)),
         lambda T, a, diagonal=0: T.diag(a, int(diagonal)), keywords=("diagonal",),
         doc="a vector's diagonal matrix, or a matrix's diagonal")
_shaping("tril", lambda S, a, diagonal=0: np_module().tril(a, _int(diagonal)),
         lambda T, a, diagonal=0: T.tril(a, int(diagonal)), keywords=("diagonal",), doc="the lower triangle")
_shaping("triu", lambda S, a, diagonal=0: np_module().triu(a, _int(diagonal)),
         lambda T, a, diagonal=0: T.triu(a, int(diagonal)), keywords=("diagonal",), doc="the upper triangle")
_shaping("einsum", sym_einsum, lambda T, *a, subscripts="": T.einsum(subscripts, *a), arity=(1, 16),
         keywords=("subscripts",), doc='einsum("ij,jk->ik", A, B): the subscripts checked by the whitelist',
         numpy=lambda np, *a, subscripts="": np.einsum(subscripts, *a))
register_op(Op("getitem", TENSOR, (1, 1), lambda S, a, key=(): np_module().asarray(a, dtype=object)[index_key(key)],
               lambda T, a, key=(): a[index_key(key)], shape=shape_of(lambda np, a, key=(): a[index_key(key)]),
               internal=True, doc="x[1:3], x[:, 0], x[::2]: slices of literal bounds (the parser's subscripts)"))


# --- integer inputs (class labels, indices): constants, never differentiated; picked by comparison -------------------


def _gather_shape(x: Any, index: Any, axis: Any = -1) -> Any:
    if len(x) != len(index):
        raise ValueError(f"gather needs an index of the input's rank, got shapes {list(x)} and {list(index)}")
    return index


register_op(Op("gather", TENSOR, (2, 2), lambda S, x, index, axis=-1: sym_gather(S, x, index, axis),
               lambda T, x, index, axis=-1: T.gather(x, axis, index.long()), shape=_gather_shape, keywords=("axis",),
               doc="gather(x, index, axis=-1): torch.gather by an integer input"))
register_op(Op("take_along_dim", TENSOR, (2, 2), lambda S, x, index, axis=-1: sym_gather(S, x, index, axis),
               lambda T, x, index, axis=-1: T.take_along_dim(x, index.long(), dim=axis), shape=_gather_shape,
               keywords=("axis",), doc="take_along_dim(x, index, axis=-1)"))
register_op(Op("index_by", TENSOR, (2, 2), sym_index_by, lambda T, x, index: x[index.long()],
               shape=lambda x, index: tuple(index) + tuple(x[1:]), internal=True,
               doc="x[idx] for an integer input idx: the parser's form"))


def _nll_shape(logp: Any, labels: Any) -> Any:
    if len(logp) not in (1, 2) or tuple(labels) != tuple(logp[:-1]):
        raise ValueError(f"nll_loss takes log-probabilities [C] or [N, C] and labels [] or [N], got {list(logp)} and "
                         f"{list(labels)}")
    return ()


register_op(Op("nll_loss", TENSOR, (2, 2), sym_nll, lambda T, logp, labels: T.nn.functional.nll_loss(logp, labels.long()),
               shape=_nll_shape, doc="nll_loss(log-probabilities, class labels): the mean of -logp[i, label_i]"))


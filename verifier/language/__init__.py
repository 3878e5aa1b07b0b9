"""The case language: the AST, the whitelisting parser, THE op table, shapes and analysis; no numpy, sympy or torch."""

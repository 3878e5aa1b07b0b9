"""The code under test: torch's side of every case, never sympy (lowering, every autodiff path, users' code,
devices, what torch supports)."""

"""The checks: one module per family; a check is a function (Ctx, CheckResult) -> None, and run.py maps the
catalogue's names to them."""

"""YAML and Python values -> frozen Case; never torch or sympy (model, catalogue, validation, loading, the JSON Schema)."""

"""The package version, at the bottom of the house (every stage may read it; pyproject.toml says the same: a test)."""

__version__ = "0.1.0"

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "cases"


@pytest.fixture
def write_case(tmp_path: Path):
    """Write YAML text to a file in a temporary directory and return its path."""

    def write(text: str, name: str = "case.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True, scope="session")
def _private_cache(request: pytest.FixtureRequest):
    """Tests never read or fill the user's derivation cache: they share one under pytest's own cache directory
    (every xdist worker and every run; keys carry a hash of the deriving code, so an entry is never stale)."""
    import os

    os.environ["GRADVERIFY_CACHE_DIR"] = str(request.config.cache.mkdir("gradverify-derivations"))
    yield

"""The case suites that ship inside the package: cases/ of the source tree is verifier/suites/ of a wheel (see
pyproject.toml), so `gradverify run --suite seed` works in an empty folder after `pip install gradverify`."""

from __future__ import annotations

from pathlib import Path

from ..errors import CaseError

# the case suites that ship inside the package (cases/ of the source tree, verifier/suites/ of a wheel)
SUITES = {"seed": "seed", "ops": "ops", "all": "."}


def suite_path(name: str) -> Path:
    """Where a bundled suite's files are: in the installed package, or in the source checkout (an editable install)."""
    import importlib.util

    if name not in SUITES:
        raise CaseError(f"unknown suite {name!r}; suites: {', '.join(SUITES)}", file="<command line>", key="--suite")
    roots: list[Path] = []
    spec = importlib.util.find_spec("verifier.suites")
    if spec is not None and spec.submodule_search_locations:
        roots.extend(Path(p) for p in spec.submodule_search_locations)
    roots.append(Path(__file__).resolve().parents[2] / "cases")  # a source checkout
    for root in roots:
        if (root / SUITES[name]).is_dir() and any((root / SUITES[name]).glob("*.yaml")):
            return (root / SUITES[name]).resolve()
    raise CaseError(f"the bundled suite {name!r} is not installed here (looked in {', '.join(map(str, roots))})",
                    file="<command line>", key="--suite")

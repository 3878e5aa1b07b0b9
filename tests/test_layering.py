"""The house keeps its shape (../shared/DESIGN.md): one folder per stage, imports only downwards, no circle, no
private name across modules, no module past 600 lines; and each stage loads only the libraries it may.

The static rules read every import of verifier/ (lazy ones inside functions too; imports under `if TYPE_CHECKING:`
are typing only and are not counted). The library rules run each import in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from .conftest import ROOT

PACKAGE = ROOT / "verifier"

# bottom to top; a module may import its own layer's other modules only where PEERS allows, and any lower layer
LAYERS: list[set[str]] = [
    {"errors", "limits", "dtypes", "values", "version"},
    {"language"},
    {"case"},
    {"reference", "torchside", "compare", "config"},
    {"results"},
    {"checks", "report", "parallel", "cluster"},
    {"runner", "survey", "traced"},
    {"cli", "commands", "pytest_plugin", "assertions", "examples", "__init__", "__main__"},
]
# imports allowed within a layer: (importer, imported); every stage may import inside itself
PEERS = {("config", "case"), ("cluster", "parallel"), ("survey", "runner"), ("runner", "traced"), ("cli", "__init__"),
         ("__main__", "cli"), ("cli", "commands")}
# reference/ and torchside/ never see each other; checks/ is the only stage that sees both
APART = {("reference", "torchside"), ("torchside", "reference")}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(stage: str) -> int:
    return next(k for k, layer in enumerate(LAYERS) if stage in layer)


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(imported module, imported name, line) for every runtime import of a package module."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                out.append((target, alias.name, node.lineno))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("verifier"):
            out.extend((node.module, a.name, node.lineno) for a in node.names)  # type: ignore[misc]
        elif isinstance(node, ast.Import):
            out.extend((a.name, "", node.lineno) for a in node.names if a.name.startswith("verifier"))
    return out


def test_every_module_has_a_stage():
    stages = {_stage(m) for m in _modules()}
    assert stages <= set().union(*LAYERS), stages - set().union(*LAYERS)


def test_imports_only_go_down():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        mine = _stage(name)
        for target, _, line in _imports(name, path, modules):
            theirs = _stage(target)
            if theirs == mine or (mine, theirs) in PEERS:
                continue
            if (mine, theirs) in APART or _layer(theirs) >= _layer(mine):
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {target} ({theirs})")
    assert not wrong, "\n".join(wrong)


def test_no_import_circle():
    modules = _modules()
    graph = {name: {t for t, _, _ in _imports(name, path, modules) if t in modules and t != name}
             for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, circles


def test_private_names_stay_in_their_module():
    modules = _modules()
    crossing = [f"{path.relative_to(ROOT)}:{line} imports {target}.{attr}"
                for name, path in modules.items() for target, attr, line in _imports(name, path, modules)
                if attr.startswith("_") and not attr.startswith("__") and target != name]
    assert not crossing, "\n".join(crossing)


def test_module_sizes():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert max(sizes.values()) <= 600, {p: n for p, n in sizes.items() if n > 600}
    assert sum(n > 500 for n in sizes.values()) <= 2, {p: n for p, n in sizes.items() if n > 500}


def test_the_version_is_one():
    import verifier

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == verifier.__version__


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return {m.split(".")[0] for m in out.stdout.split()}


@pytest.mark.parametrize("statement, forbidden", [
    ("import verifier", {"torch", "sympy", "numpy", "pytest", "yaml", "rich"}),
    ("import verifier.language.parse, verifier.language.analysis, verifier.language.ops", {"numpy", "sympy", "torch"}),
    ("import verifier.case.loading, verifier.case.validate", {"torch", "sympy"}),
    ("import verifier.reference.choice, verifier.reference.expanded.point, verifier.reference.matrix", {"torch"}),
    ("import verifier.reference.vectorised.reference", {"torch"}),
    ("import verifier.torchside.autodiff, verifier.torchside.impl, verifier.torchside.support", {"sympy"}),
    ("import verifier.compare", {"torch", "sympy"}),
    ("import verifier.report, verifier.report.conventions", {"torch", "sympy"}),
    ("import verifier.cli", {"torch", "sympy", "numpy"}),
    ("import verifier.pytest_plugin", {"torch", "sympy", "numpy", "yaml"}),
])
def test_imports(statement, forbidden):
    assert not (_modules_after(statement) & forbidden)


def test_the_vectorised_reference_loads_torch_only_for_its_torch_kernels():
    """The float64 screen uses torch's math kernels (no autograd) by default: torch loads when a point is evaluated,
    and torch.autograd is never called by the reference (its tensors never require grad)."""
    code = ("import sys; import numpy as np; from verifier.case.validate import case_from_expression; "
            "from verifier.reference.choice import make_reference; "
            "c = case_from_expression('sum(sin(x))', {'x': np.linspace(0, 1, 100)}); "
            "r = make_reference(c); q = r.at({'x': np.linspace(0, 1, 100)}).vjp(np.ones(()), 'x'); "
            "print(type(r).__name__, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["VectorReference", "True"]


def test_every_public_name_imports():
    import verifier

    for name in verifier.__all__:
        assert getattr(verifier, name) is not None, name

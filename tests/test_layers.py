"""
The import direction of the layers (docs/architecture.md): API -> service ->
registry / economy -> domain -> core, carriers/ stands alone, and the sandbox
is a dev tool. Read from the source with ast, so the picture stays true.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Each layer of tracksvc and the layers it may import (besides itself and carriers' contract).
LAYERS: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "domain": frozenset({"core"}),
    "registry": frozenset({"domain", "core"}),
    "economy": frozenset({"domain", "core"}),
    "service": frozenset({"registry", "economy", "domain", "core"}),
    "freshness": frozenset({"service", "registry", "economy", "domain", "core"}),
    "api": frozenset({"freshness", "service", "registry", "economy", "domain", "core"}),
    "app": frozenset({"api", "freshness", "service", "registry", "economy", "domain", "core"}),
    "dev": frozenset({"app", "api", "freshness", "service", "registry", "economy", "domain", "core"}),
    "cli": frozenset({"dev", "app", "api", "freshness", "service", "registry", "economy", "domain", "core"}),
}
#: Layers that may import the carrier sandbox (a dev tool).
SANDBOX_USERS = frozenset({"dev"})


def modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def layer_of(path: Path) -> str:
    parts = path.relative_to(ROOT / "tracksvc").parts
    if len(parts) == 1:
        return {"app.py": "app", "__main__.py": "cli", "__init__.py": "core"}[parts[0]]
    return parts[0]


def imports(path: Path) -> Iterator[tuple[str, int, bool]]:
    """(module imported, line, at module top level?) for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    for node in tree.body:  # imports under `if TYPE_CHECKING:` count as top level
        if isinstance(node, ast.If):
            top.update(id(child) for child in node.body)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node.lineno, id(node) in top


def tracksvc_layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "tracksvc" or len(parts) < 2:
        return None
    if parts[1] == "app":
        return "app"
    return parts[1] if parts[1] in LAYERS else None


def test_carriers_import_nothing_of_tracksvc() -> None:
    """carriers/ is a library of its own: no module of it imports tracksvc."""
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in modules("carriers")
        for module, line, _ in imports(path)
        if module.split(".")[0] == "tracksvc"
    ]
    assert found == []


def test_tracksvc_modules_live_in_layer_packages() -> None:
    """tracksvc/ holds packages by job; at its top only the app factory and the entry points."""
    top = sorted(p.name for p in (ROOT / "tracksvc").glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "app.py"]
    assert {p.name for p in (ROOT / "tracksvc").iterdir() if p.is_dir() and p.name != "__pycache__"} >= set(
        LAYERS
    ) - {"app"}


@pytest.mark.parametrize("path", list(modules("tracksvc")), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_one_way(path: Path) -> None:
    """A module imports only its own layer and the layers below it, at the top of the file."""
    layer = layer_of(path)
    wrong = []
    for module, line, at_top in imports(path):
        target = tracksvc_layer(module)
        if module.startswith("carriers.sandbox") and layer not in SANDBOX_USERS:
            wrong.append(f"line {line}: {module} (the sandbox is a dev tool)")
        if target is None or target == layer:
            continue
        if target not in LAYERS[layer]:
            wrong.append(f"line {line}: {module} ({layer} may not import {target})")
        if not at_top:
            wrong.append(f"line {line}: {module} is imported inside a function")
    assert wrong == []

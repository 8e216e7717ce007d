"""The layering holds: shared < services < core < app, no arrow up, no two modules importing
each other. Read from the source's own import statements (also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"shared": 0, "services": 1, "core": 2, "app": 3}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in LAYERS:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out[".".join(parts)] = path
    return out


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n.split(".")[0] in LAYERS}


def test_no_module_imports_from_a_layer_above_it() -> None:
    upward = [
        f"{mod} -> {name}"
        for mod, path in _modules().items()
        for name in _imports(path)
        if LAYERS[name.split(".")[0]] > LAYERS[mod.split(".")[0]]
    ]
    assert upward == []


def test_no_two_modules_import_each_other() -> None:
    mods = _modules()
    edges = {m: {n for n in _imports(p) if n in mods and n != m} for m, p in mods.items()}
    circles = sorted(
        {tuple(sorted((a, b))) for a, bs in edges.items() for b in bs if a in edges[b]}
    )
    assert circles == []

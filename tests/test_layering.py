"""The folders import one way (hw <- sim <- sw <- examples <- gen), computed from the source."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("hw", "sim", "sw", "examples", "gen")
ORDER = {name: i for i, name in enumerate(FOLDERS)}


def _imports(path):
    """The ``bfly.<folder>`` names imported by ``path`` (top-level and inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom) and node.level > 1:
            yield "relative import beyond its folder", node.lineno
            continue
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] in FOLDERS:
                yield f"bare '{name}' (the package is bfly.{name})", node.lineno
            elif parts[0] == "bfly" and len(parts) > 1:
                yield parts[1], node.lineno


def folder_graph():
    """``{(importer folder, imported folder): [file:line, ...]}`` across folders."""
    edges = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for target, line in _imports(path):
                if target != folder:
                    edges.setdefault((folder, target), []).append(f"{path.relative_to(ROOT)}:{line}")
    return edges


def test_no_two_way_pair():
    edges = folder_graph()
    assert all(b in ORDER for _, b in edges), {k: v for k, v in edges.items() if k[1] not in ORDER}
    two_way = {(a, b): (edges[a, b], edges[b, a]) for a, b in edges if (b, a) in edges and a < b}
    assert not two_way, two_way


def test_imports_run_down_the_layers():
    """hw is the bottom; each folder imports only folders below it."""
    upward = {k: v for k, v in folder_graph().items() if ORDER[k[1]] > ORDER[k[0]]}
    assert not upward, upward


@pytest.mark.parametrize("module, banned", [("sim/model.py", ("amaranth", "cocotb", "torch")),
                                            ("hw/config.py", ("amaranth",)),
                                            ("hw/connectivity.py", ("amaranth", "torch")),
                                            ("hw/regmap.py", ("amaranth",)),
                                            ("hw/csr.py", ("amaranth",)),
                                            ("hw/hostlink.py", ("amaranth",))])
def test_pure_python_modules(module, banned):
    """The golden model and the contract tables need no HDL or simulator."""
    tree = ast.parse((ROOT / module).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {n for n in names if n.split(".")[0] in banned}

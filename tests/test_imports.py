"""No import loops in adapters_sft: read from the syntax tree, counting imports at the top of a
module and inside functions alike (a lower module that reaches up inside a function is still
a loop); imports under `if TYPE_CHECKING:` are for type hints only and never run, so they do
not count."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "adapters_sft"


def modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ours that `name` imports, anywhere in it but under TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(node) for block in ast.walk(tree)
                   if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                   for stmt in block.body for node in ast.walk(stmt)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package, up level - 1 packages
                parts = package.split(".")
                target = ".".join(parts[:len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names]  # a module, or a name in one
        else:
            names = [alias.name for alias in node.names]
        for candidate in names:
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
    return found


def loops(root: Path) -> list[list[str]]:
    """Each import loop (a strongly connected set of modules), as a cycle of names."""
    known = modules(root)
    graph = {name: imports(name, path, known) for name, path in known.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(_cycle(sorted(group), graph))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _cycle(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """One path around the loop, from its first module back to it, to name in the failure."""
    start, members = group[0], set(group)
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in members)
        back = [w for w in nxt if w == start]
        if back and len(path) > 1:
            return path + [start]
        step = next((w for w in nxt if w not in seen), None)
        if step is None:
            return path + [start]
        path.append(step)
        seen.add(step)


def test_adapters_sft_has_no_import_loops():
    found = loops(PACKAGE)
    assert found == [], "import loops: " + "; ".join(" -> ".join(c) for c in found)


def test_a_loop_put_back_is_found_and_named(tmp_path):
    """The check itself: a lower module reaching up inside a function is a loop, a type-only
    import is not."""
    pkg = tmp_path / "pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "__init__.py").write_text("")
    (pkg / "recipe.py").write_text("from .data.load import read\n")
    (pkg / "data" / "load.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..recipe import Recipe\n\n"
        "def read():\n    return 1\n")
    assert loops(pkg) == []
    (pkg / "data" / "load.py").write_text("def read():\n    from ..recipe import Recipe\n    return Recipe\n")
    assert loops(pkg) == [["pkg.data.load", "pkg.recipe", "pkg.data.load"]]

"""The layout of envelope.kms: sub-packages import one way, and no modules import each other in a cycle.

Checked on the source with `ast`, counting every import: module level, inside functions (deferred),
and under ``if TYPE_CHECKING:``; the direction is drawn in the ``envelope.kms`` package docstring.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # holds the `envelope` package
KMS = "envelope.kms"

# What each layer of envelope.kms may import from envelope.kms (itself included). `<package>` is
# envelope/kms/__init__.py, which re-exports LocalKMS and ManualClock.
ALLOWED: dict[str, frozenset[str]] = {
    "model": frozenset({"model"}),
    "store": frozenset({"model", "store"}),
    "authz": frozenset({"model", "authz"}),
    "engine": frozenset({"model", "store", "authz", "engine"}),
    "ops": frozenset({"model", "store", "authz", "engine", "ops"}),
    "client": frozenset({"model", "store", "authz", "engine", "ops"}),
    "server": frozenset({"model", "store", "authz", "engine", "ops", "client", "server"}),
    "<package>": frozenset({"model", "store", "authz", "engine", "ops", "client", "server"}),
}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _exists(root: Path, module: str) -> bool:
    base = root.joinpath(*module.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def imports_of(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in the file, wherever it is; relative imports are
    resolved, and ``from pkg import name`` counts as ``pkg.name`` when that is a module."""
    here = module_name(root, path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] + ([node.module] if node.module else [])
                target = ".".join(base)
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.append((node.lineno, candidate if _exists(root, candidate) else target))
    return found


def import_graph(root: Path, package: str = "envelope") -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports explicitly (a parent package's implicit
    ``__init__`` is not an edge: Python runs it first, so it cannot close a cycle)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(root.joinpath(*package.split(".")).rglob("*.py")):
        source = module_name(root, path)
        graph[source] = {target for _, target in imports_of(root, path)
                         if (target == package or target.startswith(package + ".")) and target != source}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the package's module count
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def layer_of(module: str) -> str | None:
    """The layer of an envelope.kms module, None for a module that is in none."""
    parts = module.split(".")
    if parts == ["envelope", "kms"]:
        return "<package>"
    name = parts[2]
    if len(parts) == 3 and name != "client" and name not in ALLOWED:
        return None  # a module directly in envelope/kms other than client.py
    return name if name in ALLOWED else None


def direction_problems(root: Path) -> list[str]:
    problems = []
    for path in sorted(root.joinpath("envelope", "kms").rglob("*.py")):
        source = module_name(root, path)
        layer = layer_of(source)
        if layer is None:
            problems.append(f"{source} is in no layer of envelope.kms")
            continue
        for line, target in imports_of(root, path):
            if not target.startswith(KMS + ".") and target != KMS:
                continue
            target_layer = layer_of(target)
            if target_layer is None or target_layer not in ALLOWED[layer]:
                problems.append(f"{source}:{line} ({layer}) imports {target} ({target_layer})")
    return problems


def _write(root: Path, files: Iterable[tuple[str, str]]) -> None:
    for name, text in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_walk_sees_every_kind_of_import(tmp_path: Path) -> None:
    # A cycle closed only by a deferred import, one closed only under TYPE_CHECKING, and an upward
    # import inside a function: each must be seen.
    _write(tmp_path, [
        ("envelope/__init__.py", ""),
        ("envelope/a.py", "from . import b\n"),
        ("envelope/b.py", "def f():\n    from .a import x\n"),
        ("envelope/c.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from envelope.d import Y\n"),
        ("envelope/d.py", "import envelope.c\n"),
        ("envelope/e.py", "from .f import g\n"),
        ("envelope/f.py", ""),
        ("envelope/kms/__init__.py", ""),
        ("envelope/kms/model/__init__.py", ""),
        ("envelope/kms/model/keys.py", "def f():\n    from ..ops import aliases\n"),
        ("envelope/kms/ops/__init__.py", ""),
        ("envelope/kms/ops/aliases.py", "from ..model.keys import f\n"),
        ("envelope/kms/policy.py", ""),
    ])
    assert find_cycles(import_graph(tmp_path)) == [
        ["envelope.a", "envelope.b"], ["envelope.c", "envelope.d"],
        ["envelope.kms.model.keys", "envelope.kms.ops.aliases"]]
    assert direction_problems(tmp_path) == [
        "envelope.kms.model.keys:2 (model) imports envelope.kms.ops.aliases (ops)",
        "envelope.kms.policy is in no layer of envelope.kms",
    ]


def test_no_import_cycles_in_the_package() -> None:
    graph = import_graph(ROOT)
    assert {"envelope.kms.engine.runtime", "envelope.kms.authz.policy", "envelope.kms.ops.symmetric"} <= set(graph)
    assert "envelope.kms.ops.keyblobs" in graph["envelope.kms.ops.asymmetric"]  # the walk resolves relative imports
    assert find_cycles(graph) == []


def test_kms_layers_import_one_way() -> None:
    assert direction_problems(ROOT) == []


@pytest.mark.parametrize("layer", ["model", "store", "authz", "engine", "ops"])
def test_each_layer_is_a_package_with_a_docstring(layer: str) -> None:
    init = ROOT / "envelope" / "kms" / layer / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    # A layer's __init__ imports nothing, so importing one module of it loads no other.
    assert ast.get_docstring(tree)
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]

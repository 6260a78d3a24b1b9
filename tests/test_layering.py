"""Import direction (DESIGN.md §2): format <- crypto <- keyrings, materials <- streaming <- api <- cli,
with kms reached only through the KMS client protocol. Checked on the source with `ast`.
The layers inside envelope.kms, and the absence of import cycles: tests/kms/test_kms_layout.py.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "envelope"
RUNTIME_DEPENDENCIES = {"cryptography", "msgpack", "anyio", "zstandard"}

# What each layer may import from inside the package (by the first component under `envelope`).
# `errors` is the root every layer may use.
ALLOWED: dict[str, set[str]] = {
    "errors": {"errors"},
    "format": {"errors", "format"},
    "crypto": {"errors", "format", "crypto"},
    "keyrings": {"errors", "format", "crypto", "keyrings", "materials"},
    "materials": {"errors", "format", "crypto", "keyrings", "materials"},
    "streaming": {"errors", "format", "crypto", "keyrings", "materials", "streaming"},
    "kms": {"errors", "format", "kms"},
}
# Modules above `streaming` (the api, envelope/__init__, aio, and any new top-level module) may
# import every layer except the embedded KMS, which only the client protocol reaches.
ABOVE_STREAMING = {"errors", "format", "crypto", "keyrings", "materials", "streaming", "api", "aio", "inspect",
                   "<package>"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imported_modules(path: Path) -> list[tuple[int, str, bool]]:
    """(line, absolute module name, at module level) for every import in the file, relative ones
    resolved; ``from pkg import name`` counts as ``pkg.name`` when that is a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path).split(".")
    package = here if is_package(path) else here[:-1]
    top_level = {id(node) for node in tree.body}
    for statement in tree.body:  # imports under a module-level `if`/`try` are module level too
        if isinstance(statement, (ast.If, ast.Try)):
            top_level |= {id(child) for child in ast.walk(statement)}
    found: list[tuple[int, str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] + ([node.module] if node.module else [])
                target = ".".join(base)
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                sub = PACKAGE.parent / Path(*candidate.split("."))
                is_module = sub.with_suffix(".py").exists() or (sub / "__init__.py").exists()
                found.append((node.lineno, candidate if is_module else target, id(node) in top_level))
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts == ["envelope"]:
        return "<package>"
    return parts[1]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_walk_sees_the_package() -> None:
    names = {module_name(p) for p in SOURCES}
    assert {"envelope", "envelope.format.header", "envelope.streaming.decryptor", "envelope.api"} <= names
    # The resolver handles the relative forms used in the tree.
    found = {m for _, m, _ in imported_modules(PACKAGE / "format" / "header.py")}
    assert {"envelope.errors", "envelope.format.context", "envelope.format.reader"} <= found


@pytest.mark.parametrize("path", SOURCES, ids=[module_name(p) for p in SOURCES])
def test_import_direction(path: Path) -> None:
    source = module_name(path)
    layer = layer_of(source)
    allowed = ALLOWED.get(layer, ABOVE_STREAMING)
    # _sha512 is Python 3.11's built-in SHA-512, which crypto/kdf.py tries first (gone in 3.12).
    stdlib = set(sys.stdlib_module_names) | {"_sha512"}
    problems = []
    for line, target, module_level in imported_modules(path):
        root = target.split(".")[0]
        if root == "envelope":
            target_layer = layer_of(target)
            if target_layer not in allowed:
                problems.append(f"line {line}: {source} ({layer}) imports {target}")
        elif root == "envelope_cli":
            problems.append(f"line {line}: {source} imports the CLI")
        elif root in stdlib:
            continue
        elif layer == "kms":
            # The embedded service runs on stdlib, cryptography and msgpack; an optional extra
            # (uvicorn for `envelope kms serve`) may only be imported lazily, inside a function.
            if root not in {"cryptography", "msgpack"} and module_level:
                problems.append(f"line {line}: envelope.kms may use only stdlib, cryptography, msgpack: {target}")
        elif root not in RUNTIME_DEPENDENCIES and module_level:
            # Optional extras (boto3, ...) may only be imported lazily, inside a function.
            problems.append(f"line {line}: {source} imports {target}, not a runtime dependency, at module level")
    assert not problems, "\n".join(problems)


def test_kms_keyring_does_not_import_the_embedded_kms() -> None:
    # keyrings.kms talks to any boto3-shaped client; it must not reach into envelope.kms.
    keyring_modules = [p for p in SOURCES if layer_of(module_name(p)) == "keyrings"]
    offenders = [(module_name(p), line, target) for p in keyring_modules
                 for line, target, _ in imported_modules(p) if target.startswith("envelope.kms")]
    assert not offenders


def test_format_never_imports_crypto() -> None:
    # HOUSE_STYLE 4, the single most important edge: parsing never authenticates.
    format_modules = [p for p in SOURCES if layer_of(module_name(p)) == "format"]
    assert format_modules
    for path in format_modules:
        for _, target, _ in imported_modules(path):
            assert not target.startswith(("envelope.crypto", "cryptography")), (module_name(path), target)

"""Writing a module generated from botocore's KMS model, or checking that it is current: the one
`main` behind ``python -m envelope.kms.model.generate_operations`` and
``python -m envelope.kms.ops.generate_api``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["write_or_check"]


def write_or_check(target: Path, text: str, args: Sequence[str]) -> int:
    """Replace ``target`` with ``text`` atomically (``--check`` in ``args``: only report whether
    it already holds ``text``, exit status 1 if not)."""
    if "--check" in args:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        print(f"{target.name} is current" if current == text else f"{target.name} is out of date: regenerate it")
        return 0 if current == text else 1
    tmp = target.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    print(f"wrote {target}")
    return 0

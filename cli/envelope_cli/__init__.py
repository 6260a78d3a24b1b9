"""The `envelope` command line: encrypt, decrypt and inspect files, and drive the embedded KMS.

It uses only public `envelope` names; the entry point is `envelope_cli.main:main`.
"""

from __future__ import annotations

__all__: list[str] = []

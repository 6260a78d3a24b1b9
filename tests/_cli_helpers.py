"""Helpers shared by the CLI tests (a uniquely named module: every tests/ folder has a conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The installed console script (pyproject [project.scripts]); `python -m` only if it is missing.
_SCRIPT = Path(sys.executable).with_name("envelope")
ENVELOPE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "envelope_cli.main"]

# The contents of the `plain` fixture's plain.txt; 15 kB so that --compress shrinks it tenfold.
PLAIN = b"attack at dawn\n" * 1000


def run_envelope(*argv: str, stdin: bytes | None = None, cwd: Path | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run the real console entry point in a child process."""
    return subprocess.run([*ENVELOPE, *argv], input=stdin, capture_output=True, cwd=cwd, timeout=timeout,
                          env=os.environ.copy(), check=False)

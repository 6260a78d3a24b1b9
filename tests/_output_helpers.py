"""What an atomic output leaves in a directory, and how far a writer in another process got."""

from __future__ import annotations

import os
from pathlib import Path

from envelope.streaming.atomic import TEMP_SUFFIX


def has_unnamed_files(directory: Path) -> bool:
    """True where `AtomicOutput` writes unnamed files: O_TMPFILE works in ``directory`` and
    /proc/self/fd names open files."""
    if not hasattr(os, "O_TMPFILE") or not os.path.isdir("/proc/self/fd"):
        return False
    try:
        os.close(os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o600))
    except OSError:
        return False
    return True


def leftovers(directory: Path) -> list[str]:
    """The temporary files in ``directory``, by name."""
    return sorted(name for name in os.listdir(directory) if name.endswith(TEMP_SUFFIX))


def open_output_size(pid: int, directory: Path) -> int | None:
    """The size of a file that process ``pid`` has open in ``directory`` (its temporary output,
    named or not: /proc shows an unnamed one as ``DIR/#INODE (deleted)``), or None."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(directory) + os.sep):
            try:
                return os.stat(fd).st_size
            except OSError:
                return None
    return None

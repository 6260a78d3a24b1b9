"""Opening a data directory: its shared lock, finishing what a kill interrupted (a restore, a
root-key rotation), the root key.

Every user of a store on disk (`Partition`, the endpoint's `AccessKeys`) opens it here.
"""

from __future__ import annotations

from pathlib import Path

from .backup import finish_restores
from .datadir import StoreLock
from .rootkey import RootKey, load_root_key, pending_key
from .rotation import finish_rotation

__all__ = ["open_store"]


def open_store(directory: Path) -> tuple[StoreLock, RootKey]:
    """Take the directory's shared lock and return it with the root key.

    A restore or rotation left half done is finished first, under the exclusive lock.

    :raises StoreError: the root key is missing beside a store, damaged, or not the store's.
    """
    lock = StoreLock(directory, exclusive=False)
    try:
        finish_restores(directory, lock)
        root = load_root_key(directory)
        if pending_key(root) is not None:
            lock.change(exclusive=True)
            root = load_root_key(directory)
            pending = pending_key(root)
            if pending is not None:
                finish_rotation(directory, root, pending)
                root = load_root_key(directory)
            lock.change(exclusive=False)
    except BaseException:
        lock.release()
        raise
    return lock, root

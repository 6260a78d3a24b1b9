"""envelope.kms: an embedded, local key-management service with the boto3 KMS client's shapes.

Reached from the rest of the package only through the KMS keyring and its client protocol.

Sub-packages, each importing only from those below it (an arrow points from the importer to what it
may import; no import cycles, deferred or under TYPE_CHECKING included; `tests/kms/test_kms_layout.py`
checks this on the source)::

    server ──> client ──> ops ──> engine ──┬──> authz ──┐
                                           └──> store ──┴──> model

    model   values and validation: errors, clock, keys (records, specs, ARNs), blobs, params
            (request arguments), access (grants, grant tokens, decisions)
    store   persistence: database (SQLite), migrations (schema versions), datadir (files, lock),
            rootkey, sealing, audit (auditevents, auditchain), partition (regions, caches),
            opening, rotation (root key), backup (and restore)
    authz   pure authorization: request, conditions, policy; imports model only
    engine  one service call: session, runtime (Call, execute), due (lazy lifecycle work, replica
            sync), servicekeys (AWS managed keys), principals (IAM store), ratelimit
    ops     the KMS operations, one module per family: aliases, asymmetric, symmetric, keyblobs,
            grants, imports, keyops, lifecycle, macs, multiregion
    client  LocalKMS, the boto3-shaped client over the operations
    server  the HTTP endpoint (KMS JSON 1.1, STS, SigV4) over LocalKMS

A layer may import any lower layer (ops may import model directly), never a higher one; store and
authz do not import each other. This package's `__init__` exports LocalKMS and ManualClock, and the operator functions (backup,
restore, rotate_root_key; StoreError).
"""

from __future__ import annotations

from .client import LocalKMS as LocalKMS
from .model.clock import ManualClock as ManualClock
from .store.backup import backup as backup
from .store.backup import restore as restore
from .store.datadir import StoreError as StoreError
from .store.partition import default_data_dir as default_data_dir
from .store.rotation import rotate_root_key as rotate_root_key

__all__ = ["LocalKMS", "ManualClock", "StoreError", "backup", "default_data_dir", "restore", "rotate_root_key"]

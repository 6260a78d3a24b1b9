"""envelope.kms.store: persistence (SQLite databases and their schema versions, the root key and
the sealer, the audit log, the partition of region databases and their caches) and the operator's
work on a data directory (root-key rotation, backup, restore). Imports only `envelope.kms.model`.
"""

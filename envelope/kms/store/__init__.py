"""envelope.kms.store: persistence (SQLite databases, the root-key sealer, the audit log, the
partition of region databases and their caches). Imports only `envelope.kms.model`.
"""

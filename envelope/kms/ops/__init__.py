"""envelope.kms.ops: the KMS operations, one module per family; each takes an engine `Call`.
Imports engine, authz, store and model.
"""

"""envelope.kms.authz: pure authorization (key and identity policies, conditions, grants' effect).
Imports only `envelope.kms.model`; no I/O.
"""

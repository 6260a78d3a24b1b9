"""envelope.kms.engine: one service call (session, transaction, key resolution, authorization,
audit), the lazily applied lifecycle work and the principal store. Imports model, store and authz.
"""

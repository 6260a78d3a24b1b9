"""Cryptographic primitives for the message format: AES-GCM, key derivation, ECDSA signatures.

This layer knows nothing of framing or streams, and it does not decide policy: callers pick the
suite, check commitment policy and enforce ordering. Foreign exceptions are translated here.
"""

"""envelope.kms.model: the service's values and their validation (key records and specs, ARNs,
ciphertext blobs, request arguments, grants, errors, the clock, and the operation table generated
from the KMS API model). Imports nothing above it.
"""

"""envelope.kms: an embedded, local key-management service with the boto3 KMS client's shapes.

Reached from the rest of the package only through the KMS keyring and its client protocol.
"""

from __future__ import annotations

from .client import LocalKMS as LocalKMS
from .clock import ManualClock as ManualClock

__all__ = ["LocalKMS", "ManualClock"]

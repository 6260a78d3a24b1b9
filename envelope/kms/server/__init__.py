"""envelope.kms.server: a KMS-compatible HTTP endpoint (KMS JSON 1.1, STS GetCallerIdentity, SigV4).

Needs the ``serve`` extra (uvicorn) to run; `AccessKeys` and `KMSApp` import without it.
"""

from __future__ import annotations

from .accesskeys import AccessKeys as AccessKeys
from .app import KMSApp as KMSApp
from .run import DEFAULT_PORT as DEFAULT_PORT
from .run import KMSServer as KMSServer
from .run import serve as serve

__all__ = ["AccessKeys", "DEFAULT_PORT", "KMSApp", "KMSServer", "serve"]

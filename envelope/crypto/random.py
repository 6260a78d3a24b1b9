"""The one source of randomness for message ids, data keys, IVs and signing keys.

`_source` is a private seam: vectors/generate.py swaps it for a seeded generator to make
reproducible test vectors. Nothing public takes a fixed nonce or key.
"""

from __future__ import annotations

import os
from collections.abc import Callable

_source: Callable[[int], bytes] = os.urandom


def random_bytes(n: int) -> bytes:
    return _source(n)

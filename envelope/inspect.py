"""Read a message header without keys: for showing what a message is, never for trusting it.

`read_header` parses structure and limits only; it does not verify the header tag or key commitment.
"""

from __future__ import annotations

from typing import IO

from .errors import FormatError
from .format.header import DEFAULT_MAX_HEADER_LENGTH, Header, parse_header
from .format.reader import Incomplete

__all__ = ["read_header"]

_READ_SIZE = 64 * 1024


def read_header(source: bytes | bytearray | memoryview | IO[bytes], *,
                max_header_length: int = DEFAULT_MAX_HEADER_LENGTH) -> Header:
    """Parse the header at the start of ``source`` without decrypting or authenticating anything.

    Nothing returned is authenticated: a tampered header parses the same way. Use it to show a
    message's suite, context and encrypted data keys, never to decide whether to trust it. A
    file-like ``source`` is read only as far as the header (plus at most one read-ahead chunk).

    :param source: the message bytes, or a binary file-like object positioned at its start.
    :param max_header_length: refuse headers longer than this many bytes.
    :returns: the parsed, unauthenticated header.
    :raises FormatError: not a message (with a hint if it looks base64-encoded), a truncated
        header, or a header over the limit.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        try:
            return parse_header(source, max_header_length=max_header_length).header
        except Incomplete:
            raise FormatError("the input ends inside the message header") from None
    if not hasattr(source, "read"):
        raise TypeError("source must be bytes or a binary file-like object")
    buf = bytearray()
    while True:
        try:
            return parse_header(buf, max_header_length=max_header_length).header
        except Incomplete as incomplete:
            want = max(incomplete.needed - len(buf), 1)
        chunk = source.read(max(want, min(_READ_SIZE, max_header_length)))
        if isinstance(chunk, str):
            raise TypeError("source must be opened in binary mode")
        if not chunk:
            raise FormatError("the input ends inside the message header")
        buf += chunk

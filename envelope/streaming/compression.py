"""Optional zstd compression of the plaintext, signalled in the encryption context
(format-spec/message.md §8.2).

Compression runs before encryption and decompression after authentication, so the decompressor
only ever sees authenticated bytes. Peers without this extension decrypt to the zstd stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import zstandard

from ..errors import FormatError, PolicyError
from ..format.context import ENVELOPE_PREFIX

__all__ = [
    "COMPRESSION_KEY",
    "DEFAULT_MAX_COMPRESSION_RATIO",
    "Compressor",
    "Decompressor",
    "compression_of",
]

COMPRESSION_KEY = ENVELOPE_PREFIX + "compression"
_KNOWN_EXTENSIONS = frozenset({COMPRESSION_KEY})
# A bomb guard that legitimate data rarely reaches: once the output passes _RATIO_GRACE bytes,
# output/input may not exceed this ratio unless the caller raises it.
DEFAULT_MAX_COMPRESSION_RATIO = 1000
_RATIO_GRACE = 16 * 1024 * 1024
_CHUNK = 1024 * 1024

Sink = Callable[[bytes], object]


def compression_of(context: Mapping[str, str]) -> str | None:
    """Return the compression a message declares, or None.

    :raises FormatError: the context uses an `envelope:` extension this version does not know,
        or an unknown compression; reading on would return bytes the writer did not mean (§8.1).
    """
    for key in context:
        if key.startswith(ENVELOPE_PREFIX) and key not in _KNOWN_EXTENSIONS:
            raise FormatError(f"the message uses the extension {key!r}, which this version of envelope does not support")
    value = context.get(COMPRESSION_KEY)
    if value is not None and value != "zstd":
        raise FormatError(f"the message declares compression {value!r}; only 'zstd' is supported")
    return value


class Compressor:
    """Streaming zstd compressor for the plaintext side of an encryptor."""

    def __init__(self, level: int = 3) -> None:
        if isinstance(level, bool) or not isinstance(level, int):
            raise TypeError("compression_level must be an int")
        if not -7 <= level <= 22:
            raise ValueError("compression_level must be between -7 and 22")
        self._obj = zstandard.ZstdCompressor(level=level).compressobj()

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        # zstandard reads any buffer: no copy (a bytes() copy cost ~20% of level-1 throughput).
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush()


class _FrameTracker:
    """Walks zstd frame and block headers (RFC 8878 §3.1) without decompressing, to tell whether
    the stream ended on a frame boundary; python-zstandard's streaming APIs do not report that."""

    _MAGIC = 0xFD2FB528

    def __init__(self) -> None:
        self._pending = bytearray()  # header bytes not yet complete
        self._skip = 0  # bytes of block content / skippable frame still to pass over
        self._state = "magic"
        self._checksum = False

    @property
    def complete(self) -> bool:
        return self._state == "magic" and not self._pending and not self._skip

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while len(view):
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                view = view[n:]
                continue
            need = self._needed()
            take = need - len(self._pending)
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < need:
                return
            self._advance(bytes(self._pending))
            self._pending.clear()

    def _needed(self) -> int:
        if self._state == "magic":
            return 4
        if self._state == "skippable":
            return 4
        if self._state == "descriptor":
            return 1
        if self._state == "frame_header":
            return self._header_rest
        if self._state == "block":
            return 3
        return 4  # checksum

    def _advance(self, field: bytes) -> None:
        if self._state == "magic":
            magic = int.from_bytes(field, "little")
            if magic == self._MAGIC:
                self._state = "descriptor"
            elif magic & 0xFFFFFFF0 == 0x184D2A50:
                self._state = "skippable"
            else:
                raise FormatError("the compressed plaintext is not a zstd stream")
        elif self._state == "skippable":
            self._skip = int.from_bytes(field, "little")
            self._state = "magic"
        elif self._state == "descriptor":
            descriptor = field[0]
            single_segment = descriptor >> 5 & 1
            fcs_size = (0, 2, 4, 8)[descriptor >> 6] or (1 if single_segment else 0)
            dict_size = (0, 1, 2, 4)[descriptor & 3]
            self._checksum = bool(descriptor >> 2 & 1)
            self._header_rest = (0 if single_segment else 1) + dict_size + fcs_size
            self._state = "frame_header" if self._header_rest else "block"
        elif self._state == "frame_header":
            self._state = "block"
        elif self._state == "block":
            header = int.from_bytes(field, "little")
            last, block_type, size = header & 1, header >> 1 & 3, header >> 3
            if block_type == 3:
                raise FormatError("the compressed plaintext is corrupt (reserved zstd block type)")
            self._skip = 1 if block_type == 1 else size  # RLE blocks carry one byte
            if last:
                self._state = "checksum" if self._checksum else "magic"
        else:  # checksum
            self._state = "magic"

    _header_rest = 0


class _LimitedSink:
    def __init__(self, sink: Sink, owner: Decompressor) -> None:
        self._sink = sink
        self._owner = owner

    def write(self, data: bytes) -> int:
        self._owner.account(len(data))
        self._sink(data)
        return len(data)


class Decompressor:
    """Streaming zstd decompressor that pushes output to ``sink`` in chunks of at most 1 MiB.

    :param max_output: refuse to produce more than this many bytes (None: no absolute limit).
    :param max_ratio: refuse output/input beyond this ratio once past 16 MiB of output (None: off).
    :raises PolicyError: a limit was exceeded (a decompression bomb, or a limit set too low).
    """

    def __init__(self, sink: Sink, *, max_output: int | None = None,
                 max_ratio: float | None = DEFAULT_MAX_COMPRESSION_RATIO) -> None:
        self.consumed = 0
        self.produced = 0
        self._max_output = max_output
        self._max_ratio = max_ratio
        self._frames = _FrameTracker()
        self._writer = zstandard.ZstdDecompressor().stream_writer(
            _LimitedSink(sink, self), write_size=_CHUNK, write_return_read=True)  # type: ignore[arg-type]

    def account(self, n: int) -> None:
        self.produced += n
        if self._max_output is not None and self.produced > self._max_output:
            raise PolicyError(f"decompressed output exceeds the limit of {self._max_output} bytes",
                              hint="raise max_decompressed_size if the data is trusted")
        if (self._max_ratio is not None and self.produced > _RATIO_GRACE
                and self.produced > self._max_ratio * max(self.consumed, 1)):
            raise PolicyError(f"decompression ratio exceeds {self._max_ratio}:1 (a decompression bomb?)",
                              hint="raise max_compression_ratio if the data is trusted")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not len(data):
            return
        self.consumed += len(data)
        # Both take any buffer, so the authenticated plaintext is not copied first.
        self._frames.feed(data)
        try:
            self._writer.write(data)
        except zstandard.ZstdError as exc:
            raise FormatError(f"the compressed plaintext is corrupt: {exc}") from None

    def finish(self) -> None:
        """Check the zstd stream ended cleanly."""
        try:
            self._writer.flush()  # type: ignore[no-untyped-call]
        except zstandard.ZstdError as exc:
            raise FormatError(f"the compressed plaintext is corrupt: {exc}") from None
        if not self._frames.complete:
            # The ciphertext was authentic, so the writer stopped mid-frame: refuse rather than
            # return a silently shortened plaintext.
            raise FormatError("the compressed plaintext ends in the middle of a zstd frame")

"""Optional zstd compression of the plaintext, signalled in the encryption context
(format-spec/message.md §8.2).

Compression runs before encryption and decompression after authentication, so the decompressor
only ever sees authenticated bytes. Peers without this extension decrypt to the zstd stream.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import FormatError, PolicyError
from ..format.context import ENVELOPE_PREFIX
from .failure import FailureLatch

if TYPE_CHECKING:
    import zstandard

# zstandard is imported by the classes and functions that use it, not here: `import envelope`
# (and any message without compression) never loads it (python -X importtime: 2-4 ms).

__all__ = [
    "COMPRESSION_KEY",
    "DEFAULT_MAX_COMPRESSION_RATIO",
    "DEFAULT_PIECE_SIZE",
    "Compressor",
    "Decompressor",
    "compression_of",
    "decompress_whole",
]

COMPRESSION_KEY = ENVELOPE_PREFIX + "compression"
_KNOWN_EXTENSIONS = frozenset({COMPRESSION_KEY})
# A bomb guard that legitimate data rarely reaches: once the output passes _RATIO_GRACE bytes,
# output/input may not exceed this ratio unless the caller raises it.
DEFAULT_MAX_COMPRESSION_RATIO = 1000
_RATIO_GRACE = 16 * 1024 * 1024
# Output pieces of the streaming decompressor. zstd decodes into a buffer of this size, copies it
# into a bytes object for the sink, and the sink copies it again: at 256 KiB these stay in a 2 MiB
# L2 cache beside zstd's window, at 1 MiB they do not. Stream decrypt of 64 MiB of JSON logs
# (bench/bench_compression.py input), zstd levels 1/3/9, MB per CPU-second, 1 MiB -> 256 KiB
# pieces: BytesIO to BytesIO 781/725/668 -> 837/747/758, file to file 877/795/798 -> 930/850/860
# (plain zstd copy_stream, 128 KiB pieces: 917/817/849 and 1041/968/991; the rest is AES-GCM).
# The async driver hands each piece to the event loop, so it may ask for bigger ones
# (`piece_size`): there 1 MiB pieces measured 2-5% faster than 256 KiB.
DEFAULT_PIECE_SIZE = 256 * 1024
_ZSTD_MAGIC = 0xFD2FB528
_MAX_WINDOW_LOG = 23  # 8 MiB windows (§8.2)
_MAX_BLOCK = 128 * 1024  # no zstd block decodes to more (RFC 8878 §3.1.1.2.4, Block_Maximum_Size)
# Frames a whole-stream decode lists (our writers make one; more go the streaming way).
_MAX_RECORDED = 64

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
    """zstd compressor for the plaintext side of an encryptor: streaming (`compress`, `flush`) or
    all at once (`compress_whole`), not both."""

    def __init__(self, level: int = 3) -> None:
        if isinstance(level, bool) or not isinstance(level, int):
            raise TypeError("compression_level must be an int")
        if not -7 <= level <= 22:
            raise ValueError("compression_level must be between -7 and 22")
        import zstandard  # deferred: see the module's imports

        params = zstandard.ZstdCompressionParameters.from_level(level)
        if params.window_log > _MAX_WINDOW_LOG:
            # §8.2: windows of at most 8 MiB, which every decoder supports; levels 20-22 would
            # use 32-128 MiB. The cap costs them little ratio (their other parameters stay).
            self._cctx = zstandard.ZstdCompressor(compression_params=zstandard.ZstdCompressionParameters.from_level(
                level, window_log=_MAX_WINDOW_LOG))
        else:
            self._cctx = zstandard.ZstdCompressor(level=level)
        self._obj: zstandard.ZstdCompressionObj | None = None  # made on first use: one-shots never need it

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        if self._obj is None:
            self._obj = self._cctx.compressobj()
        # zstandard reads any buffer: no copy (a bytes() copy cost ~20% of level-1 throughput).
        return self._obj.compress(data)

    def flush(self) -> bytes:
        if self._obj is None:
            self._obj = self._cctx.compressobj()
        return self._obj.flush()

    def compress_whole(self, data: bytes | bytearray | memoryview) -> bytes:
        """The whole zstd stream for ``data`` given at once: one frame whose header declares its
        content size, so `decompress_whole` can decode it into one buffer. zstd's one-shot call is
        15-18% faster than the streaming object (bench/bench_compression.py); a frame, no
        dictionary and the level's window, as §8.2 asks of writers."""
        if self._obj is not None:
            raise RuntimeError("envelope: internal error: compress_whole after streaming compress")
        return self._cctx.compress(data)


Frame = tuple[int, int, int, bool]  # (start, end, output size, whether the header declared it)


class _FrameTracker:
    """Walks zstd frame and block headers (RFC 8878 §3.1) without decompressing, to tell whether
    the stream ended on a frame boundary; python-zstandard's streaming APIs do not report that.

    With ``record``, it also lists each zstd frame (skippable frames left out) with its output
    size, for `decompress_whole`: the size the frame header declares, else the most its blocks
    can decode to (a raw or RLE block its stated size, a compressed block 128 KiB). ``frames``
    becomes None when a whole-stream decode must not rely on them: a declared size is
    attacker-chosen, so one beyond that bound is refused, as is a declared 0 (python-zstandard's
    one-shot `decompress` returns b"" for it without decoding the frame), and more than
    _MAX_RECORDED frames (the list would grow with the input) are not listed.
    """

    def __init__(self, record: bool = False) -> None:
        self._pending = bytearray()  # header bytes not yet complete
        self._skip = 0  # bytes of block content / skippable frame still to pass over
        self._state = "magic"
        self._checksum = False
        self.frames: list[Frame] | None = [] if record else None
        self._at = 0  # stream offset where the field being handled ends
        self._fed = 0  # stream offset of the current feed's first byte
        self._start = 0  # the current frame's start, its declared size and its block bound
        self._declared: int | None = None
        self._bound = 0
        self._fcs_size = 0

    @property
    def complete(self) -> bool:
        return self._state == "magic" and not self._pending and not self._skip

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        pos, end = 0, len(view)
        fed, self._fed = self._fed, self._fed + end
        while pos < end:
            if self._skip:
                n = min(self._skip, end - pos)
                self._skip -= n
                pos += n
                continue
            if self._state == "block" and not self._pending and end - pos >= 3:
                pos = self._blocks(view, pos, end, fed)
                continue
            need = self._needed()
            take = min(need - len(self._pending), end - pos)
            self._pending += view[pos:pos + take]
            pos += take
            if len(self._pending) < need:
                return
            self._at = fed + pos
            self._advance(bytes(self._pending))
            self._pending.clear()

    def _blocks(self, view: memoryview, pos: int, end: int, fed: int) -> int:
        """Walk the block headers (RFC 8878 §3.1.1.2) that lie whole in ``view[pos:end]``, as
        `_advance` does one at a time; return where the walk stopped. A run of tiny blocks (an
        authentic writer may send empty ones) costs 0.2 us each here, 0.6 us through `_advance`."""
        bound = 0
        while end - pos >= 3:
            header = view[pos] | view[pos + 1] << 8 | view[pos + 2] << 16
            block_type = header >> 1 & 3
            if block_type == 3:
                raise FormatError("the compressed plaintext is corrupt (reserved zstd block type)")
            pos += 4 if block_type == 1 else 3 + (header >> 3)  # RLE blocks carry one byte
            bound += _MAX_BLOCK if block_type == 2 else header >> 3
            if header & 1:  # the last block
                self._bound += bound
                self._last_block(fed + pos)
                break
        else:
            self._bound += bound
        if pos > end:  # the walk stopped inside a block's content
            self._skip = pos - end
            return end
        return pos

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
            if magic == _ZSTD_MAGIC:
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
            self._start, self._declared, self._bound, self._fcs_size = self._at - 5, None, 0, fcs_size
        elif self._state == "frame_header":
            if self._fcs_size:  # the frame content size ends the header (§3.1.1.1.4)
                declared = int.from_bytes(field[-self._fcs_size:], "little")
                self._declared = declared + 256 if self._fcs_size == 2 else declared
            self._state = "block"
        elif self._state == "block":
            header = int.from_bytes(field, "little")
            last, block_type, size = header & 1, header >> 1 & 3, header >> 3
            if block_type == 3:
                raise FormatError("the compressed plaintext is corrupt (reserved zstd block type)")
            self._skip = 1 if block_type == 1 else size  # RLE blocks carry one byte
            self._bound += _MAX_BLOCK if block_type == 2 else size
            if last:
                self._last_block(self._at + self._skip)
        else:  # checksum
            self._state = "magic"
            self._record(self._at)

    _header_rest = 0

    def _last_block(self, end: int) -> None:
        """The current frame's last block header is read; its content ends at ``end``."""
        if self._checksum:
            self._state = "checksum"
        else:
            self._state = "magic"
            self._record(end)

    def _record(self, end: int) -> None:
        frames = self.frames
        if frames is None:
            return
        declared = self._declared
        if declared == 0 or (declared is not None and declared > self._bound) or len(frames) >= _MAX_RECORDED:
            self.frames = None
            return
        frames.append((self._start, end, self._bound if declared is None else declared, declared is not None))


class _Pieces:
    """The zstd stream writer's sink: hands each piece to its `Decompressor`.

    It holds the decompressor only weakly. The writer is a C object the cycle collector cannot
    see into, so a strong reference back (writer -> sink -> decompressor -> writer) made a cycle
    that was never freed: every compressed stream leaked its decompressor, zstd's window and
    the caller's sink with everything written to it (issue 12).
    """

    __slots__ = ("__weakref__", "_owner")

    def __init__(self, owner: Decompressor) -> None:
        self._owner = weakref.ref(owner)

    def write(self, data: bytes) -> int:
        owner = self._owner()
        if owner is not None:  # (gone only while the writer itself is being freed)
            owner.deliver(data)
        return len(data)


class Decompressor:
    """Streaming zstd decompressor that pushes output to ``sink`` in pieces of at most
    ``piece_size`` bytes.

    Each piece is counted against the limits before ``sink`` sees it, so the sink never receives
    a byte beyond a bound, and at most one piece is held beyond it. `finish`, or the first
    error, releases zstd's state and ``sink``; after an error every call raises it again.

    :param max_output: refuse to produce more than this many bytes (None: no absolute limit).
    :param max_ratio: refuse output/input beyond this ratio once past 16 MiB of output (None: off).
    :param piece_size: the largest piece handed to ``sink``.
    :raises PolicyError: a limit was exceeded (a decompression bomb, or a limit set too low).
    """

    def __init__(self, sink: Sink, *, max_output: int | None = None,
                 max_ratio: float | None = DEFAULT_MAX_COMPRESSION_RATIO,
                 piece_size: int = DEFAULT_PIECE_SIZE) -> None:
        if piece_size < 1:
            raise ValueError("piece_size must be positive")
        self.consumed = 0
        self.produced = 0
        self._max_output = max_output
        self._max_ratio = max_ratio
        self._frames = _FrameTracker()
        self._sink: Sink | None = sink
        self._failure = FailureLatch()
        import zstandard  # deferred: see the module's imports

        self._corrupt: type[Exception] = zstandard.ZstdError
        self._writer: Any = zstandard.ZstdDecompressor().stream_writer(
            _Pieces(self), write_size=piece_size, write_return_read=True)  # type: ignore[arg-type]

    def deliver(self, data: bytes) -> None:
        """Count a piece of output against the limits, then pass it to the sink."""
        self.produced += len(data)
        error = _limit_error(self.produced, self.consumed, self._max_output, self._max_ratio)
        if error is not None:
            raise error
        if self._sink is None:  # pragma: no cover - the writer is dropped together with the sink
            raise RuntimeError("envelope: internal error: decompressed output after the end")
        self._sink(data)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._failure.check()
        if not len(data):
            return
        writer = self._writer
        if writer is None:
            raise ValueError("write after the decompressor finished")
        self.consumed += len(data)
        try:
            # Both take any buffer, so the authenticated plaintext is not copied first.
            self._frames.feed(data)
            try:
                writer.write(data)
            except self._corrupt as exc:
                raise FormatError(f"the compressed plaintext is corrupt: {exc}") from None
        except BaseException as exc:
            self._fail(exc)
            raise

    def finish(self) -> None:
        """Check the zstd stream ended cleanly; release zstd's state and the sink either way."""
        self._failure.check()
        writer = self._writer
        if writer is None:
            return
        try:
            try:
                writer.flush()
            except self._corrupt as exc:
                raise FormatError(f"the compressed plaintext is corrupt: {exc}") from None
            if not self._frames.complete:
                # The ciphertext was authentic, so the writer stopped mid-frame: refuse rather than
                # return a silently shortened plaintext.
                raise FormatError("the compressed plaintext ends in the middle of a zstd frame")
        except BaseException as exc:
            self._fail(exc)
            raise
        self._release()

    def _fail(self, error: BaseException) -> None:
        self._failure.trip(error)
        self._release()

    def _release(self) -> None:
        # zstd's window (up to 8 MiB, §8.2) and the caller's sink go now, not when the last
        # reference to this object does.
        self._writer = None
        self._sink = None


def _limit_error(produced: int, consumed: int, max_output: int | None,
                 max_ratio: float | None) -> PolicyError | None:
    """The error for ``produced`` output bytes from ``consumed`` input bytes, or None within the
    bounds (§8.2). Both checks only grow with ``produced``: a total within them was within them
    all the way."""
    if max_output is not None and produced > max_output:
        return PolicyError(f"decompressed output exceeds the limit of {max_output} bytes",
                           hint="raise max_decompressed_size if the data is trusted")
    if max_ratio is not None and produced > _RATIO_GRACE and produced > max_ratio * max(consumed, 1):
        return PolicyError(f"decompression ratio exceeds {max_ratio}:1 (a decompression bomb?)",
                           hint="raise max_compression_ratio if the data is trusted")
    return None


def _decode_frames(data: bytes, view: memoryview, frames: list[Frame]) -> bytes | None:
    """Each frame decoded by zstd's one-shot call into a buffer of its output size; None if zstd
    refuses any of them (the caller then takes the streaming path and its error)."""
    import zstandard  # deferred: see the module's imports

    dctx = zstandard.ZstdDecompressor()  # per call: a decompressor is not safe to share across threads
    parts: list[bytes] = []
    try:
        for start, stop, size, declared in frames:
            frame = data if start == 0 and stop == len(data) else view[start:stop]
            # allow_extra_data=False: the frame must be exactly start..stop. With a declared size
            # zstd fails unless the output is exactly that size; without, max_output_size caps it.
            part = dctx.decompress(frame, max_output_size=0 if declared else size, allow_extra_data=False)
            if len(part) > size or (declared and len(part) != size):  # pragma: no cover (zstd checks)
                return None
            parts.append(part)
    except (zstandard.ZstdError, MemoryError):
        # MemoryError: with every limit off, a size the blocks allow can still be more than this
        # process can allocate at once; the streaming path needs only what the output really is.
        return None
    return parts[0] if len(parts) == 1 else b"".join(parts)


def decompress_whole(data: bytes, *, max_output: int | None = None,
                     max_ratio: float | None = DEFAULT_MAX_COMPRESSION_RATIO) -> bytes:
    """The decompressed bytes of a whole zstd stream (an authenticated plaintext, §8.2), with the
    same result and errors as feeding it to a `Decompressor` at once.

    The fast path decodes each frame with zstd's one-shot call into a buffer sized from the
    stream's own headers; it applies only when those sizes already fit the limits, so it never
    allocates beyond them. Anything else (no usable size, a limit exceeded, a stream zstd
    refuses) takes the streaming path, which raises today's errors.

    :raises PolicyError: a limit was exceeded.
    :raises FormatError: the bytes are not a complete, valid zstd stream.
    """
    view = memoryview(data)
    tracker = _FrameTracker(record=True)
    tracker.feed(view)  # a stream that is not zstd fails here, as in the streaming path
    frames = tracker.frames if tracker.complete else None
    if frames is not None and _limit_error(sum(f[2] for f in frames), len(data), max_output, max_ratio) is None:
        whole = _decode_frames(data, view, frames)
        if whole is not None:
            return whole
    parts: list[bytes] = []
    decompressor = Decompressor(parts.append, max_output=max_output, max_ratio=max_ratio)
    decompressor.write(data)
    decompressor.finish()
    return b"".join(parts)

"""Random-access decryption of framed messages (format-spec/operations.md §1).

Parsing the header and authenticating it stay the decryptor's; this module finds where the
message ends and which frames a plaintext range touches, and opens just those. It is sans-IO:
`open_message` and `read_range` are generators that yield the byte spans (`Read`) and the
materials call (`NeedMaterials`) they need; `run_flow` below and `envelope.aio` drive them.

Every plaintext byte returned is authenticated by its own frame: tag, sequence number and IV
and, for the final frame, the final-frame marker. Where the message ends is read from the final
frame's fields and checked against the message size; the final frame itself is opened only when
a range reaches it, which is also the only time that end decides what is returned.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ..crypto.aead import AEAD
from ..errors import AuthenticationError, PolicyError
from ..format.body import (
    FINAL_FRAME_MARKER,
    FINAL_FRAME_OVERHEAD,
    FRAME_OVERHEAD,
    MAX_FRAMES,
    BodyKind,
    body_aad,
    frame_iv,
)
from ..format.header import DEFAULT_MAX_HEADER_LENGTH, Header
from ..format.suites import CommitmentPolicy
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from ..materials.materials import DecryptionMaterials, DecryptionRequest
from .buffers import Scratch
from .compression import compression_of
from .decryptor import MessageDecryptor
from .limits import RANGE_BATCH_BYTES, SCRATCH_KEEP_BYTES, whole_units
from .session import new_decryptor, resolve_materials_manager

__all__ = [
    "Flow",
    "MessageIndex",
    "NeedMaterials",
    "PositionalSource",
    "Read",
    "FrameWindow",
    "check_eligible",
    "check_range",
    "final_fields_fit",
    "frame_layout",
    "decrypt_range",
    "open_message",
    "positional",
    "read_header",
    "read_once",
    "read_range",
    "run_flow",
]

T = TypeVar("T")
# Buffers that ranged reads read frames into and open them into, kept between calls (buffers.Scratch).
SCRATCH = Scratch(SCRATCH_KEEP_BYTES)
# The longest footer: a 2-byte length and a DER ECDSA P-384 signature of at most 104 bytes (§6).
_MAX_FOOTER = 2 + 104
_MARKER_AND_SEQUENCE = struct.Struct(">4sI")
_U32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Read:
    """The driver reads ``size`` bytes at ``offset`` from the message's start (fewer only at its end).

    With ``into`` (a buffer of at least ``size`` bytes, lent by the flow), a driver that can may
    read into it and send back a view of the bytes read: the flow then faults in no fresh pages
    (see buffers.Scratch). A driver may also ignore it and send back other bytes.
    """

    offset: int
    size: int
    into: memoryview | None = None


@dataclass(frozen=True, slots=True)
class NeedMaterials:
    """The driver asks its materials manager for decryption materials for ``request``."""

    request: DecryptionRequest


Step = Read | NeedMaterials
Flow = Generator[Step, Any, T]


@dataclass(slots=True)
class MessageIndex:
    """Where an authenticated message's frames lie (format-spec/operations.md §1.2)."""

    header: Header
    aead: AEAD
    header_length: int
    frame_count: int  # regular frames, before the final frame
    final_length: int  # the final frame's plaintext length, as its fields state it
    _final: bytes | None = field(default=None, repr=False)  # the final frame's plaintext, once opened

    @property
    def frame_length(self) -> int:
        return self.header.frame_length

    @property
    def plaintext_length(self) -> int:
        return self.frame_count * self.header.frame_length + self.final_length

    def frame_offset(self, index: int) -> int:
        """Where frame ``index`` (0-based) starts in the message."""
        return self.header_length + index * (self.header.frame_length + FRAME_OVERHEAD)


def check_range(offset: int, length: int) -> None:
    """Refuse what a file object's seek and read would refuse (before any key is asked for).

    :raises TypeError, ValueError: not ints, or negative.
    """
    for name, value in (("offset", offset), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int")
        if value < 0:
            raise ValueError(f"{name} must not be negative")


def open_message(decryptor: MessageDecryptor, message_size: int, *,
                 allow_unverified_signature: bool = False) -> Flow[MessageIndex]:
    """Read and authenticate the header (unless ``decryptor`` already did), then locate the end.

    Reads exactly the header's bytes, then the final frame's fields (and, for a signed message,
    the footer's possible lengths): nothing of the body a range does not touch.

    :raises PolicyError: a non-framed, compressed, or (without the opt-in) signed message.
    :raises AuthenticationError: the header does not authenticate, or no final frame ends the
        message where its size says it ends (truncation or trailing data).
    """
    header_length = yield from read_header(decryptor)
    header = decryptor.header
    if header is None:  # pragma: no cover - read_header returns only once it is parsed
        raise RuntimeError("envelope: internal error: no header after reading it")
    check_eligible(header, allow_unverified_signature)
    if decryptor.needs_materials:
        request = decryptor.request
        if request is None:  # pragma: no cover
            raise RuntimeError("envelope: internal error: no materials request after the header")
        materials: DecryptionMaterials = yield NeedMaterials(request)
        decryptor.supply_materials(materials)
    aead = decryptor.message_aead
    if header.algorithm.is_signing:
        ends = yield from _footer_starts(header_length, message_size)
    else:
        ends = [message_size]
    frame_length = header.frame_length
    for end in ends:
        located = frame_layout(end - header_length, frame_length)
        if located is None:
            continue
        count, final_length = located
        index = MessageIndex(header, aead, header_length, count, final_length)
        fields = yield Read(index.frame_offset(count), 24)
        if final_fields_fit(fields, count + 1, final_length):
            return index
    raise AuthenticationError("message is truncated or has trailing data: no final frame ends it")


def read_header(decryptor: MessageDecryptor) -> Flow[int]:
    """Feed ``decryptor`` the header, exactly: each read sized by the length fields before it
    (format-spec/operations.md §1.1), none past the header's end. Parses; does not authenticate.

    Resumable: a decryptor fed part of the header (a driver cancelled between reads) is read
    on from where it stopped. Returns the header's length.

    :raises AuthenticationError: the message ends inside the header.
    """
    consumed = decryptor.pending_bytes  # the header bytes fed so far, buffered until it parses
    while decryptor.header is None:
        need = decryptor.header_needed
        data = yield Read(consumed, need)
        if len(data) < need:
            raise AuthenticationError("message is truncated in the header")
        consumed += need
        decryptor.update(data)
    length = decryptor.header_length
    if length is None:  # pragma: no cover
        raise RuntimeError("envelope: internal error: header length unknown after the header")
    return length


def check_eligible(header: Header, allow_unverified_signature: bool) -> None:
    if not header.is_framed:
        raise PolicyError("ranged decryption needs a framed message; this one has a single non-framed body",
                          hint="decrypt it whole with envelope.decrypt")
    if compression_of(header.encryption_context) is not None:
        raise PolicyError("ranged decryption cannot map plaintext offsets into a compressed message",
                          hint="decrypt it whole, or encrypt without compression for random access")
    if header.algorithm.is_signing and not allow_unverified_signature:
        raise PolicyError(f"the message is signed ({header.algorithm.name}) and a range cannot prove its signature",
                          hint="pass allow_unverified_signature=True to read it with frame tags alone")


def _footer_starts(header_length: int, message_size: int) -> Flow[list[int]]:
    """Where the footer may start: each tail position whose 2-byte length fits what follows (§6)."""
    n = min(max(message_size - header_length, 0), _MAX_FOOTER)
    tail = yield Read(message_size - n, n)
    return [message_size - 2 - s for s in range(n - 1)
            if int.from_bytes(tail[n - 2 - s:n - s], "big") == s]


def frame_layout(body_length: int, frame_length: int) -> tuple[int, int] | None:
    """(regular frames, final frame length) for a body of this size, or None if none fits.

    Unique: a final frame is 40..frame_length+40 bytes and a regular one frame_length+32, so
    the remainder after whole regular frames names the final frame (format-spec/operations.md §1.2).
    """
    if body_length < FINAL_FRAME_OVERHEAD:
        return None
    count, final_length = divmod(body_length - FINAL_FRAME_OVERHEAD, frame_length + FRAME_OVERHEAD)
    if final_length > frame_length or count + 1 > MAX_FRAMES:
        return None
    return count, final_length


def final_fields_fit(fields: bytes | memoryview, sequence: int, final_length: int) -> bool:
    """Whether ``fields`` are a final frame's marker, sequence number, IV and length (§5.4)."""
    if len(fields) < 24:
        return False
    marker, found_sequence = _MARKER_AND_SEQUENCE.unpack_from(fields)
    return (marker == FINAL_FRAME_MARKER and found_sequence == sequence
            and _U32.unpack_from(fields, 20)[0] == final_length and bytes(fields[8:20]) == frame_iv(sequence))


def read_range(index: MessageIndex, offset: int, length: int) -> Flow[bytes]:
    """The authenticated plaintext of [offset, offset+length), clipped at the message's end as a
    file's read is (an offset at or past the end gives b"").

    :raises AuthenticationError: a frame the range touches is tampered, reordered or missing.
    """
    check_range(offset, length)
    end = min(offset + length, index.plaintext_length)
    if offset >= end:
        return b""
    frame_length = index.frame_length
    size = frame_length + FRAME_OVERHEAD
    frame = offset // frame_length
    last = (end - 1) // frame_length
    regular = max(min(last, index.frame_count - 1) - frame + 1, 0)  # regular frames the range touches
    per_read = min(whole_units(size, RANGE_BATCH_BYTES), regular)
    # The frames are read into and opened into reused buffers; the plaintext is copied out once,
    # into the bytes returned (format-spec/operations.md §1.3). Sized by frames that exist: the
    # message's size vouches for them, never the header's frame length alone (message.md §9).
    ciphertext, plaintext = SCRATCH.take(per_read * size), SCRATCH.take(per_read * frame_length)
    pieces: list[bytes | memoryview] = []
    try:
        while frame <= last:
            if frame == index.frame_count:
                final = yield from _final_plaintext(index)
                start = frame * frame_length
                pieces.append(memoryview(final)[max(offset - start, 0):end - start])
                break
            count = min(min(last, index.frame_count - 1) - frame + 1, per_read)
            data = yield Read(index.frame_offset(frame), count * size, memoryview(ciphertext))
            opened = _open_frames(index, frame, count, memoryview(data), offset, end, memoryview(plaintext))
            frame += count
            if frame <= last:  # the buffers are read into again: keep this batch's plaintext
                opened = [bytes(piece) for piece in opened]
            pieces += opened
        if len(pieces) == 1:
            return pieces[0] if isinstance(pieces[0], bytes) else bytes(pieces[0])
        return b"".join(pieces)
    finally:
        SCRATCH.give(ciphertext)
        SCRATCH.give(plaintext)


def _open_frames(index: MessageIndex, first: int, count: int, data: memoryview, offset: int,
                 end: int, out: memoryview) -> list[bytes | memoryview]:
    """Open ``count`` regular frames starting at 0-based ``first`` from ``data`` into ``out``;
    return views of the part of each inside [offset, end)."""
    frame_length = index.frame_length
    size = frame_length + FRAME_OVERHEAD
    if len(data) < count * size:
        raise AuthenticationError("message is truncated in the body")
    message_id = index.header.message_id
    pieces: list[bytes | memoryview] = []
    for i in range(count):
        sequence = first + i + 1
        element = data[i * size:(i + 1) * size]
        if _U32.unpack_from(element)[0] != sequence:
            raise AuthenticationError(f"frame {sequence} is missing or out of order")
        iv = frame_iv(sequence)
        if element[4:16] != iv:
            raise AuthenticationError(f"frame {sequence} has an unexpected IV")
        aad = body_aad(message_id, BodyKind.FRAME, sequence, frame_length)
        start = (sequence - 1) * frame_length
        if count == 1 and offset == start and end == start + frame_length:
            # Exactly one whole frame (a seekable Decryptor reads so): its plaintext is the result.
            return [index.aead.open(iv, element[16:], aad, f"frame {sequence}")]
        plaintext = out[i * frame_length:(i + 1) * frame_length]
        index.aead.open_into(iv, element[16:], aad, plaintext, f"frame {sequence}")
        pieces.append(plaintext[max(offset - start, 0):min(end - start, frame_length)])
    return pieces


def _final_plaintext(index: MessageIndex) -> Flow[bytes]:
    if index._final is None:
        sequence = index.frame_count + 1
        length = index.final_length
        data = yield Read(index.frame_offset(index.frame_count), FINAL_FRAME_OVERHEAD + length)
        if len(data) < FINAL_FRAME_OVERHEAD + length or not final_fields_fit(data[:24], sequence, length):
            raise AuthenticationError("message is truncated in its final frame")
        aad = body_aad(index.header.message_id, BodyKind.FINAL_FRAME, sequence, length)
        index._final = index.aead.open(frame_iv(sequence), memoryview(data)[24:], aad, f"final frame {sequence}")
    return index._final


# -- the sync driver ------------------------------------------------------------------------------


class PositionalSource(Protocol):
    """What the drivers read from: a size, and exact reads at an offset from the message start."""

    @property
    def size(self) -> int: ...

    def read_at(self, offset: int, size: int) -> bytes | memoryview: ...


@dataclass(frozen=True, slots=True)
class _BytesSource:
    view: memoryview
    size: int

    def read_at(self, offset: int, size: int) -> memoryview:
        return self.view[offset:offset + size]


@dataclass(frozen=True, slots=True)
class _FileSource:
    file: Any
    start: int  # where the message starts in the file
    size: int

    def read_at(self, offset: int, size: int) -> memoryview:
        # ``size`` is never more than the message holds (a header field, or a frame that
        # frame_layout placed inside the message's size), so the buffer follows the file.
        return self.read_into(offset, memoryview(bytearray(size)))

    def read_into(self, offset: int, out: memoryview) -> memoryview:
        """Read up to len(out) bytes at ``offset`` into ``out`` (fewer only at the end); return
        the view of what was read."""
        try:
            fd = self.file.fileno()
        except (AttributeError, OSError):
            fd = None  # a file-like object without a descriptor (BytesIO, a wrapper)
        got = 0
        while got < len(out):
            if fd is not None:
                n = os.preadv(fd, [out[got:]], self.start + offset + got)  # no seek
            else:
                self.file.seek(self.start + offset + got)
                n = read_once(self.file, out[got:])
            if not n:
                break
            got += n
        return out[:got]


def read_once(file: Any, out: memoryview) -> int:
    """One read from a binary file into ``out`` (``readinto``, else ``read``); 0 at its end."""
    readinto = getattr(file, "readinto", None)
    if readinto is not None:
        return int(readinto(out) or 0)
    data = file.read(len(out))
    if isinstance(data, str):
        raise TypeError("source must be opened in binary mode")
    out[:len(data)] = data
    return len(data)


def positional(source: object, *, start: int | None = None) -> PositionalSource:
    """The message in ``source`` as a positional source: bytes-like, or a seekable binary file
    whose message starts at ``start`` (default: its current position).

    :raises TypeError: ``source`` is neither.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source).cast("B")
        return _BytesSource(view, len(view))
    seekable = getattr(source, "seekable", None)
    if callable(seekable) and seekable() and hasattr(source, "read"):
        if start is None:
            start = int(source.tell())  # type: ignore[attr-defined]
        size = source.seek(0, os.SEEK_END) - start  # type: ignore[attr-defined]
        return _FileSource(source, start, max(size, 0))
    raise TypeError("ranged decryption needs bytes or a seekable binary file (with seek and read)")


def run_flow(flow: Flow[T], source: PositionalSource, get_materials: Callable[[DecryptionRequest], DecryptionMaterials]
             ) -> T:
    """Drive a flow synchronously: reads from ``source``, materials from ``get_materials``."""
    try:
        step = next(flow)
        while True:
            if isinstance(step, Read):
                read_into = getattr(source, "read_into", None)
                if step.into is not None and read_into is not None:
                    step = flow.send(read_into(step.offset, step.into[:step.size]))
                else:
                    step = flow.send(source.read_at(step.offset, step.size))
            else:
                step = flow.send(get_materials(step.request))
    except StopIteration as done:
        result: T = done.value
        return result



def decrypt_range(source: object, offset: int, length: int, *, keyring: Keyring | None = None,
                  materials_manager: MaterialsManager | None = None,
                  encryption_context: Mapping[str, str] | None = None,
                  commitment_policy: CommitmentPolicy | str | None = None,
                  max_encrypted_data_keys: int | None = None,
                  max_header_length: int = DEFAULT_MAX_HEADER_LENGTH,
                  allow_unverified_signature: bool = False) -> bytes:
    """Decrypt the plaintext bytes [offset, offset+length) of a framed message, reading only the
    header, the frames that range touches and the final frame's fields (format-spec/operations.md §1).

    Every byte returned is authenticated by its frame's tag, sequence number and IV; a range that
    reaches the end also authenticates the final frame. As with a file's ``read``, a range past the
    end is clipped, and an offset at or past the end returns b"".

    Signed messages: a slice cannot prove the signature, which covers the whole message. They are
    refused unless ``allow_unverified_signature=True``; then the bytes returned are authentic to a
    holder of the data key (any recipient), but the signature that would prove who wrote them is
    NOT checked.

    :param source: the message: bytes-like, a path, or a seekable binary file positioned at its start.
    :raises PolicyError: a non-framed or compressed message, or a signed one without the opt-in.
    :raises AuthenticationError: the header or a frame the range touches is tampered or missing.
    :raises TypeError, ValueError: a negative or non-int offset or length, or an unreadable source.
    """
    check_range(offset, length)
    manager = resolve_materials_manager(keyring, materials_manager)
    decryptor, _ = new_decryptor(encryption_context=encryption_context, commitment_policy=commitment_policy,
                                 max_encrypted_data_keys=max_encrypted_data_keys, max_header_length=max_header_length)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as file:
            return _decrypt_range(decryptor, positional(file), manager, offset, length, allow_unverified_signature)
    return _decrypt_range(decryptor, positional(source), manager, offset, length, allow_unverified_signature)


def _decrypt_range(decryptor: MessageDecryptor, source: PositionalSource, manager: MaterialsManager, offset: int,
                   length: int, allow_unverified_signature: bool) -> bytes:
    index = run_flow(open_message(decryptor, source.size, allow_unverified_signature=allow_unverified_signature),
                     source, manager.decrypt_materials)
    return run_flow(read_range(index, offset, length), source, manager.decrypt_materials)


class FrameWindow:
    """Sequential reads at any position of a ranged message, one opened frame at a time: what a
    seekable `Decryptor` reads through after its first `seek`."""

    def __init__(self, index: MessageIndex, source: PositionalSource,
                 get_materials: Callable[[DecryptionRequest], DecryptionMaterials]) -> None:
        self.index = index
        self._source = source
        self._get_materials = get_materials
        self._frame = -1
        self._plaintext = b""

    def read_into(self, position: int, out: memoryview) -> int:
        """Fill ``out`` with plaintext from ``position`` (less only at the end); return the count."""
        frame_length = self.index.frame_length
        written = 0
        while written < len(out) and position + written < self.index.plaintext_length:
            here = position + written
            frame = here // frame_length
            if frame != self._frame:
                self._plaintext = run_flow(read_range(self.index, frame * frame_length, frame_length),
                                           self._source, self._get_materials)
                self._frame = frame
            start = here - frame * frame_length
            n = min(len(out) - written, len(self._plaintext) - start)
            out[written:written + n] = self._plaintext[start:start + n]
            written += n
        return written

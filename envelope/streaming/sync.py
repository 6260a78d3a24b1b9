"""The synchronous driver: runs the sans-IO core over file-like objects and iterables.

Plaintext reaches the sink only after its frame verified (signed messages: the final frame after
the signature). A decrypt that fails part-way may already have written earlier, authenticated
frames; write to a temporary file and rename on success if the output must be all-or-nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, Protocol

from ..format.header import Header
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from .decryptor import MessageDecryptor
from .encryptor import MessageEncryptor
from .session import new_decryptor, new_encryptor, resolve_materials_manager, supply

__all__ = ["Decryptor", "Encryptor", "decrypt_stream", "encrypt_stream"]

Buffer = bytes | bytearray | memoryview
_READ_SIZE = 1024 * 1024


class _Writable(Protocol):
    def write(self, data: Any, /) -> Any: ...


Source = IO[bytes] | Iterable[Buffer]


def _fill(source: Any, buf: bytearray | memoryview) -> int:
    """Read until ``buf`` is full or the source ends (pipes return short reads)."""
    view = memoryview(buf)
    total = 0
    readinto = getattr(source, "readinto", None)
    while total < len(view):
        if readinto is not None:
            n = readinto(view[total:])
        else:
            chunk = source.read(len(view) - total)
            n = len(chunk) if chunk else 0
            view[total:total + n] = chunk
        if not n:
            break
        total += n
    return total


def _chunks(source: Any, size: int) -> Iterator[Buffer]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise TypeError("source must be a binary file-like object or an iterable of bytes; "
                        "for bytes use envelope.encrypt/decrypt or io.BytesIO")
    if hasattr(source, "read"):
        while True:
            chunk = source.read(size)
            if not chunk:
                return
            if isinstance(chunk, str):
                raise TypeError("source must be opened in binary mode")
            yield chunk
    else:
        for chunk in source:
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise TypeError(f"source yielded {type(chunk).__name__}, not bytes")
            yield chunk


def _pump_encrypt(encryptor: MessageEncryptor, source: Any, sink: _Writable) -> None:
    sink.write(encryptor.take_header())
    n = encryptor.frame_length
    if n and hasattr(source, "readinto") and n <= 64 * 1024 * 1024:
        _pump_encrypt_frames(encryptor, source, sink)
        return
    out = bytearray()
    for chunk in _chunks(source, max(n, _READ_SIZE)):
        bound = encryptor.output_bound(len(chunk))
        if len(out) < bound:
            out = bytearray(bound)
        written = encryptor.update_into(chunk, out)
        if written:
            sink.write(memoryview(out)[:written])
    sink.write(encryptor.finalize())


def _pump_encrypt_frames(encryptor: MessageEncryptor, source: Any, sink: _Writable) -> None:
    """Zero-copy path: whole frames read into reused buffers and sealed into a reused buffer."""
    n = encryptor.frame_length
    buffers = (bytearray(n), bytearray(n))
    out = bytearray(n + 64 + encryptor.footer_size)
    out_view = memoryview(out)
    current = 0
    filled = _fill(source, buffers[0])
    while True:
        if filled == n:
            following = _fill(source, buffers[1 - current])
            if following:
                size = encryptor.seal_frame_into(buffers[current], out_view)
                sink.write(out_view[:size])
                current, filled = 1 - current, following
                continue
        size = encryptor.seal_final_into(memoryview(buffers[current])[:filled], out_view)
        sink.write(out_view[:size])
        return


def encrypt_stream(source: Source, sink: _Writable, *, keyring: Keyring | None = None,
                   materials_manager: MaterialsManager | None = None, **options: Any) -> Header:
    """Encrypt everything ``source`` yields into one message written to ``sink``.

    :param source: a binary file-like object (``readinto`` or ``read``) or an iterable of bytes.
    :param sink: anything with ``write(bytes)``; it is not closed.
    :param options: ``encryption_context``, ``algorithm``, ``frame_length``,
        ``commitment_policy``, ``max_encrypted_data_keys`` as for `envelope.encrypt`.
    :returns: the message header.
    """
    encryptor = new_encryptor(keyring=keyring, materials_manager=materials_manager, **options)
    _pump_encrypt(encryptor, source, sink)
    return encryptor.header


def _pump_decrypt(decryptor: MessageDecryptor, manager: MaterialsManager, source: Any, sink: _Writable) -> Header:
    header: Header | None = None
    readinto = getattr(source, "readinto", None)
    buf = bytearray(0)
    out = bytearray(0)
    chunks = None if readinto is not None else _chunks(source, _READ_SIZE)
    while True:
        if chunks is None:
            want = decryptor.size_hint()
            if len(buf) < want:
                buf = bytearray(want)
            got = _fill(source, memoryview(buf)[:want])
            if not got:
                break
            chunk: Buffer = memoryview(buf)[:got]
        else:
            next_chunk = next(chunks, None)
            if next_chunk is None:
                break
            chunk = next_chunk
        bound = decryptor.output_bound(len(chunk))
        if len(out) < bound:
            out = bytearray(bound)
        written = decryptor.update_into(chunk, out)
        if decryptor.needs_materials:
            header = supply(decryptor, manager)
            written += decryptor.update_into(b"", memoryview(out)[written:])
        if written:
            sink.write(memoryview(out)[:written])
    decryptor.finalize()
    if header is None:  # pragma: no cover - finalize raised for a message without a header
        raise RuntimeError("envelope: internal error: finished without a header")
    return header


def decrypt_stream(source: Source, sink: _Writable, *, keyring: Keyring | None = None,
                   materials_manager: MaterialsManager | None = None,
                   encryption_context: Mapping[str, str] | None = None, **options: Any) -> Header:
    """Decrypt one message from ``source``, writing authenticated plaintext to ``sink``.

    Each frame's plaintext is written only after its tag verifies; for signed suites the final
    frame is written only after the signature verifies. If an error is raised, frames written
    before it were authentic but the message is incomplete: discard the output.

    :param options: ``commitment_policy``, ``max_encrypted_data_keys``, ``allow_signed``.
    :returns: the authenticated header.
    :raises AuthenticationError: tampering, truncation or trailing data.
    """
    manager = resolve_materials_manager(keyring, materials_manager)
    decryptor = new_decryptor(encryption_context=encryption_context, **options)
    return _pump_decrypt(decryptor, manager, source, sink)


class Encryptor(io.RawIOBase):
    """A writable file object that encrypts what is written to it into ``sink``.

    Call `close` (or leave the ``with`` block normally): only then are the final frame and
    signature written. If the ``with`` block raises, the message is left unfinished on purpose,
    so that a partial message can never decrypt as if it were complete.
    """

    def __init__(self, sink: _Writable, *, keyring: Keyring | None = None,
                 materials_manager: MaterialsManager | None = None, **options: Any) -> None:
        super().__init__()
        self._sink = sink
        self._core = new_encryptor(keyring=keyring, materials_manager=materials_manager, **options)
        self._out = bytearray()
        self._aborted = False

    @property
    def header(self) -> Header:
        return self._core.header

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed Encryptor")
        view = memoryview(data).cast("B")
        bound = self._core.output_bound(len(view))
        if len(self._out) < bound:
            self._out = bytearray(bound)
        n = self._core.update_into(view, self._out)
        if n:
            self._sink.write(memoryview(self._out)[:n])
        return len(view)

    def close(self) -> None:
        if not self.closed:
            try:
                if not self._aborted:
                    self._sink.write(self._core.finalize())
            finally:
                super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._aborted = True
        self.close()


class Decryptor(io.RawIOBase):
    """A readable file object yielding the authenticated plaintext of the message in ``source``.

    `read` returns plaintext only after it is authenticated; it raises AuthenticationError on
    tampering or truncation, at the latest when the end of the message is reached.
    """

    def __init__(self, source: Source, *, keyring: Keyring | None = None,
                 materials_manager: MaterialsManager | None = None,
                 encryption_context: Mapping[str, str] | None = None, **options: Any) -> None:
        super().__init__()
        self._manager = resolve_materials_manager(keyring, materials_manager)
        self._core = new_decryptor(encryption_context=encryption_context, **options)
        self._chunks = _chunks(source, _READ_SIZE)
        self._ready = bytearray()
        self._eof = False
        self._header: Header | None = None

    @property
    def header(self) -> Header:
        """The authenticated header (reads the start of the message if needed)."""
        while self._header is None and not self._eof:
            self._advance()
        if self._header is None:
            raise RuntimeError("envelope: internal error: no header after the end of input")
        return self._header

    def readable(self) -> bool:
        return True

    def _advance(self) -> None:
        chunk = next(self._chunks, None)
        if chunk is None:
            self._core.finalize()
            self._eof = True
            return
        self._ready += self._core.update(chunk)
        if self._core.needs_materials:
            self._header = supply(self._core, self._manager)
            self._ready += self._core.update(b"")

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._ready and not self._eof:
            self._advance()
        n = min(len(view), len(self._ready))
        view[:n] = self._ready[:n]
        del self._ready[:n]
        return n

    def readall(self) -> bytes:
        parts = [bytes(self._ready)]
        self._ready.clear()
        while not self._eof:
            self._advance()
            parts.append(bytes(self._ready))
            self._ready.clear()
        return b"".join(parts)

"""`Encryptor` and `Decryptor`: the sync driver's file objects (``write``/``close``, ``read``/
``seek``), on the same building blocks as `encrypt_stream` and `decrypt_stream` (sync.py)."""

from __future__ import annotations

import io
from types import TracebackType
from typing import Any, Unpack

from ..errors import PolicyError
from ..format.body import FRAME_OVERHEAD
from ..format.header import Header
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from .batcher import FrameSealer
from .buffers import Outputs
from .limits import WRITE_BATCH_BYTES, nearest_units
from .options import DecryptOptions, EncryptStreamOptions
from .ranged import FrameWindow, check_eligible, open_message, positional, run_flow
from .session import new_decryptor, new_encryptor, resolve_materials_manager, supply
from .sync import Buffer, MessageReads, Output, Source, Writable, zero_copy

__all__ = ["Decryptor", "Encryptor"]


class Encryptor(io.RawIOBase):
    """A writable file object that encrypts what is written to it into ``sink``.

    Call `close` (or leave the ``with`` block normally): only then are the final frame and
    signature written. If the ``with`` block raises, the message is left unfinished on purpose,
    so that a partial message can never decrypt as if it were complete. ``sink`` is not closed.
    """

    def __init__(self, sink: Writable, *, keyring: Keyring | None = None,
                 materials_manager: MaterialsManager | None = None, **options: Unpack[EncryptStreamOptions]) -> None:
        super().__init__()
        self._sink = sink
        self._session = new_encryptor(keyring=keyring, materials_manager=materials_manager, **options)
        self._aborted = False
        # As in encrypt_stream: without compression or a declared length (which the session
        # counts), the batcher seals whole frames straight from what is written, a batch per
        # sink write from reused buffers; otherwise the session's general path.
        self._sealer: FrameSealer | None = None
        self._outputs = Outputs(lend=True)
        encryptor = self._session.encryptor
        if zero_copy(self._session):
            self._sealer = FrameSealer(encryptor, self._outputs)
            self._per_batch = nearest_units(encryptor.frame_length + FRAME_OVERHEAD, WRITE_BATCH_BYTES)

    @property
    def header(self) -> Header:
        return self._session.encryptor.header

    def writable(self) -> bool:
        return True

    def write(self, data: Buffer) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed Encryptor")
        view = memoryview(data).cast("B")
        sealer = self._sealer
        if sealer is None:
            out = self._session.update(view)
            if out:
                self._sink.write(out)
            return len(view)
        self._write_header()
        if type(data) is bytes:
            sealer.hold(data)  # immutable: held by reference
        else:
            # The caller may reuse ``data`` once write returns: the frames completed now are
            # sealed straight from it, and only the bytes held back after them are copied.
            n, held = self._session.encryptor.frame_length, sealer.held
            sealed = max(0, (held + len(view) - 1) // n * n - held)  # what `ready` frames take of it
            sealer.hold(view[:sealed], owned=True)
            sealer.hold(view[sealed:])
        while sealer.ready:
            self._emit(sealer.seal(min(sealer.ready, self._per_batch)))
        return len(view)

    def _write_header(self) -> None:
        header = self._session.encryptor.take_header()  # b"" once written
        if header:
            self._sink.write(header)

    def _emit(self, data: bytes | memoryview) -> None:
        if data:
            self._sink.write(data)
            self._outputs.give_back(data)

    def close(self) -> None:
        if not self.closed:
            try:
                if not self._aborted:
                    if self._sealer is None:
                        self._sink.write(self._session.finalize())
                    else:
                        self._write_header()
                        # the final frame (format-spec §5.4) and, signed suites, the footer
                        self._emit(self._sealer.finish())
            finally:
                self._sealer = None
                super().close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._aborted = True
        self.close()


class Decryptor(io.RawIOBase):
    """A readable file object yielding the authenticated plaintext of the message in ``source``.

    `read` returns plaintext only after it is authenticated, and raises AuthenticationError on
    tampering or truncation (at the latest when the end of the message is reached). Once a read
    raised, every later read raises the same error: the message was rejected.

    Over a seekable source (bytes, or a seekable file positioned at the message's start) holding
    a framed, uncompressed message, `seek` moves anywhere in the plaintext: from then on each read
    opens only the frames it touches (format-spec/operations.md §1), as `envelope.decrypt_range`
    does; a signed message needs ``allow_unverified_signature=True`` for that, since a slice cannot
    prove the signature. `seekable` says whether this message can seek (it reads the header).
    """

    def __init__(self, source: Source, *, keyring: Keyring | None = None,
                 materials_manager: MaterialsManager | None = None, allow_unverified_signature: bool = False,
                 **options: Unpack[DecryptOptions]) -> None:
        super().__init__()
        self._manager = resolve_materials_manager(keyring, materials_manager)
        self._core, output_options = new_decryptor(**options)
        self._source = source
        self._start = _message_start(source)  # None: the source cannot seek
        self._allow_unverified_signature = allow_unverified_signature
        self._message = MessageReads(self._core, source)
        self._ready = bytearray()  # plaintext decrypted and not yet read: at most about one batch
        self._output = Output(self._ready.extend, output_options)
        self._eof = False
        self._header: Header | None = None
        self._position = 0  # of the next plaintext byte read returns
        self._window: FrameWindow | None = None  # set by the first seek

    @property
    def header(self) -> Header:
        """The authenticated header (reads the start of the message if needed)."""
        self._core.failure.check()
        while self._header is None and not self._eof:
            self._advance()
        if self._header is None:  # pragma: no cover - _advance raises first
            raise RuntimeError("envelope: internal error: no header after the end of input")
        return self._header

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        if self._start is None:
            return False
        try:
            check_eligible(self.header, self._allow_unverified_signature)
        except PolicyError:
            return False
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to a plaintext offset (whence as for files); past the end, reads return b"".

        :raises io.UnsupportedOperation: the source cannot seek.
        :raises PolicyError: the message cannot be read at random (non-framed, compressed, or
            signed without ``allow_unverified_signature``).
        """
        if self._start is None:
            raise io.UnsupportedOperation("the source is not seekable (random access needs bytes or a seekable file)")
        window = self._window or self._open_window()
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._position + offset
        elif whence == io.SEEK_END:
            target = window.index.plaintext_length + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._position = target
        return target

    def _open_window(self) -> FrameWindow:
        header = self.header  # authenticated through the streaming path: the data key is not asked for again
        check_eligible(header, self._allow_unverified_signature)
        source = positional(self._source, start=self._start)
        index = run_flow(open_message(self._core, source.size,
                                      allow_unverified_signature=self._allow_unverified_signature),
                         source, self._manager.decrypt_materials)
        self._window = FrameWindow(index, source, self._manager.decrypt_materials)
        self._ready.clear()
        return self._window

    def _advance(self) -> None:
        """Decrypt the next chunk of the source into the ready plaintext. After an error, this
        and every later read raise it again, and the plaintext not yet read is dropped."""
        self._core.failure.check()
        try:
            self._step()
        except BaseException as exc:
            self._core.failure.trip(exc)
            self._ready.clear()
            self._output.release()
            self._message.release()
            raise

    def _step(self) -> None:
        message = self._message
        if self._header is None:
            message.read_header()
            self._header = supply(self._core, self._manager)
            self._output.start(self._header)
            data = message.start_body()
        else:
            data = message.next()
        if len(data):
            self._output.write(data)
            message.give_back(data)
        if message.ended:
            self._output.finish()
            self._output.release()
            message.release()
            self._eof = True

    def readinto(self, buffer: Any) -> int:
        self._core.failure.check()
        view = memoryview(buffer).cast("B")
        if self._window is not None:
            try:
                n = self._window.read_into(self._position, view)
            except BaseException as exc:
                self._core.failure.trip(exc)  # as for a sequential read: the message is rejected
                raise
        else:
            while not self._ready and not self._eof:
                self._advance()
            n = min(len(view), len(self._ready))
            view[:n] = self._ready[:n]
            del self._ready[:n]
        self._position += n
        return n

    def readall(self) -> bytes:
        self._core.failure.check()
        if self._window is not None:
            return super().readall() or b""
        while not self._eof:
            self._advance()
        data = bytes(self._ready)
        self._ready.clear()
        self._position += len(data)
        return data


def _message_start(source: object) -> int | None:
    """Where the message starts in ``source`` if it can be read at any offset (bytes, or a file
    that says it can seek), else None."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return 0
    seekable = getattr(source, "seekable", None)
    if callable(seekable) and seekable():
        return int(source.tell())  # type: ignore[attr-defined]
    return None

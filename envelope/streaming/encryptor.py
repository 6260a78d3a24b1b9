"""The sans-IO message encryptor: header, frames, footer (format-spec/message.md §4-§6).

It performs no I/O. The caller feeds plaintext with `update`/`update_into` and must call
`finalize` or the final frame and signature are never produced: output without them does not
decrypt.
"""

from __future__ import annotations

from collections.abc import Callable

from ..crypto.aead import AEAD
from ..crypto.kdf import derive_keys
from ..crypto.random import random_bytes
from ..crypto.signing import HashLike, Signer
from ..format.body import (
    FINAL_FRAME_MARKER,
    FINAL_FRAME_OVERHEAD,
    FRAME_OVERHEAD,
    MAX_NON_FRAMED_LENGTH,
    MAX_REGULAR_SEQUENCE,
    BodyKind,
    body_aad,
    footer,
    frame_iv,
)
from ..format.context import serialize_context
from ..format.header import ContentType, Header, serialize_header_auth, serialize_header_body
from ..materials.materials import EncryptionMaterials

__all__ = ["MessageEncryptor"]

Buffer = bytes | bytearray | memoryview
_HEADER_IV = bytes(12)  # the header tag's IV is all zeros (§4.5)
# Enum members as globals: a global read costs a tenth of a read through the Enum class (3.11).
_FINAL_FRAME = BodyKind.FINAL_FRAME
_FRAMED, _NON_FRAMED = ContentType.FRAMED, ContentType.NON_FRAMED


class MessageEncryptor:
    """Turns plaintext into one message, frame by frame.

    ``frame_length=0`` writes the legacy non-framed body, which holds the whole plaintext until
    `finalize` (format-spec/message.md §5.5); any other length streams in bounded memory.
    """

    def __init__(self, materials: EncryptionMaterials, frame_length: int) -> None:
        data_key = materials.plaintext_data_key
        if data_key is None:
            raise ValueError("encryption materials hold no data key")
        if not 0 <= frame_length <= 0xFFFFFFFF:
            raise ValueError("frame_length must be between 1 and 2**32 - 1 (or 0 for non-framed)")
        suite = materials.algorithm
        info = suite.info  # one table lookup for the suite's facts
        self.frame_length = frame_length
        version = info.message_format_version
        self.message_id = message_id = random_bytes(32 if version == 2 else 16)
        key, commitment_key = derive_keys(suite, data_key, message_id)
        context = materials.encryption_context
        required = materials.required_encryption_context_keys
        if required:
            # The required context is authenticated but not stored (§4.5).
            stored = {k: v for k, v in context.items() if k not in required}
            required_aad = serialize_context({k: context[k] for k in required})
        else:
            stored, required_aad = dict(context), b""  # a copy: the header must not share the materials' dict
        self.header = header = Header(version, suite, message_id, stored, materials.encrypted_data_keys,
                                      _FRAMED if frame_length else _NON_FRAMED, frame_length, commitment_key)
        body = serialize_header_body(header)
        self._aead = aead = AEAD(key)
        tag = aead.seal(_HEADER_IV, b"", body + required_aad if required_aad else body)
        self.header_bytes = body + serialize_header_auth(version, tag)
        self._signer: Signer | None = None
        if info.signature_curve is not None:
            if materials.signing_key is None:
                raise ValueError(f"{suite.name} needs a signing key in the materials")
            self._signer = Signer(info.signature_curve, materials.signing_key)
            self._signer.update(self.header_bytes)
        self._sequence = 1
        self._pending = bytearray()  # plaintext not yet sealed: at most one frame (or the whole body)
        self._header_written = False
        self._finalized = False

    # -- frame-level API (used by the drivers' zero-copy paths) --------------------------------

    def take_header(self) -> bytes:
        """Return the header bytes once; later calls return b""."""
        if self._header_written:
            return b""
        self._header_written = True
        return self.header_bytes

    def seal_frame_into(self, plaintext: Buffer, out: memoryview) -> int:
        """Seal one regular frame of exactly ``frame_length`` bytes into ``out``; return its size."""
        n = self.frame_length
        if len(plaintext) != n or not n:
            raise ValueError("a regular frame holds exactly frame_length bytes")
        if self._sequence > MAX_REGULAR_SEQUENCE:
            raise ValueError("message would exceed the maximum number of frames (§9)")
        seq = self._sequence
        iv = frame_iv(seq)
        out[0:4] = seq.to_bytes(4, "big")
        out[4:16] = iv
        self._aead.seal_into(iv, plaintext, body_aad(self.message_id, BodyKind.FRAME, seq, n), out[16:16 + n + 16])
        self._sequence = seq + 1
        size = n + FRAME_OVERHEAD
        if self._signer is not None:
            self._signer.update(out[:size])
        return size

    def seal_final_into(self, plaintext: Buffer, out: memoryview) -> int:
        """Seal the final frame (0..frame_length bytes) and the footer into ``out``; return the size.

        ``out`` needs len(plaintext) + 40 bytes, plus footer_size for signed suites.
        """
        if self._finalized:
            raise ValueError("the message is already finalized")
        n = len(plaintext)
        if self.frame_length == 0:
            size = self._seal_single_block(plaintext, out)
        else:
            if n > self.frame_length:
                raise ValueError("the final frame holds at most frame_length bytes")
            iv, out[0:24], aad = self._final_frame_start(n)
            self._aead.seal_into(iv, plaintext, aad, out[24:24 + n + 16])
            size = n + FINAL_FRAME_OVERHEAD
        self._finalized = True
        if self._signer is not None:
            self._signer.update(out[:size])
            tail = footer(self._signer.finalize())
            out[size:size + len(tail)] = tail
            size += len(tail)
        return size

    def _final_frame_start(self, n: int) -> tuple[bytes, bytes, bytes]:
        """The final frame's IV, its 24 bytes before the ciphertext, and its AAD (§5.3)."""
        seq = self._sequence
        iv = frame_iv(seq)
        start = b"".join((FINAL_FRAME_MARKER, seq.to_bytes(4, "big"), iv, n.to_bytes(4, "big")))
        return iv, start, body_aad(self.message_id, _FINAL_FRAME, seq, n)

    def encrypt_whole(self, plaintext: Buffer) -> bytes:
        """The one-shot path: the whole message for ``plaintext`` (at most ``frame_length`` bytes),
        in place of `update` and `finalize`.

        An unsigned framed message is then the header and one final frame, built in a single join
        (every small message takes this path); anything else goes through `finalize`.
        """
        if len(plaintext) > self.frame_length > 0:
            raise ValueError("encrypt_whole takes at most frame_length bytes")
        if (self._signer is None and self.frame_length and not self._header_written and not self._pending
                and not self._finalized):
            iv, start, aad = self._final_frame_start(len(plaintext))
            self._header_written = self._finalized = True
            return b"".join((self.header_bytes, start, self._aead.seal(iv, plaintext, aad)))
        return self.update(plaintext) + self.finalize()

    def _seal_single_block(self, plaintext: Buffer, out: memoryview) -> int:
        n = len(plaintext)
        if n > MAX_NON_FRAMED_LENGTH:
            raise ValueError("a non-framed body holds at most 2**36 - 32 bytes")
        iv = frame_iv(1)
        out[0:12] = iv
        out[12:20] = n.to_bytes(8, "big")
        self._aead.seal_into(iv, plaintext, body_aad(self.message_id, BodyKind.SINGLE_BLOCK, 1, n), out[20:20 + n + 16])
        return n + 36

    def wrap_signature_hash(self, wrap: Callable[[HashLike], HashLike]) -> None:
        """Hand the signature hash to a driver that runs it on another thread (no-op if unsigned)."""
        if self._signer is not None:
            self._signer.wrap_hash(wrap)

    @property
    def footer_size(self) -> int:
        """Upper bound of the footer's size (0 for unsigned suites)."""
        return 2 + 104 if self._signer is not None else 0

    # -- the general API -----------------------------------------------------------------------

    def output_bound(self, n: int) -> int:
        """How large a buffer `update_into` may need for ``n`` more plaintext bytes."""
        frames = (len(self._pending) + n) // self.frame_length + 1 if self.frame_length else 0
        header = 0 if self._header_written else len(self.header_bytes)
        return header + len(self._pending) + n + frames * FRAME_OVERHEAD

    def update_into(self, data: Buffer, out: bytearray | memoryview) -> int:
        """Feed plaintext; write whatever output is ready into ``out``; return its length.

        The last ``frame_length`` bytes are always held back, since only `finalize` knows which
        frame is final.
        """
        if self._finalized:
            raise ValueError("update after finalize")
        view = memoryview(out)
        written = 0
        header = self.take_header()
        if header:
            view[:len(header)] = header
            written = len(header)
        data = memoryview(data).cast("B")
        if self.frame_length == 0:
            if len(self._pending) + len(data) > MAX_NON_FRAMED_LENGTH:
                raise ValueError("a non-framed body holds at most 2**36 - 32 bytes")
            self._pending += data
            return written
        n = self.frame_length
        pos = 0
        if self._pending:
            need = n - len(self._pending)
            if len(data) <= need:
                self._pending += data
                return written
            self._pending += data[:need]
            pos = need
            written += self.seal_frame_into(self._pending, view[written:])
            self._pending.clear()
        # Seal whole frames straight from the input while more than one frame remains.
        while len(data) - pos > n:
            written += self.seal_frame_into(data[pos:pos + n], view[written:])
            pos += n
        self._pending += data[pos:]
        return written

    def update(self, data: Buffer) -> bytes:
        out = bytearray(self.output_bound(len(data)))
        n = self.update_into(data, out)
        del out[n:]
        return bytes(out)

    def finalize(self) -> bytes:
        """Seal the final frame (or the single block) and write the footer."""
        out = bytearray(len(self.header_bytes) + len(self._pending) + FINAL_FRAME_OVERHEAD + self.footer_size)
        view = memoryview(out)
        header = self.take_header()
        view[:len(header)] = header
        written = len(header) + self.seal_final_into(self._pending, view[len(header):])
        self._pending.clear()
        del view
        del out[written:]
        return bytes(out)

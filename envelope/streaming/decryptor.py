"""The sans-IO message decryptor (format-spec/message.md §4-§6, §10).

Release rule: a frame's plaintext leaves this object only after its tag verifies; for signed
suites the final frame (or the single block) is held until the signature verifies. The caller
must call `finalize`: without it a truncated message is indistinguishable from a complete one.
After any error, every later call raises it again: nothing past a rejected frame is read.
"""

from __future__ import annotations

import enum
import hmac
import struct
from collections.abc import Callable, Mapping
from functools import partial

from ..crypto.aead import AEAD
from ..crypto.kdf import derive_keys
from ..crypto.signing import HashLike, Verifier
from ..errors import AuthenticationError, FormatError, PolicyError
from ..format.body import (
    FINAL_FRAME_MARKER,
    FRAME_OVERHEAD,
    MAX_NON_FRAMED_LENGTH,
    MAX_REGULAR_SEQUENCE,
    BodyKind,
    body_aad,
    frame_iv,
)
from ..format.context import serialize_context
from ..format.header import DEFAULT_MAX_HEADER_LENGTH, Header, HeaderScanner, ParsedHeader, parse_header
from ..format.reader import Incomplete
from ..format.suites import CommitmentPolicy
from ..materials.materials import DecryptionMaterials, DecryptionRequest
from .failure import FailureLatch, latched
from .limits import MAX_READ_HINT, MIN_HEADER_READ, UNFRAMED_READ

__all__ = ["DEFAULT_MAX_NON_FRAMED_LENGTH", "MessageDecryptor"]

Buffer = bytes | bytearray | memoryview
# A non-framed body cannot be released before its single tag verifies, so it is buffered whole;
# this bounds that buffer (format-spec/message.md §9).
DEFAULT_MAX_NON_FRAMED_LENGTH = 256 * 1024 * 1024
_U32 = struct.Struct(">I")
_FINAL_MARKER = _U32.unpack(FINAL_FRAME_MARKER)[0]
# Final frame: marker, sequence number, IV, content length (§5.3). The IV comes out as bytes:
# comparing bytes costs far less than comparing a memoryview slice.
_FINAL_FIELDS = struct.Struct(">4xI12sI")


class _State(enum.Enum):
    HEADER = 1
    MATERIALS = 2
    BODY = 3
    FOOTER = 4
    DONE = 5


# The states as module globals: an Enum member read through its class costs ten times a global
# read (0.07 us on 3.11), and a small message checks the state a dozen times.
_HEADER, _MATERIALS, _BODY, _FOOTER, _DONE = _State
_FINAL_FRAME = BodyKind.FINAL_FRAME


class MessageDecryptor:
    """Turns one message back into plaintext.

    Use: feed bytes with `update`/`update_into`. Once the header is parsed, `request` is set and
    nothing more is decrypted until the caller obtains materials (from a materials manager) and
    passes them to `supply_materials`. Then feed the rest and call `finalize`.

    :param commitment_policy: suites this decryptor accepts (checked before any key is unwrapped).
    :param encryption_context: the caller's expected context; forwarded to the materials manager.
    :param max_encrypted_data_keys: refuse headers with more EDKs (before any unwrap).
    :param allow_signed: if False, signed messages are refused at the header, so every frame's
        plaintext can be released as soon as it verifies (true streaming).
    """

    def __init__(self, *, commitment_policy: CommitmentPolicy = CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
                 encryption_context: Mapping[str, str] | None = None,
                 max_encrypted_data_keys: int | None = None, allow_signed: bool = True,
                 max_header_length: int = DEFAULT_MAX_HEADER_LENGTH,
                 max_non_framed_length: int = DEFAULT_MAX_NON_FRAMED_LENGTH) -> None:
        if max_encrypted_data_keys is not None and max_encrypted_data_keys < 1:
            raise ValueError("max_encrypted_data_keys must be at least 1")
        self._policy = commitment_policy
        self._reproduced = dict(encryption_context) if encryption_context is not None else None
        self._max_edks = max_encrypted_data_keys
        self._allow_signed = allow_signed
        self._max_header = max_header_length
        self._max_non_framed = min(max_non_framed_length, MAX_NON_FRAMED_LENGTH)
        self._state = _HEADER
        self._buf = bytearray()
        self._scanner: HeaderScanner | None = None  # made on the first incremental update
        self._parsed: ParsedHeader | None = None
        self.request: DecryptionRequest | None = None
        self._aead: AEAD | None = None
        self._verifier: Verifier | None = None
        self._sequence = 1
        self._held = b""  # signed suites: the last frame's plaintext, until the signature verifies
        #: the first error of this message; drivers trip it for errors of their own around it too
        self.failure = FailureLatch()

    @property
    def header(self) -> Header | None:
        """The parsed header; authenticated only once `supply_materials` has returned."""
        return self._parsed.header if self._parsed is not None else None

    @property
    def needs_materials(self) -> bool:
        return self._state is _MATERIALS

    @property
    def done(self) -> bool:
        return self._state is _DONE

    # -- header --------------------------------------------------------------------------------

    def _parse_header(self) -> None:
        # Scan lengths first (resumable, linear); parse once the header is all here (§9).
        if self._scanner is None:
            self._scanner = HeaderScanner(max_encrypted_data_keys=self._max_edks, max_header_length=self._max_header)
        if self._scanner.scan(self._buf) is None:
            return
        parsed = parse_header(bytes(self._buf), max_encrypted_data_keys=self._max_edks,
                              max_header_length=self._max_header)
        self._accept_header(parsed)
        del self._buf[:parsed.length]

    @latched
    def parse_whole_header(self, data: Buffer) -> int:
        """Parse the header from the start of ``data``, which holds the whole message; return the
        header's length (where the body starts).

        The one-shot path: nothing is buffered or scanned, since every byte is already here. Use
        it instead of the first `update`; then `supply_materials`, then `update` with the rest.

        :raises AuthenticationError: ``data`` ends inside the header.
        """
        if self._state is not _HEADER or self._buf:
            raise ValueError("parse_whole_header comes first, instead of update")
        if type(data) is memoryview and type(data.obj) is bytes and data.nbytes == len(data.obj):
            # A view of a whole bytes object (the one-shots' usual input): parse the bytes
            # themselves, since slicing bytes is cheaper than slicing a view (a header is a dozen).
            data = data.obj
        try:
            parsed = parse_header(data, max_encrypted_data_keys=self._max_edks, max_header_length=self._max_header)
        except Incomplete:
            raise AuthenticationError("message is truncated in the header") from None
        self._accept_header(parsed)
        return parsed.length

    def _accept_header(self, parsed: ParsedHeader) -> None:
        header = parsed.header
        suite = header.algorithm
        # Commitment policy and signed-message refusal come before any key is unwrapped (§10).
        if not self._policy.allows_decrypt(suite):
            raise PolicyError(
                f"commitment policy {self._policy.name} refuses the non-committing suite {suite.name}",
                hint="decrypt with commitment_policy=REQUIRE_ENCRYPT_ALLOW_DECRYPT to read older messages")
        if suite.is_signing and not self._allow_signed:
            raise PolicyError(f"the message is signed ({suite.name}) and signed messages are refused",
                              hint="allow signed messages, or encrypt with an unsigned suite for streaming")
        self._parsed = parsed
        self.request = DecryptionRequest(suite, header.encrypted_data_keys, header.encryption_context,
                                         self._policy, self._reproduced, partial(_key_fits, parsed))
        self._state = _MATERIALS

    @latched
    def supply_materials(self, materials: DecryptionMaterials) -> None:
        """Authenticate the header with the unwrapped data key; afterwards the body can be read.

        :raises AuthenticationError: wrong key commitment or header tag (the data key or the
            encryption context does not belong to this message).
        """
        parsed = self._parsed
        if self._state is not _MATERIALS or parsed is None:
            raise ValueError("supply_materials is called once, after the header is parsed")
        header = parsed.header
        data_key = materials.plaintext_data_key
        if data_key is None or materials.algorithm is not header.algorithm:
            raise ValueError("materials do not match the message's algorithm suite or hold no key")
        aead = _authenticate(parsed, materials, data_key)
        if header.algorithm.signature_curve is not None:
            if materials.verification_key is None:
                raise FormatError("signed message without a verification key")
            self._verifier = Verifier.from_encoded(header.algorithm.signature_curve, materials.verification_key)
            self._verifier.update(parsed.body)
            self._verifier.update(parsed.auth_iv + parsed.auth_tag if header.version == 1 else parsed.auth_tag)
        self._aead = aead
        self._state = _BODY

    def wrap_signature_hash(self, wrap: Callable[[HashLike], HashLike]) -> None:
        """Hand the signature hash to a driver that runs it on another thread (no-op if unsigned)."""
        if self._verifier is not None:
            self._verifier.wrap_hash(wrap)

    @property
    def header_needed(self) -> int:
        """How many more bytes the header needs before the next step of its parse: exact, so a
        reader that must not read into the body (random access) asks for just these; 0 once
        the header is parsed."""
        if self._state is not _HEADER:
            return 0
        if self._scanner is None:
            self._scanner = HeaderScanner(max_encrypted_data_keys=self._max_edks, max_header_length=self._max_header)
        return max(self._scanner.needed - len(self._buf), 1)

    @property
    def header_length(self) -> int | None:
        """The header's length in bytes (where the body starts), once it is parsed."""
        return self._parsed.length if self._parsed is not None else None

    @property
    def message_aead(self) -> AEAD:
        """The message key, once `supply_materials` has authenticated the header with it: for
        random access, which opens frames itself (format-spec/operations.md §1)."""
        if self._aead is None:
            raise ValueError("the message key is known only after supply_materials")
        return self._aead

    def take_verifier(self) -> Verifier | None:
        """Hand over the signature verifier (fed the header) to a driver that hashes the body
        itself without decrypting it (rewrap, format-spec/operations.md §2); None if unsigned."""
        verifier, self._verifier = self._verifier, None
        return verifier

    @property
    def pending_bytes(self) -> int:
        """Input bytes held back because they do not yet make a whole frame (or footer)."""
        return len(self._buf)

    @property
    def is_signed(self) -> bool:
        return self._verifier is not None

    # -- body ----------------------------------------------------------------------------------

    def output_bound(self, n: int) -> int:
        """How large a buffer `update_into` may need when fed ``n`` more bytes."""
        return len(self._buf) + n + len(self._held)

    def update(self, data: Buffer) -> bytes:
        out = bytearray(self.output_bound(len(data)))
        n = self.update_into(data, out)
        del out[n:]
        return bytes(out)

    @latched
    def update_into(self, data: Buffer, out: bytearray | memoryview) -> int:
        """Feed message bytes; write authenticated plaintext into ``out``; return its length."""
        view = memoryview(out)
        data = memoryview(data).cast("B")
        if self._state is _DONE:
            if len(data):
                raise AuthenticationError("trailing data after the end of the message")
            return 0
        if self._state in (_HEADER, _MATERIALS):
            self._buf += data
            if self._state is _HEADER:
                self._parse_header()
            return 0
        written = 0
        pos = 0
        if self._buf and not len(data):
            # Body bytes that arrived with the header, before the materials did.
            data = memoryview(bytes(self._buf))
            self._buf.clear()
        # Complete an element that straddles calls by copying only its missing bytes, then read
        # whole elements straight from the input (zero-copy when fed one frame per call).
        while self._buf and pos < len(data) and not self.done:
            want = self._wanted(bytes(self._buf[:24])) - len(self._buf)
            if want <= 0:
                # The buffer already holds whole elements (body bytes that came with the header):
                # read on from buffer and input together.
                data = memoryview(bytes(self._buf) + bytes(data[pos:]))
                pos = 0
                self._buf.clear()
                break
            take = data[pos:pos + want]
            self._buf += take
            pos += len(take)
            if len(self._buf) < self._wanted(bytes(self._buf[:24])):
                continue
            element = memoryview(bytes(self._buf))
            self._buf.clear()
            used, n = self._step(element, view[written:])
            if used != len(element):  # pragma: no cover - _wanted and _step agree on sizes
                raise RuntimeError("envelope: internal error: element size mismatch")
            written += n
        while pos < len(data) and not self._buf:
            used, n = self._step(data[pos:], view[written:])
            if used == 0:
                break
            pos += used
            written += n
        if pos < len(data):
            if self.done:
                raise AuthenticationError("trailing data after the end of the message")
            self._buf += data[pos:]
        return written

    def _wanted(self, prefix: bytes | memoryview) -> int:
        """Total size of the next body element, or of the prefix that determines it.

        :raises FormatError: the prefix announces a length beyond the limits (§9).
        """
        header = self._parsed.header if self._parsed is not None else None
        if header is None:  # pragma: no cover
            raise RuntimeError("envelope: internal error: body without header")
        n = len(prefix)
        if self._state is _FOOTER:
            return 2 if n < 2 else 2 + int.from_bytes(prefix[:2], "big")
        if header.frame_length == 0:
            if n < 20:
                return 20
            length = int.from_bytes(prefix[12:20], "big")
            if length > self._max_non_framed:
                raise FormatError(f"non-framed body of {length} bytes exceeds the {self._max_non_framed}-byte limit")
            return 36 + length
        if n < 4:
            return 4
        if prefix[:4] != FINAL_FRAME_MARKER:
            return header.frame_length + FRAME_OVERHEAD
        if n < 24:
            return 24
        length = int.from_bytes(prefix[20:24], "big")
        if length > header.frame_length:
            raise FormatError(f"final frame is longer ({length}) than the frame length ({header.frame_length})")
        return 40 + length

    def size_hint(self) -> int:
        """How many bytes to read next so that the following `update` can work without copying."""
        if self._state is _HEADER:
            needed = self._scanner.needed if self._scanner is not None else 1
            return min(max(needed - len(self._buf), MIN_HEADER_READ), MAX_READ_HINT)
        if self._state is _BODY and self._parsed is not None and self._parsed.header.frame_length:
            # Capped: what a driver allocates must follow the bytes that arrive, not the frame
            # length a header claims (§9); bigger frames gather in the straddle buffer.
            return min(max(self._parsed.header.frame_length + FRAME_OVERHEAD - len(self._buf), 1), MAX_READ_HINT)
        return UNFRAMED_READ

    def _step(self, data: memoryview, out: memoryview) -> tuple[int, int]:
        """Consume one frame (or the footer) from ``data`` if it is complete: (bytes used, written)."""
        if self._state is _BODY:
            parsed = self._parsed
            if parsed is None:  # pragma: no cover
                raise RuntimeError("envelope: internal error: body without header")
            if parsed.header.frame_length == 0:
                return self._single_block(data, out)
            return self._frame(data, out, parsed.header.frame_length)
        if self._state is _FOOTER:
            return self._footer(data, out)
        return 0, 0

    def _frame(self, data: memoryview, out: memoryview, frame_length: int) -> tuple[int, int]:
        if len(data) < 4:
            return 0, 0
        aead = self._aead
        if aead is None:  # pragma: no cover
            raise RuntimeError("envelope: internal error: body before materials")
        message_id = self._parsed.header.message_id  # type: ignore[union-attr]
        seq = self._sequence
        first = _U32.unpack_from(data)[0]  # a regular frame's sequence number, or the final-frame marker
        if first != _FINAL_MARKER:
            size = frame_length + FRAME_OVERHEAD
            if len(data) < size:
                return 0, 0
            iv = self._check_sequence(first, data[4:16])
            if seq > MAX_REGULAR_SEQUENCE:
                raise FormatError("too many frames (§9)")
            aead.open_into(iv, data[16:size], body_aad(message_id, BodyKind.FRAME, seq, frame_length),
                           out[:frame_length], f"frame {seq}")
            if self._verifier is not None:
                self._verifier.update(data[:size])
            self._sequence = seq + 1
            return size, frame_length
        if len(data) < 24:
            return 0, 0
        iv, length = self._final_frame_fields(data, frame_length)
        size = 24 + length + 16
        if len(data) < size:
            return 0, 0
        aad = body_aad(message_id, BodyKind.FINAL_FRAME, seq, length)
        if self._verifier is not None:
            self._verifier.update(data[:size])
        return size, self._release_last(aead, iv, data[24:size], aad, out, length, f"final frame {seq}")

    def _final_frame_fields(self, data: memoryview, frame_length: int) -> tuple[bytes, int]:
        """Check the fields of the final frame at the start of ``data`` (24 bytes or more);
        return its IV and plaintext length (§5.3)."""
        found, iv, length = _FINAL_FIELDS.unpack_from(data)
        iv = self._check_sequence(found, iv)
        if length > frame_length:
            raise FormatError(f"final frame is longer ({length}) than the frame length ({frame_length})")
        return iv, length

    @latched
    def decrypt_rest(self, data: Buffer) -> bytes:
        """The one-shot path after `supply_materials`: ``data`` is the whole rest of the message;
        return its plaintext, having checked that the message ends exactly there.

        The same checks as `update` then `finalize`. A body that is one final frame of an unsigned
        message (every small message) is opened straight from ``data``, without the element loop.

        :raises AuthenticationError: tampered, truncated, or trailing data.
        """
        if self._state is _HEADER or self._state is _MATERIALS:
            raise ValueError("decrypt_rest comes after supply_materials")
        data = memoryview(data).cast("B")
        parsed, aead = self._parsed, self._aead
        if (self._verifier is None and not self._buf and self._state is _BODY and parsed is not None
                and aead is not None and len(data) >= 24 and parsed.header.frame_length
                and _U32.unpack_from(data)[0] == _FINAL_MARKER):
            iv, length = self._final_frame_fields(data, parsed.header.frame_length)
            if len(data) == length + 40:
                seq = self._sequence
                aad = body_aad(parsed.header.message_id, _FINAL_FRAME, seq, length)
                plaintext = aead.open(iv, data[24:], aad, f"final frame {seq}")
                self._state = _DONE
                return plaintext
        # Anything else (several frames, signed, non-framed, truncated or trailing bytes).
        out = bytearray(self.output_bound(len(data)))
        n = self.update_into(data, out)
        self.finalize()
        del out[n:]
        return bytes(out)

    def _single_block(self, data: memoryview, out: memoryview) -> tuple[int, int]:
        if len(data) < 20:
            return 0, 0
        if bytes(data[:12]) != frame_iv(1):
            raise AuthenticationError("message body has an unexpected IV")
        length = int.from_bytes(data[12:20], "big")
        if length > self._max_non_framed:
            raise FormatError(f"non-framed body of {length} bytes exceeds the {self._max_non_framed}-byte limit")
        size = 20 + length + 16
        if len(data) < size:
            return 0, 0
        aead = self._aead
        if aead is None:  # pragma: no cover
            raise RuntimeError("envelope: internal error: body before materials")
        aad = body_aad(self._parsed.header.message_id, BodyKind.SINGLE_BLOCK, 1, length)  # type: ignore[union-attr]
        self._hash(data[:size])
        return size, self._release_last(aead, data[:12], data[20:size], aad, out, length, "message body")

    def _release_last(self, aead: AEAD, iv: bytes | memoryview, sealed: memoryview, aad: bytes, out: memoryview,
                      length: int, what: str) -> int:
        if self._verifier is None:
            aead.open_into(iv, sealed, aad, out[:length], what)
            self._state = _DONE
            return length
        # Signed: hold the last plaintext until the signature verifies (§10).
        self._held = aead.open(iv, sealed, aad, what)
        self._state = _FOOTER
        return 0

    def _footer(self, data: memoryview, out: memoryview) -> tuple[int, int]:
        if len(data) < 2:
            return 0, 0
        size = 2 + int.from_bytes(data[:2], "big")
        if len(data) < size:
            return 0, 0
        if self._verifier is None:  # pragma: no cover
            raise RuntimeError("envelope: internal error: footer without verifier")
        self._verifier.verify(bytes(data[2:size]))
        held, self._held = self._held, b""
        out[:len(held)] = held
        self._state = _DONE
        return size, len(held)

    def _check_sequence(self, seq: int, iv: bytes | memoryview) -> bytes:
        """Check a frame's sequence number and IV; return the IV (as bytes, for the AEAD call)."""
        if seq != self._sequence:
            raise AuthenticationError(f"frame {self._sequence} is missing or out of order (found {seq})")
        expected = frame_iv(seq)
        if iv != expected:
            raise AuthenticationError(f"frame {seq} has an unexpected IV")
        return expected

    def _hash(self, data: memoryview) -> None:
        if self._verifier is not None:
            self._verifier.update(data)

    @latched
    def finalize(self) -> bytes:
        """Check that the message ended exactly; raises AuthenticationError if it is truncated."""
        if self._state is not _DONE:
            where = {_HEADER: "in the header", _MATERIALS: "before its body",
                     _BODY: "in the body", _FOOTER: "before its signature"}[self._state]
            raise AuthenticationError(f"message is truncated {where}")
        if self._buf:
            raise AuthenticationError("trailing data after the end of the message")
        return b""


def _key_fits(parsed: ParsedHeader, materials: DecryptionMaterials, data_key: bytes) -> bool:
    """A request's `key_check`: whether a keyring's candidate key belongs to this message.

    Committing suites check the key commitment only (§2.3), which depends on the key alone, so a
    wrong encryption context still fails later as itself. Other suites have only the header tag
    (§4.5), which covers the context too. (A function of the parsed header, not a method:
    materials that outlive the message must not keep its decryptor alive.)
    """
    header = parsed.header
    suite = header.algorithm
    if len(data_key) != suite.key_length:
        return False
    if suite.is_committing:
        return hmac.compare_digest(derive_keys(suite, data_key, header.message_id)[1], header.commitment_key)
    try:
        _authenticate(parsed, materials, data_key)
    except AuthenticationError:
        return False
    return True


def _authenticate(parsed: ParsedHeader, materials: DecryptionMaterials, data_key: bytes) -> AEAD:
    """Check ``data_key`` against the header (commitment, then header tag); return the
    message key's AEAD.

    :raises AuthenticationError: the key or the encryption context does not fit the message.
    """
    header = parsed.header
    suite = header.algorithm
    key, commitment_key = derive_keys(suite, data_key, header.message_id)
    # §2.3: compare the commitment in constant time before the key is used at all.
    if suite.is_committing and not hmac.compare_digest(commitment_key, header.commitment_key):
        raise AuthenticationError("key commitment does not match: the data key does not belong to this message")
    aead = AEAD(key)
    aad = parsed.body
    required = materials.required_encryption_context_keys
    if required:
        # Required pairs are authenticated but not stored in the header (§4.5).
        context = materials.encryption_context
        aad += serialize_context({k: context[k] for k in required if k in context})
    aead.open(parsed.auth_iv, parsed.auth_tag, aad, "header (check the encryption context)")
    return aead

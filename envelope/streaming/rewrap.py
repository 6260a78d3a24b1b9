"""Rewrap: give a message new encrypted data keys without re-encrypting its body
(format-spec/operations.md §2).

The body's AAD names the message id, never the header (format-spec/message.md §5.1), so frames
stay valid under a new header that keeps the message id, suite, context and data key. Unsigned
messages keep their body byte for byte; signed ones get a new signing key and footer, and their
old signature is verified in the same pass, so a rewrap never blesses a body it did not check.
"""

from __future__ import annotations

import functools
import os
import stat
import struct
from collections.abc import Callable, Collection, Mapping
from contextlib import ExitStack
from typing import IO, Any, Protocol

from ..crypto.signing import PUBLIC_KEY_CONTEXT_KEY, Signer, Verifier, generate_signing_key
from ..errors import AuthenticationError, KeyringError, PolicyError
from ..format.body import FRAME_OVERHEAD, footer
from ..format.context import serialize_context
from ..format.header import (
    EncryptedDataKey,
    Header,
    serialize_header_auth,
    serialize_header_body,
)
from ..format.suites import CommitmentPolicy
from ..keyrings.base import Keyring
from ..keyrings.names import edk_key_name
from ..materials.base import MaterialsManager
from ..materials.materials import DecryptionMaterials, EncryptionMaterials
from .atomic import AtomicOutput
from .buffers import Pool
from .decryptor import MessageDecryptor
from .limits import HANDOFF_BYTES
from .pipeline import BackThread
from .ranged import final_fields_fit, frame_layout, read_once
from .session import new_decryptor, resolve_materials_manager
from .walker import FrameWalker

__all__ = ["rewrap"]

_KERNEL_CHUNK = 1 << 30  # per copy_file_range / sendfile call
_HEADER_IV = bytes(12)  # the header tag's IV is all zeros (format-spec/message.md §4.5)
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")


class _Writable(Protocol):
    def write(self, data: bytes | memoryview, /) -> object: ...


def rewrap(source: str | os.PathLike[str] | IO[bytes], destination: str | os.PathLike[str] | _Writable, *,
           keyring: Keyring | None = None, materials_manager: MaterialsManager | None = None,
           new_keyring: Keyring | None = None, keep_existing: bool = False,
           remove_keys: Collection[str] = (), encryption_context: Mapping[str, str] | None = None,
           commitment_policy: CommitmentPolicy | str | None = None,
           max_encrypted_data_keys: int | None = None) -> Header:
    """Write the message in ``source`` to ``destination`` with new encrypted data keys.

    The data key is unwrapped with ``keyring`` (or ``materials_manager``), which authenticates the
    header; the new header keeps the message id, suite, frame length and encryption context and
    holds the data keys that ``new_keyring`` wraps. The forms:

    - replace (the default): only ``new_keyring``'s keys;
    - add a recipient: ``keep_existing=True`` keeps the old keys and adds ``new_keyring``'s;
    - remove recipients: ``remove_keys=[name, ...]`` keeps every old key but those naming one of
      the names (a KMS key ARN or a raw key's name); ``new_keyring`` may then be omitted.

    The last two need an unsigned suite: a signed message's new signing key changes the
    encryption context that the old data keys are bound to.

    Unsigned messages: the body is copied byte for byte (its structure is checked: truncation or
    trailing data is refused; its tags are checked when it is decrypted). Signed messages: the
    old signature is verified and a new signing key signs the new message; the encryption
    context's public key entry changes with it.

    A path ``destination`` is all or nothing: the new message is written to an `AtomicOutput`
    that replaces ``destination`` (an existing file is replaced; a symlink is followed) only once
    it is whole, checked and synced to disk, so an error or a kill -9 leaves ``destination`` as it
    was, and ``destination`` may be ``source`` itself (rewrap in place). The new file has mode
    0600. A file object ``destination`` receives the bytes as they are made; discard them if this
    raises.

    :returns: the new message's header.
    :raises AuthenticationError: the header does not authenticate, or the body is truncated, has
        trailing data or (signed) a signature that does not verify.
    :raises KeyringError: ``new_keyring`` wrapped no key, or nothing would be left to decrypt with.
    """
    if new_keyring is None and not remove_keys:
        raise TypeError("pass new_keyring= (or remove_keys= to drop recipients)")
    if remove_keys and isinstance(remove_keys, str):
        raise TypeError("remove_keys is a collection of key names, not one string")
    manager = resolve_materials_manager(keyring, materials_manager)
    decryptor, _ = new_decryptor(encryption_context=encryption_context, commitment_policy=commitment_policy,
                                 max_encrypted_data_keys=max_encrypted_data_keys)
    plan = _Plan(new_keyring, keep_existing or bool(remove_keys), frozenset(remove_keys))
    with ExitStack() as stack:
        src = stack.enter_context(open(source, "rb")) if isinstance(source, (str, os.PathLike)) else source
        if not hasattr(src, "read"):
            raise TypeError("source must be a path or a binary file object")
        if isinstance(destination, (str, os.PathLike)):
            return _to_path(src, os.fspath(destination), decryptor, manager, plan)
        return _rewrap(src, destination, decryptor, manager, plan, kernel_copy=False)


class _Plan:
    """Which data keys the new header holds."""

    def __init__(self, new_keyring: Keyring | None, keep: bool, remove: frozenset[str]) -> None:
        self.new_keyring = new_keyring
        self.keep = keep
        self.remove = remove

    def encrypted_data_keys(self, old: Header, materials: EncryptionMaterials) -> tuple[EncryptedDataKey, ...]:
        if self.keep and old.algorithm.is_signing:
            # The new signing key's public key is part of the encryption context, which every
            # keyring binds its data keys to (format-spec/operations.md §2.3).
            raise PolicyError("a signed message's old data keys cannot be kept: its new signing key changes the "
                              "encryption context they are bound to",
                              hint="rewrap with every recipient in new_keyring (a MultiKeyring)")
        kept = tuple(edk for edk in old.encrypted_data_keys if edk_key_name(edk) not in self.remove) \
            if self.keep else ()
        if self.remove and len(kept) == len(old.encrypted_data_keys):
            names = ", ".join(sorted(self.remove))
            raise KeyringError(f"the message has no data key wrapped by {names}")
        added: tuple[EncryptedDataKey, ...] = ()
        if self.new_keyring is not None:
            wrapped = self.new_keyring.on_encrypt(materials)
            added = tuple(wrapped.encrypted_data_keys)
            if not added:
                raise KeyringError("the new keyring wrapped no data key")
        edks = kept + added
        if not edks:
            raise KeyringError("no data key would be left: the message could never be decrypted")
        return edks


def _rewrap(file: Any, dst: _Writable, decryptor: MessageDecryptor, manager: MaterialsManager, plan: _Plan, *,
            kernel_copy: bool) -> Header:
    """The rewrap itself; ``kernel_copy``: ``dst`` is our own file, which an unsigned body may be
    copied into by the kernel."""
    src = _Reader(file)
    write = dst.write
    old = _read_header(src, decryptor)
    request = decryptor.request
    if request is None:  # pragma: no cover
        raise RuntimeError("envelope: internal error: no materials request after the header")
    materials = manager.decrypt_materials(request)
    decryptor.supply_materials(materials)  # authenticates the header: the data key is this message's
    data_key = materials.plaintext_data_key
    if data_key is None:  # pragma: no cover - supply_materials refuses materials without a key
        raise RuntimeError("envelope: internal error: no data key")
    suite = old.algorithm
    context = dict(materials.encryption_context)
    signer = None
    signing_key = None
    if suite.signature_curve is not None:
        signing_key = generate_signing_key(suite.signature_curve)
        signer = Signer(suite.signature_curve, signing_key)
        context[PUBLIC_KEY_CONTEXT_KEY] = signer.public_key
    required = materials.required_encryption_context_keys
    wrap = EncryptionMaterials(suite, context, (), data_key, signing_key, required)
    header = Header(old.version, suite, old.message_id, {k: v for k, v in context.items() if k not in required},
                    plan.encrypted_data_keys(old, wrap), old.content_type, old.frame_length, old.commitment_key)
    header_bytes = _serialize_header(header, decryptor, materials)
    write(header_bytes)
    if signer is None:
        if not (kernel_copy and _copy_body_by_kernel(file, dst, old)):
            _copy_body(file, _Blocks(dst, own=False), old, None, None)
        return header
    signer.update(header_bytes)
    signature = _copy_body(file, _Blocks(dst, own=kernel_copy), old, signer, _old_verifier(decryptor))
    if signature is None:  # pragma: no cover
        raise RuntimeError("envelope: internal error: signed body without a signature")
    write(footer(signer.finalize()))
    return header


def _serialize_header(header: Header, decryptor: MessageDecryptor, materials: DecryptionMaterials) -> bytes:
    """The new header and its tag under the message key (format-spec/message.md §4.5)."""
    body = serialize_header_body(header)
    required = materials.required_encryption_context_keys
    aad = body
    if required:
        context = materials.encryption_context
        aad += serialize_context({k: context[k] for k in required if k in context})
    tag = decryptor.message_aead.seal(_HEADER_IV, b"", aad)
    return body + serialize_header_auth(header.version, tag)


def _old_verifier(decryptor: MessageDecryptor) -> Verifier:
    """The verifier of the old signature, already fed the old header by the decryptor."""
    verifier = decryptor.take_verifier()
    if verifier is None:  # pragma: no cover - supply_materials makes one for signed suites
        raise RuntimeError("envelope: internal error: signed message without a verifier")
    return verifier


def _read_header(src: _Reader, decryptor: MessageDecryptor) -> Header:
    while decryptor.header is None:
        need = decryptor.header_needed
        data = src.read(need)
        if len(data) < need:
            raise AuthenticationError("message is truncated in the header")
        decryptor.update(data)
    return decryptor.header


class _Blocks:
    """Where the body's blocks go. A file object takes them in order, from one thread; our own
    file takes each at its offset (pwrite), so that either of a signed rewrap's threads may
    write a block and the writes go to whichever has time."""

    def __init__(self, dst: Any, *, own: bool) -> None:
        self.dst = dst
        self._fd: int | None = None
        self.offset = 0  # where the next block goes, in our own file
        if own:
            dst.flush()  # the header is written: blocks go after it
            self._fd = dst.fileno()
            self.offset = dst.tell()

    @property
    def positional(self) -> bool:
        return self._fd is not None

    def write(self, block: memoryview) -> None:
        self.dst.write(block)

    def write_at(self, block: memoryview, offset: int) -> None:
        if self._fd is None:  # pragma: no cover - only our own file is written at offsets
            raise RuntimeError("envelope: internal error: a positional write to a file object")
        while block:
            written = os.pwrite(self._fd, block, offset)
            block, offset = block[written:], offset + written

    def end(self) -> None:
        """The body is written: what follows (the footer) goes after it."""
        if self._fd is not None:
            self.dst.seek(self.offset)


def _copy_body(file: Any, blocks: _Blocks, header: Header, signer: Signer | None,
               verifier: Verifier | None) -> bytes | None:
    """Copy the body in blocks, walking its framing (§5); return the old signature of a signed
    message, verified.

    Signed suites hash every block twice: for the new signature, and to verify the old one (§2.3).
    This thread reads and feeds the new signer; the back thread feeds the old verifier, so the
    two SHA-384 passes run on two cores (hashlib releases the GIL on large buffers). The back
    thread writes the blocks of a file object, in order; into our own file, a block is written
    by this thread when the back thread is behind, else by the back thread, so the two stay
    level whatever reads, writes and hashes cost here. A block goes back to the pool only once
    both are done with it.
    """
    walker = FrameWalker(header.frame_length)
    pool = Pool(HANDOFF_BYTES)
    back = BackThread() if signer is not None else None
    after = b""  # what follows the body in the last block: the footer, or trailing data
    try:
        while not walker.done:
            buf = pool.take(back.check if back is not None else None)
            n = read_once(file, buf)
            if not n:
                raise AuthenticationError("message is truncated in the body")
            body = walker.feed(buf[:n])
            after = bytes(buf[body:n])
            block = buf[:body]
            if back is None or signer is None or verifier is None:
                blocks.write(block)
                pool.put(buf)
                continue
            signer.update(block)
            if not blocks.positional:
                back.submit(functools.partial(_verify_then, verifier, block, pool, buf, blocks.write))
                continue
            if back.behind:  # the back thread has more to do than this one: write here
                blocks.write_at(block, blocks.offset)
                back.submit(functools.partial(_verify_then, verifier, block, pool, buf, None))
            else:
                back.submit(functools.partial(_verify_then, verifier, block, pool, buf,
                                              functools.partial(blocks.write_at, offset=blocks.offset)))
            blocks.offset += body
        if back is not None:
            back.drain()
    finally:
        if back is not None:
            back.stop()
    blocks.end()
    rest = _Reader(file, after)
    if verifier is None:
        if rest.read(1):
            raise AuthenticationError("trailing data after the end of the message")
        return None
    size = rest.read(2)
    if len(size) < 2:
        raise AuthenticationError("message is truncated before its signature")
    signature = rest.read(_U16.unpack(size)[0])
    if len(signature) < _U16.unpack(size)[0]:
        raise AuthenticationError("message is truncated in its signature")
    if rest.read(1):
        raise AuthenticationError("trailing data after the end of the message")
    verifier.verify(signature)
    return signature


def _verify_then(verifier: Verifier, block: memoryview, pool: Pool, buf: Any,
                 write: Callable[[memoryview], object] | None) -> None:
    """The back thread's part of a signed block: the old signature's hash, then its write if it
    has one, then the buffer is free."""
    verifier.update(block)
    if write is not None:
        write(block)
    pool.put(buf)


def _copy_body_by_kernel(src: Any, dst: Any, header: Header) -> bool:
    """Copy an unsigned framed body from file to file inside the kernel, having checked that a
    final frame ends it where the file ends (format-spec/operations.md §2.2); False where either
    side is not a regular file or the kernel cannot copy between them (nothing is written then)."""
    if header.frame_length == 0:
        return False
    try:
        src_fd, dst_fd = src.fileno(), dst.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    status = os.fstat(src_fd)
    if not stat.S_ISREG(status.st_mode):
        return False
    start = src.tell()
    located = frame_layout(status.st_size - start, header.frame_length)
    if located is None or not final_fields_fit(
            os.pread(src_fd, 24, start + located[0] * (header.frame_length + FRAME_OVERHEAD)),
            located[0] + 1, located[1]):
        raise AuthenticationError("message is truncated or has trailing data: no final frame ends it")
    dst.flush()
    offset, left = start, status.st_size - start
    copiers = [_by_copy_file_range, _by_sendfile]
    while left:
        try:
            n = copiers[0](src_fd, dst_fd, offset, min(left, _KERNEL_CHUNK))
        except (OSError, AttributeError):
            if offset != start:
                raise
            copiers.pop(0)  # this kernel or file system refuses: nothing was written, try the next
            if not copiers:
                return False
            continue
        if not n:
            raise AuthenticationError("message is truncated in the body (the file shrank while it was read)")
        offset += n
        left -= n
    return True


def _by_copy_file_range(src_fd: int, dst_fd: int, offset: int, count: int) -> int:
    return os.copy_file_range(src_fd, dst_fd, count, offset)


def _by_sendfile(src_fd: int, dst_fd: int, offset: int, count: int) -> int:
    return os.sendfile(dst_fd, src_fd, offset, count)


class _Reader:
    """Exact reads from a binary file object (fewer bytes only at its end), after ``prefix``:
    bytes already read from it."""

    def __init__(self, file: Any, prefix: bytes = b"") -> None:
        self._file = file
        self._prefix = prefix

    def read(self, n: int) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            return data + self.read(n - len(data)) if len(data) < n else data
        data = self._file.read(n)
        if isinstance(data, str):
            raise TypeError("source must be opened in binary mode")
        if len(data) == n or not data:
            return bytes(data)
        parts = [data]
        got = len(data)
        while got < n:
            more = self._file.read(n - got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)


def _to_path(src: Any, destination: str, decryptor: MessageDecryptor, manager: MaterialsManager,
             plan: _Plan) -> Header:
    """Write through an `AtomicOutput` that replaces ``destination`` once complete (the source
    may be the destination itself: it is read whole before the new file takes its name)."""
    with AtomicOutput(destination, overwrite=True) as out:
        header = _rewrap(src, out.file, decryptor, manager, plan, kernel_copy=True)
        out.commit()
    return header

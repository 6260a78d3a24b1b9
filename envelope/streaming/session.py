"""Turn the public keyword options into a ready MessageEncryptor / MessageDecryptor.

Shared by the sync and async drivers and the one-shot API so that every entry point applies the
same defaults, limits and policy checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Unpack

from ..errors import PolicyError
from ..format.context import ENVELOPE_PREFIX
from ..format.frozen import cheap_init
from ..format.header import DEFAULT_MAX_HEADER_LENGTH, Header
from ..format.suites import AlgorithmSuite, CommitmentPolicy
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from ..materials.default import DefaultMaterialsManager
from ..materials.materials import DecryptionMaterials, EncryptionMaterials, EncryptionRequest
from .compression import (
    COMPRESSION_KEY,
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_PIECE_SIZE,
    Compressor,
    Decompressor,
    compression_of,
    decompress_whole,
)
from .decryptor import MessageDecryptor
from .encryptor import MessageEncryptor
from .options import EncryptStreamOptions

__all__ = [
    "as_buffer",
    "DEFAULT_FRAME_LENGTH",
    "EncryptPlan",
    "EncryptSession",
    "OutputOptions",
    "authenticate_header",
    "new_decryptor",
    "new_encryptor",
    "plaintext_writer",
    "plan_encryption",
    "resolve_materials_manager",
    "start_encryption",
    "supply",
    "whole_plaintext",
]

_DEFAULT_POLICY = CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT  # what coerce(None) returns
# Chosen by measurement: the smallest frame as fast as the largest ones (bench/bench_frames.py: 256 KiB
# and 1 MiB frames stream at the same rate, file to file, on two CPUs and on one; the ~6 us of Python
# per frame is hidden behind the AES and I/O). Smaller frames cost less to reach at random: an
# unaligned ranged read opens one frame more than it returns, 256 KiB here rather than 1 MiB
# (bench/bench_messages.py; format-spec/operations.md §1). Memory stays a few frames (§11).
DEFAULT_FRAME_LENGTH = 256 * 1024


def resolve_materials_manager(keyring: Keyring | None, materials_manager: MaterialsManager | None) -> MaterialsManager:
    if (keyring is None) == (materials_manager is None):
        raise TypeError("pass exactly one of keyring= or materials_manager=")
    if materials_manager is not None:
        if not hasattr(materials_manager, "get_encryption_materials"):
            raise TypeError("materials_manager must implement get_encryption_materials and decrypt_materials")
        return materials_manager
    return DefaultMaterialsManager(keyring)  # type: ignore[arg-type]


def as_buffer(data: object, what: str) -> memoryview:
    """The bytes-like ``data`` as a flat byte view; TypeError (naming ``what``) for anything else."""
    if type(data) is bytes:
        return memoryview(data)  # already flat bytes (the usual one-shot input)
    if isinstance(data, str):
        raise TypeError(f"{what} must be bytes, not str (encode it first)")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes, bytearray or memoryview, not {type(data).__name__}")
    return memoryview(data).cast("B")


def _check_context(encryption_context: Mapping[str, str] | None) -> dict[str, str]:
    if encryption_context is None:
        return {}
    if not isinstance(encryption_context, Mapping):
        raise TypeError("encryption_context must be a mapping of str to str")
    for key, value in encryption_context.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("encryption context keys and values must be str")
    return dict(encryption_context)


@dataclass(slots=True, weakref_slot=True)  # weakref: the leak tests watch every session
class EncryptSession:
    """A started message: the sans-IO encryptor and, if asked for, the zstd compressor before it."""

    encryptor: MessageEncryptor
    compressor: Compressor | None = None
    plaintext_length: int | None = None  # declared up front; more input is refused
    consumed: int = 0

    def count(self, n: int) -> None:
        """Refuse input beyond the declared plaintext length: a cached data key's byte limit
        relies on it (format-spec §9)."""
        self.consumed += n
        if self.plaintext_length is not None and self.consumed > self.plaintext_length:
            raise ValueError(f"more plaintext than the declared plaintext_length={self.plaintext_length}")

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        self.count(len(data))
        if self.compressor is not None:
            data = self.compressor.compress(data)
        return self.encryptor.update(data)

    def seal_whole(self, data: bytes | bytearray | memoryview) -> bytes:
        """The whole message for a plaintext given at once (the one-shot encrypts), in place of
        `update` and `finalize`."""
        self.count(len(data))
        if self.compressor is not None:
            # zstd's one-shot call: faster than the streaming object, and the frame declares its
            # size, which lets the one-shot decrypt decode it into one buffer (§8.2).
            data = self.compressor.compress_whole(data)
        if 0 < len(data) <= self.encryptor.frame_length:
            # One final frame: the header and that frame, no frame buffering (format-spec §5.4).
            return self.encryptor.encrypt_whole(data)
        return self.encryptor.update(data) + self.encryptor.finalize()

    def finalize(self) -> bytes:
        out = b""
        if self.compressor is not None:
            out = self.encryptor.update(self.compressor.flush())
        return out + self.encryptor.finalize()


@cheap_init
@dataclass(frozen=True, slots=True)
class EncryptPlan:
    """Validated encrypt options: the request for a materials manager, and how to start the
    message from the materials it returns (`start_encryption`)."""

    request: EncryptionRequest
    frame_length: int
    max_encrypted_data_keys: int | None = None
    compression_level: int | None = None  # zstd level; None: no compression


def plan_encryption(*, encryption_context: Mapping[str, str] | None = None,
                    algorithm: AlgorithmSuite | str | int | None = None, frame_length: int | None = None,
                    commitment_policy: CommitmentPolicy | str | None = None,
                    max_encrypted_data_keys: int | None = None,
                    compression: str | None = None, compression_level: int | None = None,
                    plaintext_length: int | None = None) -> EncryptPlan:
    """Validate the encrypt options and build the materials request; no keyring is called.

    :raises TypeError, ValueError: the options are misused (as for `envelope.encrypt`).
    """
    # (Calls through an Enum class cost more than the checks they make: skipped for the defaults.)
    policy = CommitmentPolicy.coerce(commitment_policy) if commitment_policy is not None else _DEFAULT_POLICY
    suite = AlgorithmSuite.coerce(algorithm) if algorithm is not None else None
    if frame_length is None:
        frame_length = DEFAULT_FRAME_LENGTH
    if isinstance(frame_length, bool) or not isinstance(frame_length, int):
        raise TypeError("frame_length must be an int")
    if not 0 <= frame_length <= 0xFFFFFFFF:
        raise ValueError("frame_length must be 1 .. 2**32-1 (or 0 for the legacy non-framed body)")
    if max_encrypted_data_keys is not None and max_encrypted_data_keys < 1:
        raise ValueError("max_encrypted_data_keys must be at least 1")
    context = _check_context(encryption_context) if encryption_context is not None else {}
    for key in context:
        if key.startswith(ENVELOPE_PREFIX):
            raise ValueError(f"encryption context key {key!r} uses the prefix {ENVELOPE_PREFIX!r}, "
                             "which envelope reserves for its own extensions")
    level = None
    if compression is not None:
        if compression != "zstd":
            raise ValueError(f"unknown compression {compression!r}; the only one is 'zstd'")
        level = 3 if compression_level is None else compression_level
        context[COMPRESSION_KEY] = compression
        plaintext_length = None  # the compressed length is not known in advance
    elif compression_level is not None:
        raise ValueError("compression_level needs compression='zstd'")
    request = EncryptionRequest(context, policy, suite, plaintext_length)
    return EncryptPlan(request, frame_length, max_encrypted_data_keys, level)


def start_encryption(plan: EncryptPlan, materials: EncryptionMaterials) -> EncryptSession:
    """Start the message from the materials a manager returned for ``plan.request``.

    :raises PolicyError: the materials break the commitment policy or the EDK limit.
    """
    policy = plan.request.commitment_policy
    if not policy.allows_encrypt(materials.algorithm):
        raise PolicyError(f"the materials manager chose {materials.algorithm.name}, "
                          f"which commitment policy {policy.name} forbids")
    limit = plan.max_encrypted_data_keys
    if limit is not None and len(materials.encrypted_data_keys) > limit:
        raise PolicyError(f"{len(materials.encrypted_data_keys)} encrypted data keys exceed "
                          f"max_encrypted_data_keys={limit}")
    # A new compressor per message: the plan may start several.
    compressor = Compressor(plan.compression_level) if plan.compression_level is not None else None
    return EncryptSession(MessageEncryptor(materials, plan.frame_length), compressor, plan.request.plaintext_length)


def new_encryptor(*, keyring: Keyring | None = None, materials_manager: MaterialsManager | None = None,
                  **options: Unpack[EncryptStreamOptions]) -> EncryptSession:
    """Get encryption materials and start a message (this is where the keyring is called).

    ``options`` are `plan_encryption`'s. The same as `plan_encryption`, the manager's
    ``get_encryption_materials``, then `start_encryption`; a driver that awaits the materials
    call uses those three itself.
    """
    manager = resolve_materials_manager(keyring, materials_manager)
    plan = plan_encryption(**options)
    return start_encryption(plan, manager.get_encryption_materials(plan.request))


def new_decryptor(*, encryption_context: Mapping[str, str] | None = None,
                  commitment_policy: CommitmentPolicy | str | None = None,
                  max_encrypted_data_keys: int | None = None, allow_signed: bool = True,
                  max_header_length: int = DEFAULT_MAX_HEADER_LENGTH, decompress: bool = True, max_decompressed_size: int | None = None,
                  max_compression_ratio: float | None = DEFAULT_MAX_COMPRESSION_RATIO,
                  ) -> tuple[MessageDecryptor, OutputOptions]:
    decryptor = MessageDecryptor(
        commitment_policy=CommitmentPolicy.coerce(commitment_policy) if commitment_policy is not None else _DEFAULT_POLICY,
        encryption_context=_check_context(encryption_context) if encryption_context else None,
        max_encrypted_data_keys=max_encrypted_data_keys, allow_signed=allow_signed,
        max_header_length=max_header_length)
    if decompress and max_decompressed_size is None and max_compression_ratio == DEFAULT_MAX_COMPRESSION_RATIO:
        return decryptor, _DEFAULT_OUTPUT  # shared: one object fewer per message
    return decryptor, OutputOptions(decompress, max_decompressed_size, max_compression_ratio)


def authenticate_header(decryptor: MessageDecryptor, materials: DecryptionMaterials) -> Header:
    """Give the decryptor the materials obtained for its ``request``; return the header they
    authenticated.

    :raises AuthenticationError: the data key or the encryption context does not fit the message.
    """
    decryptor.supply_materials(materials)
    header = decryptor.header
    if header is None:  # pragma: no cover
        raise RuntimeError("envelope: internal error: header missing after materials")
    return header


def supply(decryptor: MessageDecryptor, manager: MaterialsManager) -> Header:
    """Ask the materials manager for the data key and authenticate the header with it.

    A manager's error fails the decryptor too (it stays failed, as for its own errors)."""
    request = decryptor.request
    if request is None:  # pragma: no cover
        raise RuntimeError("envelope: internal error: materials requested before the header")
    try:
        materials = manager.decrypt_materials(request)
    except Exception as exc:
        decryptor.failure.trip(exc)
        raise
    return authenticate_header(decryptor, materials)


@dataclass(frozen=True, slots=True)
class OutputOptions:
    """What decrypt does with authenticated plaintext of a compressed message (§8.2)."""

    decompress: bool = True
    max_decompressed_size: int | None = None
    max_compression_ratio: float | None = DEFAULT_MAX_COMPRESSION_RATIO


def plaintext_writer(header: Header, write: Callable[[bytes | memoryview], object], options: OutputOptions, *,
                     piece_size: int = DEFAULT_PIECE_SIZE,
                     ) -> tuple[Callable[[bytes | memoryview], object], Callable[[], None]]:
    """Return (write, finish) for the authenticated plaintext of a message with this header.

    Messages declaring zstd compression are decompressed on the way (unless the caller asked for
    the raw bytes), reaching ``write`` in pieces of at most ``piece_size`` bytes (a driver whose
    every write costs a thread hop may want bigger ones than the default, which suits file and
    memory sinks); ``finish`` checks the compressed stream ended cleanly.
    """
    if not options.decompress:
        return write, lambda: None  # the caller asked for the bytes as stored (§8.1 opt-out)
    compression = compression_of(header.encryption_context)
    if compression is None:
        return write, lambda: None
    decompressor = Decompressor(write, max_output=options.max_decompressed_size,
                                max_ratio=options.max_compression_ratio, piece_size=piece_size)
    return decompressor.write, decompressor.finish


_DEFAULT_OUTPUT = OutputOptions()


def whole_plaintext(header: Header, plaintext: bytes, options: OutputOptions) -> bytes:
    """The plaintext of a whole message as the caller receives it: decompressed if the message
    declares compression (§8.2), else as it is."""
    if not header.encryption_context or not options.decompress:
        # No context, so no extension: nothing to undo (the common small message); or the caller
        # asked for the bytes as stored (§8.1 opt-out), as `plaintext_writer` does.
        return plaintext
    if compression_of(header.encryption_context) is None:
        return plaintext
    # The plaintext is whole and authenticated: decode it at once (§8.2), with the bounds that
    # plaintext_writer's Decompressor applies.
    return decompress_whole(plaintext, max_output=options.max_decompressed_size,
                            max_ratio=options.max_compression_ratio)

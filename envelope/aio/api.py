"""One-shot async encrypt and decrypt of in-memory messages (mirrors of `envelope.encrypt`/`decrypt`)."""

from __future__ import annotations

from typing import Unpack

from ..format.header import Header
from ..keyrings.base import Keyring
from ..materials.base import MaterialsManager
from ..streaming.compression import COMPRESSION_KEY
from ..streaming.decryptor import MessageDecryptor
from ..streaming.options import ENCRYPT_OPTION_NAMES, DecryptOptions, EncryptOptions, check_options
from ..streaming.session import OutputOptions, as_buffer, new_decryptor, whole_plaintext
from .adapters import Buffer
from .materials import resolve, start_encryptor, supply_materials
from .offload import COMPRESS_WEIGHT, OFFLOAD_BYTES, SIGNED_WEIGHT, offload
from .protocols import AsyncKeyring, AsyncMaterialsManager

__all__ = ["decrypt", "encrypt"]


async def encrypt(plaintext: Buffer, *, keyring: AsyncKeyring | Keyring | None = None,
                  materials_manager: AsyncMaterialsManager | MaterialsManager | None = None,
                  **options: Unpack[EncryptOptions]) -> bytes:
    """Encrypt ``plaintext`` into one message; the async mirror of `envelope.encrypt`.

    Same options and result. A sync keyring or materials manager runs in a worker thread, an
    `AsyncKeyring`/`AsyncMaterialsManager` is awaited; large inputs and signatures are sealed in a
    worker thread so the event loop keeps running.

    :returns: the message bytes.
    """
    data = as_buffer(plaintext, "plaintext")
    check_options(ENCRYPT_OPTION_NAMES, options, "encrypt")  # no plaintext_length: it is len(plaintext)
    manager = resolve(keyring, materials_manager)
    session = await start_encryptor(manager, {**options, "plaintext_length": len(data)})
    signed = session.encryptor.header.algorithm.is_signing
    weight = COMPRESS_WEIGHT if session.compressor is not None else SIGNED_WEIGHT if signed else 1
    cost = len(data) * weight + (OFFLOAD_BYTES if signed else 0)  # an ECDSA signature is ~0.4 ms
    return await offload(cost, session.seal_whole, data)


def _open_all(decryptor: MessageDecryptor, header: Header, body: memoryview, options: OutputOptions) -> bytes:
    # The sync one-shot's path (envelope.api.decrypt): the rest of the message, then decompression.
    return whole_plaintext(header, decryptor.decrypt_rest(body), options)


async def decrypt(ciphertext: Buffer, *, keyring: AsyncKeyring | Keyring | None = None,
                  materials_manager: AsyncMaterialsManager | MaterialsManager | None = None,
                  **options: Unpack[DecryptOptions]) -> tuple[bytes, Header]:
    """Decrypt and authenticate one message; the async mirror of `envelope.decrypt`.

    Same options, result and errors. Nothing is returned unless the whole message verified.

    :returns: (plaintext, authenticated header).
    """
    data = as_buffer(ciphertext, "ciphertext")
    manager = resolve(keyring, materials_manager)
    decryptor, output_options = new_decryptor(**options)
    # Parse the header in place (as the sync one-shot does), so the body is not copied on the loop.
    start = decryptor.parse_whole_header(data)
    header = await supply_materials(decryptor, manager)
    body = data[start:]
    signed = header.algorithm.is_signing
    weight = COMPRESS_WEIGHT if COMPRESSION_KEY in header.encryption_context else \
        SIGNED_WEIGHT if signed else 1
    cost = len(body) * weight + (OFFLOAD_BYTES if signed else 0)  # ECDSA verify is ~0.7 ms
    plaintext = await offload(cost, _open_all, decryptor, header, body, output_options)
    return plaintext, header

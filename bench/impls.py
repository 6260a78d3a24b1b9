"""The implementations that bench_stream.py and test_bench.py time side by side, and the helpers
every bench script shares (sizes, scratch files, the fixed keys and suites).

Each entry builds, outside any timing, the closures to time: file-to-file stream encrypt and
decrypt (``kind="file"``), in-memory limits (``kind="memory"``) or 1 KiB one-shot messages
(``kind="message"``). Peers are imported lazily so that one child process pays only for its own.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KIB = 1024
MIB = 1024 * 1024
COPY_CHUNK = MIB  # the file-copy limit and every peer loop move 1 MiB per call
MESSAGE_SIZE = KIB

COMMIT = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"
SIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"  # the default suite of envelope and the ESDK

# Fixed benchmark key material: speed does not depend on key values, and a fixed key lets the
# pytest-benchmark file and the script share one setup.
WRAPPING_KEY = bytes(range(32))
AES_KEY = bytes(range(32, 64))

FileOp = Callable[[str, str], Any]
MemoryOp = Callable[[], Any]
MessageOps = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]


@dataclass(frozen=True)
class Impl:
    """One row of a table: how to build the operations to time and how to label them."""

    name: str
    label: str
    kind: str  # "file" | "memory" | "message"
    build: Callable[..., Any]
    group: str = ""


# -- limits --------------------------------------------------------------------------------------


def _aes_limit(chunk: int, into: bool) -> Callable[[memoryview], tuple[MemoryOp, MemoryOp]]:
    """AES-256-GCM over ``data`` in ``chunk``-sized calls, in memory (no framing, no I/O)."""

    def build(data: memoryview) -> tuple[MemoryOp, MemoryOp]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        aes = AESGCM(AES_KEY)
        offsets = range(0, len(data), chunk)
        # Sealed once, outside the timing, so the decrypt loop has real tags to check.
        sealed = [aes.encrypt(i.to_bytes(12, "big"), data[off:off + chunk], None) for i, off in enumerate(offsets)]
        out = bytearray(chunk + 16)
        out_view = memoryview(out)

        # Each op returns the plaintext bytes it covered, so a caller can check the chunking.
        if into:
            def encrypt() -> int:
                total = 0
                for i, off in enumerate(offsets):
                    piece = data[off:off + chunk]
                    total += aes.encrypt_into(i.to_bytes(12, "big"), piece, None, out_view[:len(piece) + 16]) - 16
                return total

            def decrypt() -> int:
                total = 0
                for i, ct in enumerate(sealed):
                    total += aes.decrypt_into(i.to_bytes(12, "big"), ct, None, out_view[:len(ct) - 16])
                return total
        else:
            def encrypt() -> int:
                total = 0
                for i, off in enumerate(offsets):
                    total += len(aes.encrypt(i.to_bytes(12, "big"), data[off:off + chunk], None)) - 16
                return total

            def decrypt() -> int:
                total = 0
                for i, ct in enumerate(sealed):
                    total += len(aes.decrypt(i.to_bytes(12, "big"), ct, None))
                return total

        return encrypt, decrypt

    return build


def _sha384_limit(data: memoryview) -> tuple[MemoryOp, MemoryOp]:
    """SHA-384 over ``data`` in 1 MiB updates: what a signed suite must hash at least once."""

    def digest() -> bytes:
        h = hashlib.sha384()
        for off in range(0, len(data), COPY_CHUNK):
            h.update(data[off:off + COPY_CHUNK])
        return h.digest()

    return digest, digest


def copy_file(src: str, dst: str) -> None:
    """The file-copy limit: a 1 MiB readinto/write loop with one reused buffer."""
    buf = bytearray(COPY_CHUNK)
    view = memoryview(buf)
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
        while True:
            n = fin.readinto(buf)
            if not n:
                break
            fout.write(view[:n])


def _copy_limit() -> tuple[FileOp, FileOp]:
    return copy_file, copy_file


# -- envelope ------------------------------------------------------------------------------------


def envelope_keyring() -> Any:
    import envelope

    return envelope.RawAESKeyring("bench", "key", WRAPPING_KEY)


def _envelope_options(algorithm: str | None, frame_length: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if algorithm is not None:
        options["algorithm"] = algorithm
    if frame_length is not None:
        options["frame_length"] = frame_length
    return options


def envelope_stream(algorithm: str | None, frame_length: int | None) -> Callable[[], tuple[FileOp, FileOp]]:
    """envelope.encrypt_stream / decrypt_stream over open files (None: envelope's default)."""

    def build() -> tuple[FileOp, FileOp]:
        import envelope

        keyring = envelope_keyring()
        options = _envelope_options(algorithm, frame_length)

        def encrypt(src: str, dst: str) -> None:
            with open(src, "rb") as fin, open(dst, "wb") as fout:
                envelope.encrypt_stream(fin, fout, keyring=keyring, **options)

        def decrypt(src: str, dst: str) -> None:
            with open(src, "rb") as fin, open(dst, "wb") as fout:
                envelope.decrypt_stream(fin, fout, keyring=keyring)

        return encrypt, decrypt

    return build


def envelope_message(algorithm: str | None) -> Callable[[], MessageOps]:
    def build() -> MessageOps:
        import envelope

        keyring = envelope_keyring()
        options = _envelope_options(algorithm, None)

        def encrypt(data: bytes) -> bytes:
            return envelope.encrypt(data, keyring=keyring, **options)

        def decrypt(ct: bytes) -> bytes:
            return envelope.decrypt(ct, keyring=keyring)[0]

        return encrypt, decrypt

    return build


# -- AWS Encryption SDK (aws-encryption-sdk from PyPI) ----------------------------------------


def esdk_client() -> Any:
    import aws_encryption_sdk
    from aws_encryption_sdk.identifiers import CommitmentPolicy

    return aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)


def esdk_master_key() -> Any:
    """A raw AES-256 master key: the master-key-provider API, the one the ESDK has without extras."""
    from aws_encryption_sdk.identifiers import EncryptionKeyType, WrappingAlgorithm
    from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
    from aws_encryption_sdk.key_providers.raw import RawMasterKey

    return RawMasterKey(provider_id="bench", key_id=b"key", wrapping_key=WrappingKey(
        wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
        wrapping_key=WRAPPING_KEY, wrapping_key_type=EncryptionKeyType.SYMMETRIC))


def esdk_keyring() -> Any:
    """A raw AES keyring from aws-cryptographic-material-providers (the ESDK's keyring API)."""
    from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders
    from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig
    from aws_cryptographic_material_providers.mpl.models import AesWrappingAlg, CreateRawAesKeyringInput

    mpl = AwsCryptographicMaterialProviders(config=MaterialProvidersConfig())
    return mpl.create_raw_aes_keyring(input=CreateRawAesKeyringInput(
        key_namespace="bench", key_name="key", wrapping_key=WRAPPING_KEY,
        wrapping_alg=AesWrappingAlg.ALG_AES256_GCM_IV12_TAG16))


def _esdk_options(algorithm: str | None, frame_length: int | None) -> dict[str, Any]:
    from aws_encryption_sdk.identifiers import Algorithm

    options: dict[str, Any] = {}
    if algorithm is not None:
        options["algorithm"] = Algorithm[algorithm]
    if frame_length is not None:
        options["frame_length"] = frame_length
    return options


def _drain(stream: Any, fout: Any) -> None:
    while True:
        chunk = stream.read(COPY_CHUNK)
        if not chunk:
            return
        fout.write(chunk)


def esdk_stream(algorithm: str | None, frame_length: int | None) -> Callable[[], tuple[FileOp, FileOp]]:
    """EncryptionSDKClient.stream over open files, read 1 MiB at a time (None: the ESDK default)."""

    def build() -> tuple[FileOp, FileOp]:
        client = esdk_client()
        key = esdk_master_key()
        options = _esdk_options(algorithm, frame_length)

        def encrypt(src: str, dst: str) -> None:
            with (open(src, "rb") as fin, open(dst, "wb") as fout,
                  client.stream(mode="e", source=fin, key_provider=key, **options) as stream):
                _drain(stream, fout)

        def decrypt(src: str, dst: str) -> None:
            with (open(src, "rb") as fin, open(dst, "wb") as fout,
                  client.stream(mode="d", source=fin, key_provider=key) as stream):
                _drain(stream, fout)

        return encrypt, decrypt

    return build


def esdk_message(algorithm: str | None, api: str) -> Callable[[], MessageOps]:
    def build() -> MessageOps:
        client = esdk_client()
        key: dict[str, Any] = {"keyring": esdk_keyring()} if api == "keyring" else {"key_provider": esdk_master_key()}
        options = _esdk_options(algorithm, None)

        def encrypt(data: bytes) -> bytes:
            return client.encrypt(source=data, **key, **options)[0]  # type: ignore[no-any-return]

        def decrypt(ct: bytes) -> bytes:
            return client.decrypt(source=ct, **key)[0]  # type: ignore[no-any-return]

        return encrypt, decrypt

    return build


# -- Tink and age ------------------------------------------------------------------------------


def tink_stream() -> tuple[FileOp, FileOp]:
    """Tink streaming AEAD, AES256_GCM_HKDF_1MB, driven with 1 MiB writes and reads."""
    import tink
    from tink import streaming_aead

    streaming_aead.register()  # Tink's own registration step; nothing to do with envelope
    handle = tink.new_keyset_handle(streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB)
    primitive = handle.primitive(streaming_aead.StreamingAead)
    aad = b"bench"

    def encrypt(src: str, dst: str) -> None:
        buf = bytearray(COPY_CHUNK)
        view = memoryview(buf)
        with open(src, "rb", buffering=0) as fin, primitive.new_encrypting_stream(open(dst, "wb"), aad) as enc:
            while True:
                n = fin.readinto(buf)
                if not n:
                    break
                enc.write(view[:n])

    def decrypt(src: str, dst: str) -> None:
        with primitive.new_decrypting_stream(open(src, "rb"), aad) as dec, open(dst, "wb") as fout:
            _drain(dec, fout)

    return encrypt, decrypt


def age_identity() -> tuple[Any, Any]:
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    return identity, identity.to_public()


def age_stream(api: str) -> Callable[[], tuple[FileOp, FileOp]]:
    """age (rage, via pyrage): ``encrypt_file`` paths (Rust does the I/O) or ``encrypt_io`` file objects."""

    def build() -> tuple[FileOp, FileOp]:
        import pyrage

        identity, recipient = age_identity()
        if api == "file":
            def encrypt(src: str, dst: str) -> None:
                pyrage.encrypt_file(src, dst, [recipient])

            def decrypt(src: str, dst: str) -> None:
                pyrage.decrypt_file(src, dst, [identity])
        else:
            def encrypt(src: str, dst: str) -> None:
                with open(src, "rb") as fin, open(dst, "wb") as fout:
                    pyrage.encrypt_io(fin, fout, [recipient])

            def decrypt(src: str, dst: str) -> None:
                with open(src, "rb") as fin, open(dst, "wb") as fout:
                    pyrage.decrypt_io(fin, fout, [identity])
        return encrypt, decrypt

    return build


def age_message() -> MessageOps:
    import pyrage

    identity, recipient = age_identity()
    return (lambda data: pyrage.encrypt(data, [recipient]), lambda ct: pyrage.decrypt(ct, [identity]))


def aes_message() -> MessageOps:
    """One AESGCM call per 1 KiB message with a fixed nonce: the per-call limit, not a format."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes = AESGCM(AES_KEY)
    nonce = bytes(12)
    return (lambda data: aes.encrypt(nonce, data, None), lambda ct: aes.decrypt(nonce, ct, None))


# -- the registry ----------------------------------------------------------------------------------


def default_frame_length() -> int:
    from envelope.streaming.session import DEFAULT_FRAME_LENGTH

    return DEFAULT_FRAME_LENGTH


def size_label(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB and n % MIB == 0 else f"{n // KIB} KiB"


SWEEP_FRAMES = (16 * KIB, 64 * KIB, 256 * KIB, MIB, 4 * MIB)


def registry() -> dict[str, Impl]:
    """Every row, by name; the order is the order of the printed tables."""
    frame = f"default frame {size_label(default_frame_length())}"
    rows = [
        Impl("limit-aes-into-64k", "limit: AESGCM encrypt_into, 64 KiB calls", "memory", _aes_limit(64 * KIB, True), "limit"),
        Impl("limit-aes-into-256k", "limit: AESGCM encrypt_into, 256 KiB calls", "memory", _aes_limit(256 * KIB, True), "limit"),
        Impl("limit-aes-into-1m", "limit: AESGCM encrypt_into, 1 MiB calls", "memory", _aes_limit(MIB, True), "limit"),
        Impl("limit-aes-64k", "limit: AESGCM encrypt(), 64 KiB calls", "memory", _aes_limit(64 * KIB, False), "limit"),
        Impl("limit-aes-1m", "limit: AESGCM encrypt(), 1 MiB calls", "memory", _aes_limit(MIB, False), "limit"),
        Impl("limit-copy", "limit: file copy, 1 MiB readinto/write", "file", _copy_limit, "limit"),
        Impl("limit-sha384", "limit: hashlib SHA-384, 1 MiB updates", "memory", _sha384_limit, "limit"),
        Impl("envelope-commit", f"envelope, unsigned committing, {frame}", "file", envelope_stream(COMMIT, None), "envelope"),
        Impl("envelope-commit-64k", "envelope, unsigned committing, frame 64 KiB", "file",
             envelope_stream(COMMIT, 64 * KIB), "envelope"),
        Impl("envelope-signed", f"envelope, signed default suite, {frame}", "file", envelope_stream(None, None), "envelope"),
        Impl("envelope-signed-64k", "envelope, signed default suite, frame 64 KiB", "file",
             envelope_stream(None, 64 * KIB), "envelope"),
        Impl("esdk-default", "ESDK 4.x defaults (signed, frame 4 KiB)", "file", esdk_stream(None, None), "peer"),
        Impl("esdk-signed-64k", "ESDK 4.x signed, frame 64 KiB", "file", esdk_stream(SIGNED, 64 * KIB), "peer"),
        Impl("esdk-commit-64k", "ESDK 4.x unsigned committing, frame 64 KiB", "file", esdk_stream(COMMIT, 64 * KIB), "peer"),
        Impl("esdk-commit-same", f"ESDK 4.x unsigned committing, envelope's {frame}", "file",
             esdk_stream(COMMIT, default_frame_length()), "peer"),
        Impl("tink", "Tink streaming AEAD AES256_GCM_HKDF_1MB", "file", tink_stream, "peer"),
        Impl("age-file", "age via pyrage, file API (encrypt_file)", "file", age_stream("file"), "peer"),
        Impl("age-io", "age via pyrage, file-object API (encrypt_io)", "file", age_stream("io"), "peer"),
        Impl("msg-limit-aes", "limit: one AESGCM call per message", "message", aes_message, "limit"),
        Impl("msg-envelope-commit", "envelope, unsigned committing, raw AES keyring", "message",
             envelope_message(COMMIT), "envelope"),
        Impl("msg-envelope-signed", "envelope, signed default suite, raw AES keyring", "message",
             envelope_message(None), "envelope"),
        Impl("msg-esdk-mkp-commit", "ESDK, master-key API, unsigned committing", "message",
             esdk_message(COMMIT, "master-key"), "peer"),
        Impl("msg-esdk-mkp-signed", "ESDK, master-key API, signed default suite", "message",
             esdk_message(None, "master-key"), "peer"),
        Impl("msg-esdk-keyring-commit", "ESDK, keyring API (MPL), unsigned committing", "message",
             esdk_message(COMMIT, "keyring"), "peer"),
        Impl("msg-esdk-keyring-signed", "ESDK, keyring API (MPL), signed default suite", "message",
             esdk_message(None, "keyring"), "peer"),
        Impl("msg-age", "age via pyrage, bytes API, X25519", "message", age_message, "peer"),
    ]
    rows += [Impl(f"sweep-{n}", f"envelope, unsigned committing, frame {size_label(n)}", "file",
                  envelope_stream(COMMIT, n), "sweep") for n in SWEEP_FRAMES]
    return {impl.name: impl for impl in rows}


# -- helpers shared by the bench scripts ---------------------------------------------------------

_SIZE = re.compile(r"\s*(\d+)\s*([kKmMgG]?)i?[bB]?\s*")


def parse_size(text: str) -> int:
    """``256M``, ``64K``, ``1GiB`` or a plain byte count (an argparse ``type=``)."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 256M, 1G, 64K)")
    return int(match.group(1)) * {"": 1, "k": KIB, "m": MIB, "g": 1024 * MIB}[match.group(2).lower()]


def tmpfs_dir(need: int) -> str | None:
    """``/dev/shm`` if it exists with ``need`` bytes free, else None (the system's temp directory).

    tmpfs keeps the disk's own erratic write times out of the numbers.
    """
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and shutil.disk_usage(shm).free > need else None


def random_file(path: str, size: int) -> None:
    """Write ``size`` random bytes (incompressible, so no format gains from its input)."""
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 * MIB)
            f.write(os.urandom(n))
            left -= n


def calls_per_cpu_second(op: Callable[[], object], seconds: float, batch: int = 50) -> float:
    """Calls per CPU second of ``op()``, for about ``seconds`` of this process's CPU time (in
    batches of ``batch`` calls, so the clock is read rarely)."""
    count = 0
    start = time.process_time()
    while True:
        for _ in range(batch):
            op()
        count += batch
        spent = time.process_time() - start
        if spent >= seconds:
            return count / spent


def same_content(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(COPY_CHUNK), fb.read(COPY_CHUNK)
            if x != y:
                return False
            if not x:
                return True

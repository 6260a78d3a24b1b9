"""Operations on messages (issue 15): ranged decryption and rewrap, side by side with their bounds.

Run: ``.venv/bin/python bench/bench_messages.py --size 4G --rewrap-size 1G --rounds 3 [--frames 1M,64K]``.

- ``decrypt_range`` of 1 MiB from the middle of a ``--size`` message (frame-aligned and not)
  beside ``envelope.decrypt`` of a 1 MiB message: same keyring, suite and frame length; the bytes
  each range read are counted and printed.
- ``rewrap`` of an unsigned ``--rewrap-size`` message file to a file, beside a plain file copy
  (impls.copy_file) of the same file; and of a signed one beside hashlib SHA-384 over the same
  bytes (rewrap of a signed message hashes them for the old signature and the new one).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import impls
from impls import MIB, parse_size, size_label, tmpfs_dir

import envelope

UNSIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"
SIGNED = "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"


def _time(fn: Callable[[], object], rounds: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _encrypt_file(path: str, size: int, algorithm: str, keyring: Any, frame_length: int = MIB) -> str:
    plain = path + ".plain"
    impls.random_file(plain, size)
    with open(plain, "rb") as src, open(path, "wb") as dst:
        envelope.encrypt_stream(src, dst, keyring=keyring, algorithm=algorithm, frame_length=frame_length)
    os.unlink(plain)
    return path


class _Counting:
    """A seekable file without a descriptor (so reads go through read()), counting the bytes read."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.read_bytes = 0

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self.read_bytes += len(data)
        return data

    def close(self) -> None:
        self._file.close()


def bench_ranges(directory: str, size: int, rounds: int, keyring: Any, frame: int) -> None:
    path = _encrypt_file(os.path.join(directory, "big.envelope"), size, UNSIGNED, keyring, frame)
    small = envelope.encrypt(os.urandom(MIB), keyring=keyring, algorithm=UNSIGNED, frame_length=frame)
    middle = (size // 2) // frame * frame
    small_path = os.path.join(directory, "small.envelope")
    with open(small_path, "wb") as file:
        file.write(small)

    def whole_file() -> bytes:
        with open(small_path, "rb") as file:
            return envelope.decrypt(file.read(), keyring=keyring)[0]

    in_memory = _time(lambda: envelope.decrypt(small, keyring=keyring), rounds)
    whole = _time(whole_file, rounds)
    print(f"message {size_label(size)}, frames of {size_label(frame)}, median of {rounds}")
    print(f"  {'read + decrypt a 1 MiB message file':<40} {whole * 1e3:8.2f} ms   1.00x")
    print(f"  {'decrypt a 1 MiB message in memory':<40} {in_memory * 1e3:8.2f} ms   {in_memory / whole:.2f}x")
    for label, offset in (("decrypt_range 1 MiB, frame-aligned", middle), ("decrypt_range 1 MiB, unaligned",
                                                                           middle + frame // 2)):
        def one(offset: int = offset) -> bytes:
            with open(path, "rb") as file:
                return envelope.decrypt_range(file, offset, MIB, keyring=keyring)

        seconds = _time(one, rounds)
        counting = _Counting(path)
        envelope.decrypt_range(counting, offset, MIB, keyring=keyring)
        counting.close()
        print(f"  {label:<40} {seconds * 1e3:8.2f} ms   {seconds / whole:.2f}x   "
              f"read {counting.read_bytes:,} of {os.path.getsize(path):,} bytes")
    os.unlink(path)


def bench_rewrap(directory: str, size: int, rounds: int, keyring: Any, new_keyring: Any) -> None:
    print(f"rewrap of a {size_label(size)} message, median of {rounds} (ratio: throughput against the bound)")
    unsigned = _encrypt_file(os.path.join(directory, "u.envelope"), size, UNSIGNED, keyring)
    signed = _encrypt_file(os.path.join(directory, "s.envelope"), size, SIGNED, keyring)
    out = os.path.join(directory, "out.envelope")
    copy = _time(lambda: impls.copy_file(unsigned, out), rounds)
    rewrap_u = _time(lambda: envelope.rewrap(unsigned, out, keyring=keyring, new_keyring=new_keyring), rounds)

    def sha384() -> bytes:
        digest = hashlib.sha384()
        with open(signed, "rb", buffering=0) as file:
            while chunk := file.read(MIB):
                digest.update(chunk)
        return digest.digest()

    sha = _time(sha384, rounds)
    rewrap_s = _time(lambda: envelope.rewrap(signed, out, keyring=keyring, new_keyring=new_keyring), rounds)
    rate = size / MIB
    print(f"  {'file copy (1 MiB readinto/write)':<40} {rate / copy:8.0f} MiB/s")
    print(f"  {'rewrap, unsigned':<40} {rate / rewrap_u:8.0f} MiB/s   {copy / rewrap_u:.2f}x copy")
    print(f"  {'hashlib SHA-384 of the file':<40} {rate / sha:8.0f} MiB/s")
    print(f"  {'rewrap, signed':<40} {rate / rewrap_s:8.0f} MiB/s   {sha / rewrap_s:.2f}x SHA-384")
    for path in (unsigned, signed, out):
        os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=parse_size("4G"), help="ranged: message size (4G)")
    parser.add_argument("--rewrap-size", type=parse_size, default=parse_size("1G"), help="rewrap: message size (1G)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["ranges", "rewrap"])
    parser.add_argument("--frames", default="256K,1M",
                        help="ranged: frame lengths, comma-separated (256K: the default frame length; an unaligned "
                             "range opens one frame more than it returns, so its cost grows with the frame)")
    parser.add_argument("--tmpdir", help="where the messages go (default: /dev/shm when it has room)")
    args = parser.parse_args(argv)
    keyring = impls.envelope_keyring()
    new_keyring = envelope.RawAESKeyring("bench", "new-key", bytes(range(32)))
    need = max(args.size, 3 * args.rewrap_size) + 64 * MIB
    with tempfile.TemporaryDirectory(dir=args.tmpdir or tmpfs_dir(need)) as directory:
        if args.only != "rewrap":
            for frame in args.frames.split(","):
                bench_ranges(directory, args.size, args.rounds, keyring, parse_size(frame))
        if args.only != "ranges":
            bench_rewrap(directory, args.rewrap_size, args.rounds, keyring, new_keyring)
    return 0


if __name__ == "__main__":
    sys.exit(main())

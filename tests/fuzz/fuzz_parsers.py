"""Coverage-guided fuzzing of the parsers and the streaming decryptor with atheris (not run by pytest).

Only EnvelopeError (and, from parse_header, Incomplete) may escape; anything else is a crash.

Run (atheris is not a project dependency; it needs a Linux x86-64 wheel or clang with libFuzzer):

    .venv/bin/python -m pip install -e ".[fuzz]"
    mkdir -p /tmp/fuzz-corpus
    .venv/bin/python tests/fuzz/fuzz_parsers.py --seed-corpus /tmp/fuzz-corpus   # write valid messages
    .venv/bin/python tests/fuzz/fuzz_parsers.py /tmp/fuzz-corpus -max_len=4096 -timeout=10 -rss_limit_mb=2048

Other libFuzzer flags work as usual (``-runs=N``, ``-jobs=2``, ``-max_total_time=600``); a crash
is saved as ``crash-<sha1>`` and replays with ``fuzz_parsers.py crash-<sha1>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

with atheris.instrument_imports(include=["envelope"]):
    import envelope
    from envelope.errors import EnvelopeError
    from envelope.format.context import parse_context
    from envelope.format.header import parse_header
    from envelope.format.reader import Incomplete
    from envelope.format.suites import AlgorithmSuite, CommitmentPolicy
    from envelope.streaming.decryptor import MessageDecryptor

KEYRING = envelope.RawAESKeyring("fuzz-ns", "fuzz-key", bytes(range(32)))
MANAGER = envelope.DefaultMaterialsManager(KEYRING)


def _drive(data: bytes, chunk: int) -> None:
    decryptor = MessageDecryptor(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT,
                                 max_non_framed_length=1 << 20)
    for i in range(0, len(data), chunk):
        decryptor.update(data[i:i + chunk])
        if decryptor.needs_materials and decryptor.request is not None:
            decryptor.supply_materials(MANAGER.decrypt_materials(decryptor.request))
            decryptor.update(b"")
    decryptor.finalize()


def test_one_input(data: bytes) -> None:
    if not data:
        return
    selector, body = data[0], data[1:]
    try:
        parse_header(body, max_header_length=1 << 20)
    except (EnvelopeError, Incomplete):
        pass
    try:
        parse_context(body)
    except EnvelopeError:
        pass
    try:
        _drive(body, 1 + selector % 64)
    except EnvelopeError:
        pass


def write_seed_corpus(directory: Path) -> None:
    """Valid messages of every suite and layout: the fuzzer mutates from real structure."""
    directory.mkdir(parents=True, exist_ok=True)
    for suite in AlgorithmSuite:
        policy = "REQUIRE_ENCRYPT_ALLOW_DECRYPT" if suite.is_committing else "FORBID_ENCRYPT_ALLOW_DECRYPT"
        for frame_length, size in ((16, 40), (16, 0), (0, 20), (4, 9)):
            message = envelope.encrypt(bytes(range(size)), keyring=KEYRING, algorithm=suite,
                                       frame_length=frame_length, encryption_context={"a": "b", "ключ": "✓"},
                                       commitment_policy=policy)
            (directory / f"{suite.name}-F{frame_length}-{size}").write_bytes(b"\x07" + message)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--seed-corpus":
        write_seed_corpus(Path(sys.argv[2]))
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

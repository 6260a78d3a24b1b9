"""Public-key recipients (the age workflow): `envelope keygen`, and the --recipient / --identity key
flags as raw ECDH keyrings (ephemeral sender key to encrypt, discovery to decrypt).

Key files: the identity is an unencrypted PKCS #8 PEM private key (mode 0600); the recipient a PEM
SubjectPublicKeyInfo (DER is read too). The curve comes from the key, so no flag names it twice.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import envelope

from .exits import CLIError, ExitCode
from .headers import recipient_label

__all__ = ["CURVE_FLAGS", "add_parser", "ecdh_keyring", "run_keygen"]

# --curve values -> the curve names RawECDHKeyring takes; cryptography's names for reading key files.
CURVE_FLAGS = {"P-256": "ECC_NIST_P256", "P-384": "ECC_NIST_P384", "P-521": "ECC_NIST_P521"}
_CURVES: dict[str, ec.EllipticCurve] = {"ECC_NIST_P256": ec.SECP256R1(), "ECC_NIST_P384": ec.SECP384R1(),
                                        "ECC_NIST_P521": ec.SECP521R1()}
_BY_CRYPTOGRAPHY_NAME = {curve.name: name for name, curve in _CURVES.items()}
_MAX_KEY_FILE = 64 * 1024


def add_parser(sub: Any, epilog: str) -> None:
    parser = sub.add_parser(
        "keygen", help="make an EC key pair for --recipient / --identity",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog,
        description="Write a new EC key pair: the private key (the identity, PEM PKCS #8, mode 0600)\n"
                    "and its public key (the recipient, PEM), for `envelope encrypt --recipient PUB`\n"
                    "and `envelope decrypt --identity KEY`. Messages are raw ECDH (ESDK compatible).\n"
                    "Existing files are never overwritten.")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="private key file to create")
    parser.add_argument("--public-key-output", metavar="FILE",
                        help="public key file to create (default: FILE.pub)")
    parser.add_argument("--curve", choices=list(CURVE_FLAGS), default="P-256", help="default: P-256")
    parser.set_defaults(run=run_keygen)


def _create(path: str, data: bytes, mode: int) -> None:
    """Write ``data`` to a new file ``path`` atomically: complete or absent, never replacing one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".envelope-keygen-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fp:
            os.fchmod(fp.fileno(), mode)
            fp.write(data)
            fp.flush()
            os.fsync(fp.fileno())
        os.link(temporary, path)  # fails if path exists: no overwrite, no window
    except FileExistsError:
        raise CLIError(f"{path} already exists; keygen never overwrites a key", ExitCode.IO,
                       hint="choose another -o / --public-key-output, or remove the old file") from None
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror}", ExitCode.IO) from None
    finally:
        os.unlink(temporary)


def run_keygen(args: argparse.Namespace) -> int:
    public_path = args.public_key_output or args.output + ".pub"
    if os.path.abspath(public_path) == os.path.abspath(args.output):
        raise CLIError("the private and public key files must differ", ExitCode.USAGE)
    for path in (args.output, public_path):
        if os.path.lexists(path):
            raise CLIError(f"{path} already exists; keygen never overwrites a key", ExitCode.IO,
                           hint="choose another -o / --public-key-output, or remove the old file")
    key = ec.generate_private_key(_CURVES[CURVE_FLAGS[args.curve]])
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    _create(args.output, private_pem, 0o600)
    try:
        _create(public_path, public_pem, 0o644)
    except CLIError:
        os.unlink(args.output)  # both files or neither
        raise
    compressed = key.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.CompressedPoint)
    # The label `envelope inspect` shows for messages encrypted to this key.
    print(f"envelope: wrote private key {args.output} (keep it secret) and public key {public_path} "
          f"({args.curve}, {recipient_label(compressed)})", file=sys.stderr)
    return ExitCode.OK


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as fp:
            return fp.read(_MAX_KEY_FILE)
    except OSError as exc:
        raise CLIError(f"cannot read {what} {path}: {exc.strerror}", ExitCode.IO) from None


def _curve_of(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey, path: str) -> str:
    name = _BY_CRYPTOGRAPHY_NAME.get(key.curve.name)
    if name is None:
        raise CLIError(f"{path} is an EC key on {key.curve.name}; raw ECDH needs P-256, P-384 or P-521",
                       ExitCode.USAGE)
    return name


def ecdh_keyring(kind: str, path: str, decrypt: bool) -> tuple[Any, str]:
    """The keyring for ``--recipient PATH`` (kind ``recipient``) or ``--identity PATH`` (``identity``),
    and the key's description for metadata."""
    if kind == "recipient":
        if decrypt:
            raise CLIError(f"a recipient public key cannot decrypt ({path})", ExitCode.USAGE,
                           hint="pass the private key with --identity")
        data = _read(path, "recipient public key")
        try:
            public = (serialization.load_pem_public_key(data) if data.lstrip().startswith(b"-----BEGIN")
                      else serialization.load_der_public_key(data))
        except (ValueError, TypeError, UnsupportedAlgorithm):
            public = None
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise CLIError(f"{path} is not an EC public key (PEM or DER)", ExitCode.USAGE,
                           hint="make a key pair with: envelope keygen -o key.pem")
        curve = _curve_of(public, path)
        return envelope.RawECDHKeyring.ephemeral(data, curve), f"raw-ecdh:{path}"
    if not decrypt:
        raise CLIError(f"an identity is for decrypting ({path})", ExitCode.USAGE,
                       hint="encrypt to its public key with --recipient")
    data = _read(path, "identity")
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        private = None
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise CLIError(f"{path} is not an unencrypted EC private key PEM", ExitCode.USAGE,
                       hint="make a key pair with: envelope keygen -o key.pem")
    curve = _curve_of(private, path)
    return envelope.RawECDHKeyring.discovery(data, curve), f"raw-ecdh:{path}"

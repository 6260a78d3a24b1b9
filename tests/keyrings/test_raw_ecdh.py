"""Raw ECDH keyring: byte compatibility with the reference keyrings (the MPL, live, both directions),
the EDK layout (format-spec/raw-ecdh.md), and hostile keys and EDKs giving our errors.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from _mpl_helpers import (
    CURVES,
    EcKeys,
    mpl_decrypt,
    mpl_ecdh_discovery,
    mpl_ecdh_ephemeral,
    mpl_ecdh_static,
    mpl_encrypt,
)

import envelope
from envelope import (
    AlgorithmSuite,
    EncryptedDataKey,
    KeyringError,
    NoMatchingKeyError,
    RawECDHKeyring,
)
from envelope.keyrings.base import Keyring
from envelope.materials.materials import DecryptionMaterials, EncryptionMaterials

CONTEXT = {"tenant": "t-42", "purpose": "ecdh interop"}
# format-spec/raw-ecdh.md §1: compressed point lengths per curve.
COMPRESSED = {"ECC_NIST_P256": 33, "ECC_NIST_P384": 49, "ECC_NIST_P521": 67}
_: Keyring = RawECDHKeyring.ephemeral(EcKeys("ECC_NIST_P256").public_der)  # mypy checks the protocol

_KEYS: dict[tuple[str, str], EcKeys] = {}


def keys(curve: str, who: str) -> EcKeys:
    """One key pair per (curve, party) for the whole module: key generation is the slow part."""
    if (curve, who) not in _KEYS:
        _KEYS[curve, who] = EcKeys(curve)
    return _KEYS[curve, who]


# -- the oracle, both directions: every scheme x curve -------------------------------------------

# (name, MPL encrypting keyring, our decrypting keyrings) for messages the MPL makes.
MPL_TO_US: list[tuple[str, Any, Any]] = [
    ("static->discovery", lambda a, b: mpl_ecdh_static(a, b),
     lambda a, b: RawECDHKeyring.discovery(b.private_pem, b.curve)),
    ("static->static(recipient)", lambda a, b: mpl_ecdh_static(a, b),
     lambda a, b: RawECDHKeyring.static(b.private_pem, a.public_der, b.curve)),
    ("static->static(sender)", lambda a, b: mpl_ecdh_static(a, b),
     lambda a, b: RawECDHKeyring.static(a.private_pem, b.public_pem, a.curve)),
    ("ephemeral->discovery", lambda a, b: mpl_ecdh_ephemeral(b),
     lambda a, b: RawECDHKeyring.discovery(b.private_pem, b.curve)),
]
US_TO_MPL: list[tuple[str, Any, Any]] = [
    ("static->discovery", lambda a, b: RawECDHKeyring.static(a.private_pem, b.public_der, a.curve),
     lambda a, b: mpl_ecdh_discovery(b)),
    ("static->static(recipient)", lambda a, b: RawECDHKeyring.static(a.private_pem, b.public_der, a.curve),
     lambda a, b: mpl_ecdh_static(b, a)),
    ("static->static(sender)", lambda a, b: RawECDHKeyring.static(a.private_pem, b.public_pem, a.curve),
     lambda a, b: mpl_ecdh_static(a, b)),
    ("ephemeral->discovery", lambda a, b: RawECDHKeyring.ephemeral(b.public_der, b.curve),
     lambda a, b: mpl_ecdh_discovery(b)),
]


@pytest.mark.parametrize("curve", list(CURVES))
@pytest.mark.parametrize(("name", "make_encryptor", "make_decryptor"), MPL_TO_US, ids=[c[0] for c in MPL_TO_US])
def test_we_decrypt_what_the_mpl_encrypted(curve: str, name: str, make_encryptor: Any, make_decryptor: Any) -> None:
    a, b = keys(curve, "alice"), keys(curve, "bob")
    plaintext = f"from the MPL, {name}".encode()
    message = mpl_encrypt(plaintext, make_encryptor(a, b), CONTEXT)
    out, header = envelope.decrypt(message, keyring=make_decryptor(a, b), encryption_context=CONTEXT)
    assert out == plaintext
    (edk,) = header.encrypted_data_keys
    assert edk.provider_id == "raw-ecdh"
    assert len(edk.ciphertext) == 112  # salt 32 || commitment 32 || wrapped key 32 || tag 16


@pytest.mark.parametrize("curve", list(CURVES))
@pytest.mark.parametrize(("name", "make_encryptor", "make_decryptor"), US_TO_MPL, ids=[c[0] for c in US_TO_MPL])
def test_the_mpl_decrypts_what_we_encrypted(curve: str, name: str, make_encryptor: Any, make_decryptor: Any) -> None:
    a, b = keys(curve, "alice"), keys(curve, "bob")
    plaintext = f"from envelope, {name}".encode()
    message = envelope.encrypt(plaintext, keyring=make_encryptor(a, b), encryption_context=CONTEXT)
    out, context = mpl_decrypt(message, make_decryptor(a, b))
    assert out == plaintext
    assert {k: context[k] for k in CONTEXT} == CONTEXT


@pytest.mark.parametrize("suite", [AlgorithmSuite.AES_128_GCM_IV12_TAG16_HKDF_SHA256,
                                   AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY],
                         ids=["128-bit-data-key", "unsigned-committing"])
def test_other_suites_interoperate(suite: AlgorithmSuite) -> None:
    # A 16-byte data key gives a 96-byte EDK ciphertext; both sides agree on it.
    a, b = keys("ECC_NIST_P256", "alice"), keys("ECC_NIST_P256", "bob")
    policy = (envelope.CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT if suite.is_committing
              else envelope.CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT)
    ours = envelope.encrypt(b"x", keyring=RawECDHKeyring.ephemeral(b.public_der), algorithm=suite,
                            commitment_policy=policy)
    assert len(envelope.read_header(ours).encrypted_data_keys[0].ciphertext) == 64 + suite.key_length + 16
    if suite.is_committing:  # the MPL client here requires commitment on decrypt
        assert mpl_decrypt(ours, mpl_ecdh_discovery(b))[0] == b"x"
    theirs = mpl_encrypt(b"y", mpl_ecdh_static(a, b), algorithm=AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY)
    assert envelope.decrypt(theirs, keyring=RawECDHKeyring.discovery(b.private_pem))[0] == b"y"


@pytest.mark.parametrize("curve", list(CURVES))
def test_provider_info_layout_matches_the_mpl(curve: str) -> None:
    # format-spec/raw-ecdh.md §2: 0x01 || u32 n || recipient || u32 n || sender, compressed points.
    a, b = keys(curve, "alice"), keys(curve, "bob")
    n = COMPRESSED[curve]
    expected = b"\x01" + n.to_bytes(4, "big") + b.compressed + n.to_bytes(4, "big") + a.compressed
    theirs = envelope.read_header(mpl_encrypt(b"", mpl_ecdh_static(a, b))).encrypted_data_keys[0]
    ours = envelope.read_header(envelope.encrypt(b"", keyring=RawECDHKeyring.static(
        a.private_pem, b.public_der, curve))).encrypted_data_keys[0]
    assert theirs.provider_info == ours.provider_info == expected
    assert len(expected) == {"ECC_NIST_P256": 75, "ECC_NIST_P384": 107, "ECC_NIST_P521": 143}[curve]
    assert theirs.provider_id == ours.provider_id == "raw-ecdh"


def test_ephemeral_uses_a_fresh_sender_key_per_message() -> None:
    b = keys("ECC_NIST_P256", "bob")
    keyring = RawECDHKeyring.ephemeral(b.public_pem)
    infos = {envelope.read_header(envelope.encrypt(b"m", keyring=keyring)).encrypted_data_keys[0].provider_info
             for _ in range(3)}
    assert len(infos) == 3


def test_several_recipients_through_a_multi_keyring() -> None:
    b, c = keys("ECC_NIST_P256", "bob"), keys("ECC_NIST_P384", "carol")
    multi = envelope.MultiKeyring(generator=RawECDHKeyring.ephemeral(b.public_der),
                                  children=[RawECDHKeyring.ephemeral(c.public_der, "ECC_NIST_P384")])
    message = envelope.encrypt(b"both", keyring=multi)
    assert envelope.decrypt(message, keyring=RawECDHKeyring.discovery(c.private_pem, "ECC_NIST_P384"))[0] == b"both"
    assert mpl_decrypt(message, mpl_ecdh_discovery(b))[0] == b"both"


# -- misuse ----------------------------------------------------------------------------------

def test_discovery_cannot_encrypt_and_ephemeral_cannot_decrypt() -> None:
    b = keys("ECC_NIST_P256", "bob")
    with pytest.raises(KeyringError, match="only decrypts"):
        envelope.encrypt(b"x", keyring=RawECDHKeyring.discovery(b.private_pem))
    message = envelope.encrypt(b"x", keyring=RawECDHKeyring.ephemeral(b.public_der))
    with pytest.raises(NoMatchingKeyError, match="only encrypts"):
        envelope.decrypt(message, keyring=RawECDHKeyring.ephemeral(b.public_der))


def _infinity_spki(template: bytes) -> bytes:
    """A P-256 SubjectPublicKeyInfo whose point is the point at infinity (the single byte 0x00)."""
    algorithm_id = template[2:2 + 2 + template[3]]
    body = algorithm_id + b"\x03\x02\x00\x00"
    return b"\x30" + bytes((len(body),)) + body


def _off_curve_spki(template: bytes) -> bytes:
    return template[:-1] + bytes((template[-1] ^ 1,))  # y changed: (x, y') is not on the curve


BAD_KEYS: list[tuple[str, Any]] = [
    ("unknown-curve", lambda a, b: RawECDHKeyring.ephemeral(b.public_der, "ECC_SECG_P256K1")),
    ("wrong-curve-public", lambda a, b: RawECDHKeyring.ephemeral(keys("ECC_NIST_P384", "bob").public_der)),
    ("wrong-curve-private", lambda a, b: RawECDHKeyring.discovery(keys("ECC_NIST_P521", "bob").private_pem)),
    ("curves-disagree", lambda a, b: RawECDHKeyring.static(a.private_pem, keys("ECC_NIST_P384", "bob").public_der)),
    ("off-curve", lambda a, b: RawECDHKeyring.ephemeral(_off_curve_spki(b.public_der))),
    ("point-at-infinity", lambda a, b: RawECDHKeyring.ephemeral(_infinity_spki(b.public_der))),
    ("truncated-public", lambda a, b: RawECDHKeyring.ephemeral(b.public_der[:-5])),
    ("truncated-private", lambda a, b: RawECDHKeyring.discovery(b.private_pem[:100])),
    ("private-as-public", lambda a, b: RawECDHKeyring.ephemeral(b.private_pem)),
    ("public-as-private", lambda a, b: RawECDHKeyring.discovery(b.public_pem)),
    ("rsa-key", lambda a, b: RawECDHKeyring.discovery(_rsa_pem())),
]


def _rsa_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.mark.parametrize("make", [m for _, m in BAD_KEYS], ids=[n for n, _ in BAD_KEYS])
def test_bad_keys_are_value_errors(make: Any) -> None:
    with pytest.raises(ValueError):
        make(keys("ECC_NIST_P256", "alice"), keys("ECC_NIST_P256", "bob"))


# -- hostile EDKs: always NoMatchingKeyError, with a reason ------------------------------------

SUITE = AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384


def _edk(curve: str = "ECC_NIST_P256") -> tuple[EncryptedDataKey, bytes]:
    a, b = keys(curve, "alice"), keys(curve, "bob")
    materials = RawECDHKeyring.static(a.private_pem, b.public_der, curve).on_encrypt(
        EncryptionMaterials(SUITE, CONTEXT))
    assert materials.plaintext_data_key is not None
    return materials.encrypted_data_keys[0], materials.plaintext_data_key


def _unwrap(keyring: RawECDHKeyring, edk: EncryptedDataKey, context: dict[str, str] = CONTEXT) -> bytes | None:
    return keyring.on_decrypt(DecryptionMaterials(SUITE, context), [edk]).plaintext_data_key


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes((data[index] ^ 0x01,)) + data[index + 1:]


def test_keyring_level_round_trip() -> None:
    edk, data_key = _edk()
    assert _unwrap(RawECDHKeyring.discovery(keys("ECC_NIST_P256", "bob").private_pem), edk) == data_key


CIPHERTEXT_FLIPS = {"salt": 0, "commitment": 40, "wrapped-key": 70, "tag": 111}


@pytest.mark.parametrize("offset", list(CIPHERTEXT_FLIPS.values()), ids=list(CIPHERTEXT_FLIPS))
def test_tampered_ciphertext(offset: int) -> None:
    edk, _ = _edk()
    bad = dataclasses.replace(edk, ciphertext=_flip(edk.ciphertext, offset))
    with pytest.raises(NoMatchingKeyError, match="did not unwrap"):
        _unwrap(RawECDHKeyring.discovery(keys("ECC_NIST_P256", "bob").private_pem), bad)


@pytest.mark.parametrize("length", [0, 111, 113])
def test_wrong_length_ciphertext(length: int) -> None:
    edk, _ = _edk()
    bad = dataclasses.replace(edk, ciphertext=(edk.ciphertext * 2)[:length])
    with pytest.raises(NoMatchingKeyError, match="wrong length"):
        _unwrap(RawECDHKeyring.discovery(keys("ECC_NIST_P256", "bob").private_pem), bad)


def test_different_context_fails_the_commitment() -> None:
    edk, _ = _edk()
    with pytest.raises(NoMatchingKeyError, match="commitment"):
        _unwrap(RawECDHKeyring.discovery(keys("ECC_NIST_P256", "bob").private_pem), edk, {"tenant": "other"})


def test_tampered_sender_key_in_provider_info() -> None:
    # Another valid sender point: the ECDH secret and the fixed info change, so nothing unwraps;
    # a sender x with no point on the curve is refused before any ECDH.
    edk, _ = _edk()
    info = edk.provider_info
    bob = RawECDHKeyring.discovery(keys("ECC_NIST_P256", "bob").private_pem)
    other_sender = info[:-33] + keys("ECC_NIST_P256", "carol").compressed
    with pytest.raises(NoMatchingKeyError, match="commitment"):
        _unwrap(bob, dataclasses.replace(edk, provider_info=other_sender))
    rejected = 0
    for delta in range(1, 40):  # about half of all x have no point on the curve
        x = (int.from_bytes(info[-32:], "big") + delta) % 2**256
        with pytest.raises(NoMatchingKeyError) as caught:
            _unwrap(bob, dataclasses.replace(edk, provider_info=info[:-32] + x.to_bytes(32, "big")))
        rejected += "not a point on" in str(caught.value)
    assert rejected > 0


TAMPERED_INFO: list[tuple[str, Any]] = [
    ("version-2", lambda info: b"\x02" + info[1:]),
    ("length-field", lambda info: info[:4] + b"\x20" + info[5:]),
    ("truncated", lambda info: info[:-1]),
    ("trailing-byte", lambda info: info + b"\x00"),
    ("sender-infinity", lambda info: info[:-33] + bytes(33)),
    ("sender-uncompressed-prefix", lambda info: info[:-33] + b"\x04" + info[-32:]),
]


@pytest.mark.parametrize("tamper", [t for _, t in TAMPERED_INFO], ids=[n for n, _ in TAMPERED_INFO])
def test_tampered_provider_info(tamper: Any) -> None:
    edk, _ = _edk()
    bad = dataclasses.replace(edk, provider_info=tamper(edk.provider_info))
    with pytest.raises(NoMatchingKeyError) as caught:
        _unwrap(RawECDHKeyring.discovery(keys("ECC_NIST_P256", "bob").private_pem), bad)
    assert "provider info" in str(caught.value) or "not a point" in str(caught.value)


def test_wrong_recipient_and_wrong_curve() -> None:
    edk, _ = _edk()
    with pytest.raises(NoMatchingKeyError, match="no data key wrapped for this key"):
        _unwrap(RawECDHKeyring.discovery(keys("ECC_NIST_P256", "carol").private_pem), edk)
    with pytest.raises(NoMatchingKeyError, match="no data key wrapped for this key"):  # static, other pair
        _unwrap(RawECDHKeyring.static(keys("ECC_NIST_P256", "carol").private_pem,
                                      keys("ECC_NIST_P256", "bob").public_der), edk)
    with pytest.raises(NoMatchingKeyError, match="another curve"):
        _unwrap(RawECDHKeyring.discovery(keys("ECC_NIST_P384", "bob").private_pem, "ECC_NIST_P384"), edk)


def test_whole_message_with_the_wrong_key_names_no_foreign_error() -> None:
    a, b = keys("ECC_NIST_P256", "alice"), keys("ECC_NIST_P256", "bob")
    message = mpl_encrypt(b"secret", mpl_ecdh_ephemeral(b))
    with pytest.raises(NoMatchingKeyError) as caught:
        envelope.decrypt(message, keyring=RawECDHKeyring.discovery(a.private_pem))
    assert "secret" not in str(caught.value)

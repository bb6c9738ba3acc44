"""The audit trail's signing keys: the bot's Ed25519 `Signer` (read from a file the database
never holds), the public keys that verify it, and `keygen`.

The chain proves order and integrity, not authorship: anyone who may INSERT can append
a row with a correct hash. So each row's hash is also signed with an Ed25519 key the
bot reads from a file (CUTOVER_AUDIT_KEY_FILE).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class AuditKeyError(ValueError):
    """A signing or public key file that cannot be used; the message says how to fix it."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class Signer:
    """Signs audit row hashes with an Ed25519 private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_key = private.public_key()
        self.key_id = key_id(self.public_key)

    def secrets(self) -> list[str]:
        """The private key as anything may print it (its PEM, the PEM's base64 body, the raw
        32 bytes in hex), for the masker: a step or a traceback that prints the key file
        shows none of it."""
        pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        raw = self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        body = [ln for ln in pem.splitlines() if ln and not ln.startswith("-----")]
        return [pem, "".join(body), *body, raw.hex(), raw.hex().upper()]

    def sign(self, row_hash: str) -> str:
        return self._private.sign(row_hash.encode()).hex()

    def sign_bytes(self, body: bytes) -> str:
        return self._private.sign(body).hex()

    @classmethod
    def from_file(cls, path: str | Path) -> Signer:
        """The key in `path`, refused (AuditKeyError) when group or others may read or write
        the file: a key others can read signs for them too."""
        p = Path(path)
        try:
            mode = p.stat().st_mode
            data = p.read_bytes()
        except OSError as exc:
            raise AuditKeyError(
                f"audit signing key {p}: {exc.strerror or exc}; create one with "
                "`cutover audit keygen --private-key FILE --public-key FILE`"
            ) from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, Ed25519PrivateKey):
            raise AuditKeyError(
                f"audit signing key {p} is not an unencrypted Ed25519 private key in PEM; "
                "create one with `cutover audit keygen`"
            )
        if mode & 0o077:
            raise AuditKeyError(
                f"audit signing key {p} is open to group or others (mode {mode & 0o777:o}): "
                f"whoever reads it can sign audit rows. Run `chmod 600 {p}` (owned by the "
                "bot's user), and make a new key if others may have read it"
            )
        return cls(key)


def load_public_keys(paths: Iterable[str | Path]) -> dict[str, Ed25519PublicKey]:
    """Public keys by key id (several: keys rotated over the trail's life)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        p = Path(path)
        try:
            key = serialization.load_pem_public_key(p.read_bytes())
        except OSError as exc:
            raise AuditKeyError(f"public key {p}: {exc.strerror or exc}") from None
        except ValueError:
            key = None
        if not isinstance(key, Ed25519PublicKey):
            raise AuditKeyError(f"public key {p} is not an Ed25519 public key in PEM")
        keys[key_id(key)] = key
    return keys


def keygen(private_path: str | Path, public_path: str | Path) -> str:
    """Writes a new key pair (the private key readable by its owner only); returns its id.
    Refuses to overwrite an existing file: a lost private key cannot sign again."""
    private_path, public_path = Path(private_path), Path(public_path)
    for p in (private_path, public_path):
        if p.exists():
            raise AuditKeyError(f"{p} exists; keygen never overwrites a key")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_id(private.public_key())

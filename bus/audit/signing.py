"""Checkpoints: the chain head (seq + hash) signed with Ed25519.

A checkpoint says "record `seq` had hash `hash` at `signed_at`", signed over

    b"renkei-audit-checkpoint|1|<seq>|<hash>|<signed_at>"

with the key from `[audit] signing_key_file` (or env RENKEI_AUDIT_SIGNING_KEY). Rewriting the
chain before a checkpoint (even recomputing every hash) no longer matches the signature,
and cutting records off the end leaves a checkpoint pointing past the head.
`key_id` (the first 16 hex of SHA-256 over the raw public key) names the key that signed,
so a verifier holding several public keys (rotation) knows which one to use.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bus.audit.chain import Head
from bus.audit.events import utc_now
from bus.errors import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["Checkpoint", "CheckpointSigner", "CheckpointVerifier", "generate_key_file", "key_id"]

# cryptography (~9 MB of RSS) is imported where a key is read, made or used, not with this module:
# a bus process without a signing key (the demo, the benchmarks) never loads it (bench/README.md,
# "Less memory per bus process").


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str
    signed_at: str
    key_id: str
    signature: str  # hex

    def message(self) -> bytes:
        return _message(self.seq, self.hash, self.signed_at)


def _message(seq: int, digest: str, signed_at: str) -> bytes:
    return f"renkei-audit-checkpoint|1|{seq}|{digest}|{signed_at}".encode()


def key_id(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class CheckpointSigner:
    """Signs chain heads with an Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def from_pem(cls, pem: bytes, where: str = "[audit] signing key") -> CheckpointSigner:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"the audit signing key cannot be read ({exc})", where=where) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError("the audit signing key must be an Ed25519 key (renkei audit keygen)", where=where)
        return cls(key)

    def sign(self, head: Head) -> Checkpoint:
        signed_at = utc_now()
        signature = self._key.sign(_message(head.seq, head.hash, signed_at))
        return Checkpoint(head.seq, head.hash, signed_at, self.key_id, signature.hex())


class CheckpointVerifier:
    """Checks checkpoint signatures against the trusted public keys (current and earlier)."""

    def __init__(self, public_keys: list[Ed25519PublicKey]) -> None:
        self._keys = {key_id(k): k for k in public_keys}

    @classmethod
    def from_pems(cls, pems: list[bytes], where: str = "[audit] trusted_keys") -> CheckpointVerifier:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        keys = []
        for pem in pems:
            try:
                key = serialization.load_pem_public_key(pem)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"a trusted audit key cannot be read ({exc})", where=where) from None
            if not isinstance(key, Ed25519PublicKey):
                raise ConfigError("trusted audit keys must be Ed25519 public keys", where=where)
            keys.append(key)
        return cls(keys)

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def problem(self, checkpoint: Checkpoint) -> str | None:
        """None when the signature is good, else what is wrong with it."""
        from cryptography.exceptions import InvalidSignature

        key = self._keys.get(checkpoint.key_id)
        if key is None:
            return f"is signed by key {checkpoint.key_id}, which is not a trusted key"
        try:
            key.verify(bytes.fromhex(checkpoint.signature), checkpoint.message())
        except (InvalidSignature, ValueError):
            return f"has a signature that does not verify with key {checkpoint.key_id} (forged or altered)"
        return None


def generate_key_file(path: Path) -> tuple[Path, str]:
    """Write a new Ed25519 private key (PEM, mode 0600) to `path` and its public key beside it
    (`path` + ".pub"); return the public key path and the key id. Never overwrites."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    pub_path = path.with_name(path.name + ".pub")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    pub_path.write_bytes(public)
    return pub_path, key_id(key.public_key())

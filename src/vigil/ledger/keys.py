"""The ledger's Ed25519 signing key.

The private key lives at ``<store>/keys/ledger_ed25519`` (PKCS#8 PEM, mode 0600), made on the
first write to any tenant's ledger (created under a temporary name and linked into place, so
two processes racing to make it end up with the same key).  The public key is exported as a
SubjectPublicKeyInfo PEM (``vigil ledger export-key``).  ``key_id`` is the first 16 hex digits
of SHA-256 over the raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_DIR = "keys"
KEY_FILE = "ledger_ed25519"


def key_path(root: str | Path) -> Path:
    return Path(root) / KEY_DIR / KEY_FILE


def load_or_create_key(root: str | Path) -> Ed25519PrivateKey:
    """The store's signing key, made (0600) if the store has none yet."""
    path = key_path(root)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process made it first: keep theirs
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return load_private_key(path)


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def existing_public_key(root: str | Path) -> Ed25519PublicKey | None:
    path = key_path(root)
    return load_private_key(path).public_key() if path.exists() else None


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """A public key from a PEM file (a private key file also works: its public half)."""
    data = Path(path).read_bytes()
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            return load_private_key(path).public_key()
        except ValueError:
            raise ValueError(f"{path} holds no PEM Ed25519 key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} holds a public key that is not Ed25519")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key_bytes(pem: bytes | str) -> Ed25519PublicKey:
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not Ed25519")
    return key

"""Credentials encrypted at rest with a Fernet key from the settings, and digests that tell
secrets apart without keeping them."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken

from daemon.errors import ConfigError
from daemon.providers.base import Credentials


def new_key() -> str:
    """A fresh key for ``encryption_key``."""
    return Fernet.generate_key().decode()


class CredentialCipher:
    """Encrypts and decrypts a mailbox's secrets as one JSON blob."""

    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode())
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "encryption_key must be 32 url-safe base64-encoded bytes "
                "(generate one with `mailsync keygen`)"
            ) from exc

    def __repr__(self) -> str:
        return "CredentialCipher(key='***')"

    def encrypt(self, creds: Credentials) -> bytes:
        """Ciphertext of the secrets."""
        return self._fernet.encrypt(json.dumps(dict(creds), sort_keys=True).encode())

    def decrypt(self, blob: bytes) -> Credentials:
        """The secrets; ``ConfigError`` if the key does not match."""
        try:
            data = json.loads(self._fernet.decrypt(blob))
        except InvalidToken as exc:
            raise ConfigError("credentials cannot be decrypted with this encryption_key") from exc
        return Credentials({str(k): str(v) for k, v in data.items()})


def secret_digest(key: bytes, secrets: Mapping[str, str]) -> bytes:
    """HMAC-SHA-256 over every secret given (any change gives another digest).

    The IMAP pool keys logins by it, so a session made with old secrets never serves new
    ones; ``key`` is random per process, so a digest is useless elsewhere.
    """
    canonical = json.dumps(sorted(secrets.items()), separators=(",", ":"))
    return hmac.new(key, canonical.encode(), hashlib.sha256).digest()

"""Credentials encrypted at rest with a Fernet key from the settings."""

from __future__ import annotations

import json

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

"""Credentials encrypted at rest with the Fernet keys from the settings, and digests that tell
secrets apart without keeping them.

Several keys may be configured (``encryption_keys``): the first encrypts, every one decrypts
(``cryptography``'s ``MultiFernet``), which is what a key rotation needs (docs/daemon.md,
"Encryption keys and rotation"; ``daemon/keys.py`` re-encrypts stored credentials).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from daemon.errors import ConfigError
from daemon.providers.base import Credentials


def new_key() -> str:
    """A fresh key for ``encryption_keys``."""
    return Fernet.generate_key().decode()


class UndecryptableCredentials(ConfigError):
    """No configured key decrypts a stored credentials blob: the key configuration is wrong
    (or the blob is corrupt), not the provider."""


class CredentialCipher:
    """Encrypts and decrypts a mailbox's secrets as one JSON blob.

    ``keys``: one key, or several, newest first: the first encrypts, all decrypt.
    """

    def __init__(self, keys: str | Sequence[str]) -> None:
        given = [keys] if isinstance(keys, str) else list(keys)
        if not given:
            raise ConfigError("encryption_keys is required (generate a key with `mailsync keygen`)")
        self._fernets: list[Fernet] = []
        for i, key in enumerate(given):
            try:
                self._fernets.append(Fernet(key.encode()))
            except (ValueError, TypeError) as exc:
                where = "encryption_key" if isinstance(keys, str) else f"encryption_keys[{i}]"
                raise ConfigError(
                    f"{where} must be 32 url-safe base64-encoded bytes "
                    "(generate one with `mailsync keygen`)"
                ) from exc
        self._multi = MultiFernet(self._fernets)

    @classmethod
    def from_secrets(cls, keys: Sequence[SecretStr]) -> CredentialCipher:
        """The cipher of the settings' keys (``Settings.credential_keys()``)."""
        return cls([k.get_secret_value() for k in keys])

    def __repr__(self) -> str:
        return f"CredentialCipher(keys=['***'] * {len(self._fernets)})"

    @property
    def key_count(self) -> int:
        """How many keys decrypt (the first of them encrypts)."""
        return len(self._fernets)

    def encrypt(self, creds: Credentials) -> bytes:
        """Ciphertext of the secrets, under the first key."""
        return self._multi.encrypt(json.dumps(dict(creds), sort_keys=True).encode())

    def decrypt(self, blob: bytes) -> Credentials:
        """The secrets; ``UndecryptableCredentials`` if no configured key decrypts them."""
        try:
            data = json.loads(self._multi.decrypt(blob))
        except InvalidToken as exc:
            raise UndecryptableCredentials(
                "credentials cannot be decrypted with any of the configured encryption_keys"
            ) from exc
        return Credentials({str(k): str(v) for k, v in data.items()})

    def key_index(self, blob: bytes) -> int | None:
        """Position of the first configured key that decrypts ``blob``, or ``None``."""
        for i, fernet in enumerate(self._fernets):
            try:
                fernet.decrypt(blob)
            except InvalidToken:
                continue
            return i
        return None

    def reencrypt(self, blob: bytes) -> bytes | None:
        """``blob`` under the first key (its secrets and timestamp unchanged), or ``None`` if
        it is under the first key already; ``UndecryptableCredentials`` if no key decrypts
        it."""
        index = self.key_index(blob)
        if index is None:
            raise UndecryptableCredentials(
                "credentials cannot be decrypted with any of the configured encryption_keys"
            )
        if index == 0:
            return None
        return self._multi.rotate(blob)


def secret_digest(key: bytes, secrets: Mapping[str, str]) -> bytes:
    """HMAC-SHA-256 over every secret given (any change gives another digest).

    The IMAP pool keys logins by it, so a session made with old secrets never serves new
    ones; ``key`` is random per process, so a digest is useless elsewhere.
    """
    canonical = json.dumps(sorted(secrets.items()), separators=(",", ":"))
    return hmac.new(key, canonical.encode(), hashlib.sha256).digest()

"""Credentials at rest: several keys (the first encrypts, all decrypt), their settings, and
secrets that never print."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from daemon.crypto import CredentialCipher, UndecryptableCredentials
from daemon.errors import ConfigError
from daemon.providers.base import Credentials
from daemon.settings import load_settings

OLD = "Vq2hpq0Y0lYH2wBkYyQqvE0x2u6yXBq7f2bX1E1gYxI="
NEW = "pOt8H5uQCIrUyF7wqFYkX9P2DMNzjJ8A2LJ4FTBVIGM="
OTHER = "LeMKrFgMmoATYIb_C2FDfFvfyN6i2BqFgucXfZo1rNE="
CREDS = Credentials({"refresh_token": "rt-secret-1"})


def test_first_key_encrypts_every_key_decrypts() -> None:
    old_blob = CredentialCipher(OLD).encrypt(CREDS)
    both = CredentialCipher([NEW, OLD])
    new_blob = both.encrypt(CREDS)
    assert Fernet(NEW.encode()).decrypt(new_blob)  # under the first key
    assert both.decrypt(old_blob) == CREDS and both.decrypt(new_blob) == CREDS
    assert (both.key_index(new_blob), both.key_index(old_blob)) == (0, 1)
    assert both.key_count == 2


def test_reencrypt_moves_a_blob_to_the_first_key_and_leaves_current_ones() -> None:
    both = CredentialCipher([NEW, OLD])
    moved = both.reencrypt(CredentialCipher(OLD).encrypt(CREDS))
    assert moved is not None and CredentialCipher(NEW).decrypt(moved) == CREDS
    assert both.reencrypt(moved) is None
    with pytest.raises(UndecryptableCredentials):
        both.reencrypt(CredentialCipher(OTHER).encrypt(CREDS))


def test_undecryptable_is_a_config_error_without_the_secret() -> None:
    blob = CredentialCipher(OTHER).encrypt(CREDS)
    cipher = CredentialCipher([NEW, OLD])
    assert cipher.key_index(blob) is None and cipher.key_index(b"garbage") is None
    with pytest.raises(ConfigError, match="any of the configured encryption_keys") as info:
        cipher.decrypt(blob)
    assert isinstance(info.value, UndecryptableCredentials)
    assert "rt-secret" not in str(info.value) and NEW not in repr(cipher)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([], "encryption_keys is required"),
        ([NEW, "not-a-key"], r"encryption_keys\[1\] must be 32"),
        ("short", "encryption_key must be 32"),
    ],
)
def test_bad_keys_are_named(keys: str | list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CredentialCipher(keys)


def test_key_settings_from_file_env_and_the_one_key_form(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'encryption_keys = ["{NEW}", "{OLD}"]\n')
    as_text = [
        [k.get_secret_value() for k in s.credential_keys()]
        for s in (
            load_settings(cfg, environ={}),
            load_settings(None, environ={"MAILSYNC_ENCRYPTION_KEYS": f"{NEW}, {OLD}"}),
            load_settings(None, environ={"MAILSYNC_ENCRYPTION_KEYS": f'["{NEW}","{OLD}"]'}),
        )
    ]
    assert as_text == [[NEW, OLD]] * 3
    one = load_settings(None, environ={"MAILSYNC_ENCRYPTION_KEY": OLD})
    assert [k.get_secret_value() for k in one.credential_keys()] == [OLD]
    assert load_settings(None, environ={}).credential_keys() == []
    with pytest.raises(ConfigError, match="encryption_keys .* or encryption_key .* not both"):
        load_settings(cfg, environ={"MAILSYNC_ENCRYPTION_KEY": OLD})


def test_keys_never_print() -> None:
    s = load_settings(None, {"encryption_keys": [NEW, OLD]}, environ={})
    text = repr(s) + s.model_dump_json() + repr(CredentialCipher.from_secrets(s.credential_keys()))
    assert NEW not in text and OLD not in text

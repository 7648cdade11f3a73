"""Request bodies and parameters of the HTTP API, every one bounded.

Strings have a maximum length and refuse NUL characters and lone surrogates (PostgreSQL
cannot store them); ids fit PostgreSQL's bigint; a mailbox's ``config`` is JSON of bounded
size and depth without NaN or Infinity; secrets are bounded too. A bad value is a 422 that
names the field and the rule, never echoing the value (``errors.public_errors``).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from daemon.provider_settings import check_graph_folders

_STRICT = ConfigDict(extra="forbid")

# PostgreSQL's bigint: every id and id-like parameter is within 1..MAX_ID.
MAX_ID = 2**63 - 1
# A mailbox's config as JSON, and how deep it may nest.
MAX_CONFIG_BYTES = 16 * 1024
MAX_CONFIG_DEPTH = 8
# One secret (a refresh token, a password); Microsoft's refresh tokens run to ~2 KB.
MAX_SECRET_CHARS = 8192
MAX_SECRETS = 8


def _storable(v: str) -> str:
    if "\x00" in v:
        raise ValueError("must not contain NUL characters")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return v


def _lower(v: str) -> str:
    return v.lower()


Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_storable)]
# Compared and stored lower-case (docs/daemon.md, "Registration rules").
Address = Annotated[
    str,
    StringConstraints(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"),
    AfterValidator(_storable),
    AfterValidator(_lower),
]
SecretName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
]
Secret = Annotated[str, StringConstraints(max_length=MAX_SECRET_CHARS), AfterValidator(_storable)]
Secrets = Annotated[dict[SecretName, Secret], Field(max_length=MAX_SECRETS)]
Interval = Annotated[int, Field(gt=0, le=86400)]
FolderName = Annotated[
    str, StringConstraints(min_length=1, max_length=1000), AfterValidator(_storable)
]

_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$)(?:{_HOST_LABEL}\.)*{_HOST_LABEL}\.?")


def _host(v: str) -> str:
    try:
        ipaddress.ip_address(v)
    except ValueError:
        if _HOSTNAME.fullmatch(v) is None:
            raise ValueError(
                "must be a host name (letters, digits, '-', '_' and '.'; internationalised "
                "names in their xn-- form) or an IP address"
            ) from None
    return v


Host = Annotated[str, StringConstraints(min_length=1, max_length=253), AfterValidator(_host)]


def _check_json(value: Any, where: str, depth: int) -> None:
    """Refuse what PostgreSQL's jsonb or a JSON answer cannot carry, naming where it is."""
    if depth > MAX_CONFIG_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_CONFIG_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: NaN and Infinity are not JSON numbers")
    if isinstance(value, str):
        try:
            _storable(value)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            try:
                _storable(k)
            except ValueError as exc:
                raise ValueError(f"{where}: a key {exc}") from None
            _check_json(v, f"{where}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(v, f"{where}.{i}", depth + 1)


def _bounded_config(v: dict[str, Any]) -> dict[str, Any]:
    _check_json(v, "config", 1)
    if len(json.dumps(v)) > MAX_CONFIG_BYTES:
        raise ValueError(f"config: larger than {MAX_CONFIG_BYTES} bytes as JSON")
    return v


Config = Annotated[dict[str, Any], AfterValidator(_bounded_config)]


class TenantIn(BaseModel):
    """A tenant to create."""

    model_config = _STRICT
    name: Name
    sync_interval_s: Interval | None = None


class ImapConfig(BaseModel):
    """Server settings of an IMAP mailbox; the host must also pass the IMAP host policy
    (docs/daemon.md, "IMAP host policy"), checked when the mailbox is registered."""

    model_config = _STRICT
    host: Host
    port: int = Field(default=993, ge=1, le=65535)
    tls: Literal["implicit", "none"] = "implicit"
    username: Annotated[
        str, StringConstraints(min_length=1, max_length=320), AfterValidator(_storable)
    ]
    auth: Literal["password", "xoauth2"] = "password"
    folders: list[FolderName] | None = Field(default=None, max_length=100)


def _imap_config(config: dict[str, Any]) -> dict[str, Any]:
    try:
        cfg = ImapConfig.model_validate(config)
    except ValidationError as exc:
        # Field names and rules only: the values stay out of the answer.
        raise ValueError(
            "; ".join(
                f"config.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
        ) from None
    return cfg.model_dump(exclude_none=True)


class MailboxIn(BaseModel):
    """A mailbox to register; secrets go in ``credentials`` and are encrypted at rest."""

    model_config = _STRICT
    provider: Literal["gmail", "graph", "imap"]
    address: Address
    credentials: Secrets
    config: Config = {}
    sync_interval_s: Interval | None = None

    @field_validator("config")
    @classmethod
    def _provider_config(cls, config: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        provider = info.data.get("provider")
        if provider == "imap":
            # Stored as validated, so the worker reads the types it expects.
            return _imap_config(config)
        folders = config.get("folders")
        if provider == "graph" and folders is not None:
            check_graph_folders(folders, "config.folders")
        elif folders is not None and (
            not isinstance(folders, list) or not all(isinstance(f, str) for f in folders)
        ):
            raise ValueError("config.folders must be a list of folder names")
        return config

    @model_validator(mode="after")
    def _provider_secrets(self) -> MailboxIn:
        creds = self.credentials
        if self.provider in ("gmail", "graph"):
            if not creds.get("refresh_token"):
                raise ValueError("credentials.refresh_token is required for gmail and graph")
        elif self.config.get("auth", "password") == "password":
            if not creds.get("password"):
                raise ValueError("credentials.password is required for imap password auth")
        elif not creds.get("refresh_token"):
            raise ValueError("credentials.refresh_token is required for imap xoauth2")
        return self


class BulkMailboxesIn(BaseModel):
    """Many mailboxes of one tenant at once (onboarding, load tests)."""

    model_config = _STRICT
    mailboxes: list[MailboxIn] = Field(min_length=1, max_length=1000)


class TenantWithMailboxesIn(TenantIn):
    """A tenant and its mailboxes, for onboarding many at once."""

    mailboxes: list[MailboxIn] = Field(default_factory=list, max_length=1000)


class BulkTenantsIn(BaseModel):
    """Up to 1,000 tenants with up to 10,000 mailboxes in all."""

    model_config = _STRICT
    tenants: list[TenantWithMailboxesIn] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _bounded(self) -> BulkTenantsIn:
        if sum(len(t.mailboxes) for t in self.tenants) > 10_000:
            raise ValueError("at most 10,000 mailboxes in one request")
        return self


class CredentialsIn(BaseModel):
    """New secrets for a mailbox; by default reactivates one in ``needs_reauth``."""

    model_config = _STRICT
    credentials: Annotated[Secrets, Field(min_length=1)]
    reactivate: bool = True

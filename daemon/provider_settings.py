"""The providers' sections of the settings (``gmail``, ``graph``, ``imap``): endpoints, OAuth
apps, timeouts, retries and folder defaults. ``daemon.settings.Settings`` holds one of each.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr, field_validator

from daemon.policy import DEFAULT_FETCH

_STRICT = ConfigDict(extra="forbid")


class OAuthProviderSettings(BaseModel):
    """Endpoints and OAuth app of one HTTP provider."""

    model_config = _STRICT
    base_url: str
    token_url: str
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    scope: str = ""
    timeout_s: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=200, ge=1)
    # Times one call is retried in-sync after a 429 / 5xx before the sync fails.
    max_call_retries: int = Field(default=3, ge=0)
    # Longest Retry-After the worker waits out in-sync; longer ones reschedule the mailbox.
    max_inline_wait_s: float = Field(default=60.0, ge=0)


class GmailSettings(OAuthProviderSettings):
    """Gmail API and Google's token endpoint."""

    base_url: str = "https://gmail.googleapis.com"
    token_url: str = "https://oauth2.googleapis.com/token"


WHOLE_MAILBOX: Literal["all"] = "all"


def check_graph_folders(value: object, where: str) -> str | list[str]:
    """A Graph folder selection: ``"all"`` or a non-empty list of folder names or ids;
    ``ValueError`` naming ``where`` otherwise."""
    if value == WHOLE_MAILBOX:
        return WHOLE_MAILBOX
    if isinstance(value, list) and value and all(isinstance(f, str) and f.strip() for f in value):
        return list(value)
    raise ValueError(
        f'{where} must be "all" or a non-empty list of folder names or ids, not {value!r}'
    )


class GraphSettings(OAuthProviderSettings):
    """Microsoft Graph and the Microsoft identity platform's token endpoint."""

    base_url: str = "https://graph.microsoft.com/v1.0"
    token_url: str = "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    scope: str = "offline_access https://graph.microsoft.com/Mail.Read"
    # Folders synced when a mailbox's config names none: "all" (every visible mail folder,
    # child folders included, listed on every sync) or well-known names / folder ids.
    folders: Literal["all"] | list[str] = WHOLE_MAILBOX

    @field_validator("folders", mode="before")
    @classmethod
    def _folders(cls, v: object) -> str | list[str]:
        return check_graph_folders(v, "graph.folders")


class ImapSettings(BaseModel):
    """IMAP provider defaults; each mailbox carries its own host and login."""

    model_config = _STRICT
    # Folders synced when a mailbox's config names none.
    folders: list[str] = Field(default=["INBOX"], min_length=1)
    # Per account and per process: N processes may open N times this many.
    max_connections_per_account: int = Field(default=5, ge=1)
    fetch_chunk: int = Field(default=DEFAULT_FETCH.imap_fetch_chunk, ge=1)
    # Messages per flag-scan FETCH on servers without CONDSTORE (Outlook).
    flag_scan_chunk: int = Field(default=DEFAULT_FETCH.imap_flag_scan_chunk, ge=1)
    command_timeout_s: float = Field(default=30.0, gt=0)
    # A pooled connection idle this long is checked with NOOP before reuse ...
    idle_keepalive_s: float = Field(default=45.0, gt=0)
    # ... and one idle this long is closed by the pool's sweeper. Every scheduled sync logs
    # in again (reauth_after_s), so a pooled session only serves retries and syncs on
    # demand soon after: holding it longer costs memory and a server slot for nothing.
    max_idle_s: float = Field(default=90.0, gt=0)
    # A pooled connection logged in longer ago than this, or than 0.9 x its mailbox's sync
    # interval (policy.imap_reauth_after), is replaced by a new LOGIN, so a password changed
    # or revoked on the server is noticed by the next scheduled sync.
    reauth_after_s: float = Field(default=270.0, gt=0)
    verify_tls: bool = True
    # Extra CA bundle (PEM) for servers with a private CA.
    ca_file: str | None = None
    max_header_bytes: int = Field(default=65536, ge=1024)
    # Host policy (docs/daemon.md, "IMAP host policy"): a mailbox's server must resolve to
    # public addresses only, or to addresses inside one of these networks (CIDRs, e.g.
    # ["127.0.0.0/8", "::1/128"] for a local Dovecot, ["10.1.2.0/24"] for an internal server).
    allowed_networks: list[IPvAnyNetwork] = []


__all__ = [
    "WHOLE_MAILBOX",
    "GmailSettings",
    "GraphSettings",
    "ImapSettings",
    "OAuthProviderSettings",
    "check_graph_folders",
]

"""Whom a pooled IMAP connection may serve, and whether it may serve again (pure).

A logged-in session proves that *its* credentials were accepted, nothing more. So a pooled
connection is keyed by the full identity of the login: server (host, port, TLS mode), user
name, auth kind, the mailbox it was opened for, and a keyed digest of the mailbox's secrets
(``crypto.secret_digest``: HMAC-SHA-256 with a per-process random key). Another mailbox with
the same user name, or the same mailbox after its credentials changed, never gets it. The
secret itself is never part of a key, a log line or a ``repr``.

A login is also only trusted for a bounded time (``policy.imap_reauth_after``): a server-side
password change or revocation does not end sessions that are already logged in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# Connection limits of servers count per account: (host, port, username).
AccountKey = tuple[str, int, str]


@dataclass(frozen=True, slots=True)
class LoginIdentity:
    """Everything a pooled login was made with; only an equal identity may reuse it."""

    host: str
    port: int
    tls: str
    username: str
    auth: str
    mailbox_id: int
    # Keyed digest of the secrets, never the secrets; kept out of repr all the same.
    secret_digest: bytes = field(repr=False)

    @property
    def account(self) -> AccountKey:
        """The server account whose connection limit this login counts against."""
        return (self.host, self.port, self.username)

    def supersedes(self, other: LoginIdentity) -> bool:
        """True when ``other`` is an older login of the same mailbox (other credentials or
        server settings): it must be closed, not kept for later."""
        return other.mailbox_id == self.mailbox_id and other != self


class Reuse(StrEnum):
    """What the pool does with an idle connection before handing it out."""

    AS_IS = "as_is"
    NOOP_FIRST = "noop_first"
    DISCARD = "discard"


@dataclass(frozen=True, slots=True)
class ReuseLimits:
    """The pool's time limits (seconds)."""

    keepalive_s: float
    max_idle_s: float


def reuse_verdict(
    now: float,
    logged_in_at: float,
    last_used: float,
    broken: bool,
    limits: ReuseLimits,
    reauth_after_s: float,
) -> Reuse:
    """Whether an idle connection may serve again: never once broken, idle past
    ``max_idle_s`` or logged in ``reauth_after_s`` ago or longer; after a NOOP when idle
    past ``keepalive_s``."""
    if broken or now - last_used > limits.max_idle_s or now - logged_in_at >= reauth_after_s:
        return Reuse.DISCARD
    if now - last_used > limits.keepalive_s:
        return Reuse.NOOP_FIRST
    return Reuse.AS_IS

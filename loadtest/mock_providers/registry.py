"""All mailboxes of the mock and the OAuth tokens that open them."""

from __future__ import annotations

import random
from dataclasses import dataclass

from loadtest.mock_providers.gmail_state import GmailMailbox
from loadtest.mock_providers.graph_state import GraphMailbox
from loadtest.mock_providers.state import Mailbox

PROVIDERS = ("gmail", "graph")
# Live tokens kept per mailbox; older ones are forgotten (Google keeps 100 refresh tokens
# per account and client, and evicts the oldest silently).
MAX_REFRESH_TOKENS = 100
MAX_ACCESS_TOKENS = 20


class DuplicateMailbox(ValueError):
    """A mailbox with that address exists already."""


@dataclass(slots=True)
class AccessGrant:
    """An access token's mailbox and expiry (seconds, the service clock)."""

    mailbox: Mailbox
    expires_at: float


class Registry:
    """Mailboxes by address and by token. Token values come from a seeded ``rng``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.mailboxes: list[Mailbox] = []
        self.by_address: dict[str, Mailbox] = {}
        self.access: dict[str, AccessGrant] = {}
        self.refresh: dict[str, Mailbox] = {}
        self._tokens_of: dict[int, tuple[list[str], list[str]]] = {}

    def add(self, provider: str, address: str, size: int, seed: int) -> Mailbox:
        """Register a mailbox and give it a first refresh token."""
        key = address.lower()
        if key in self.by_address:
            raise DuplicateMailbox(address)
        num = len(self.mailboxes)
        mbx: Mailbox
        if provider == "gmail":
            mbx = GmailMailbox(num, address, seed, size)
        elif provider == "graph":
            mbx = GraphMailbox(num, address, seed, size)
        else:
            raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}, not {provider!r}")
        self.mailboxes.append(mbx)
        self.by_address[key] = mbx
        self._tokens_of[num] = ([], [])
        self.new_refresh_token(mbx)
        return mbx

    def get(self, address: str) -> Mailbox | None:
        """The mailbox of an address (case-insensitive)."""
        return self.by_address.get(address.lower())

    def _hex(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def new_refresh_token(self, mbx: Mailbox) -> str:
        """A further valid refresh token; earlier ones stay valid (up to the cap)."""
        head = "1//0mock" if mbx.provider == "gmail" else "M.C5mock."
        token = head + self._hex(128)
        refresh = self._tokens_of[mbx.num][0]
        refresh.append(token)
        self.refresh[token] = mbx
        if len(refresh) > MAX_REFRESH_TOKENS:
            self.refresh.pop(refresh.pop(0), None)
        return token

    def first_refresh_token(self, mbx: Mailbox) -> str:
        """The refresh token handed out when the mailbox was created."""
        return self._tokens_of[mbx.num][0][0]

    def issue_access_token(self, mbx: Mailbox, now: float, lifetime_s: float) -> str:
        """A new access token for ``mbx`` valid for ``lifetime_s``."""
        head = "ya29.mock" if mbx.provider == "gmail" else "EwBmock"
        token = head + self._hex(128)
        live = self._tokens_of[mbx.num][1]
        # Forget expired tokens of this mailbox so long runs do not grow the map.
        while live and (
            len(live) >= MAX_ACCESS_TOKENS
            or (grant := self.access.get(live[0])) is None
            or grant.expires_at <= now
        ):
            self.access.pop(live.pop(0), None)
        live.append(token)
        self.access[token] = AccessGrant(mbx, now + lifetime_s)
        return token

    def mailbox_for_access(self, token: str, now: float) -> Mailbox | None:
        """The mailbox an unexpired, unrevoked access token opens."""
        grant = self.access.get(token)
        if grant is None or grant.expires_at <= now or grant.mailbox.revoked:
            return None
        return grant.mailbox

    def mailbox_for_refresh(self, token: str) -> Mailbox | None:
        """The mailbox a refresh token belongs to (revoked or not)."""
        return self.refresh.get(token)

    def revoke(self, mbx: Mailbox) -> None:
        """Every token of the mailbox stops working, now and for good."""
        mbx.revoked = True
        # Refresh tokens stay mapped so the token endpoints can say "revoked", not "unknown".
        live = self._tokens_of[mbx.num][1]
        for token in live:
            self.access.pop(token, None)
        live.clear()

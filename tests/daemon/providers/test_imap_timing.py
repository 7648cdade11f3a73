"""Every IMAP round trip is reported to the request observer under its call-model name."""

from __future__ import annotations

import random
from collections.abc import Callable

from daemon.policy import SyncKind
from daemon.providers.base import MailboxContext
from daemon.providers.imap import ImapProvider, ImapSettings
from daemon.providers.imap_client import command_method
from daemon.providers.imap_hosts import LOOPBACK
from loadtest.dovecot.messages import generate_mailbox
from loadtest.dovecot.server import DovecotServer, DovecotUser


def test_command_names_follow_the_call_model() -> None:
    assert command_method("UID FETCH") == "imap.fetch"
    assert command_method("ENABLE QRESYNC") == "imap.enable"
    assert command_method("AUTHENTICATE XOAUTH2") == "imap.login"
    assert command_method("IDLE") == "imap.idle"


async def test_round_trips_reach_the_observer(
    dovecot: DovecotServer,
    new_user: Callable[[], DovecotUser],
    context_for: Callable[..., MailboxContext],
) -> None:
    user = new_user()
    dovecot.write_messages(
        user, "INBOX", generate_mailbox(random.Random(3), 30, start=1.7e9, end=1.7e9 + 86400)
    )
    seen: list[tuple[str, str, float]] = []
    provider = ImapProvider(
        ImapSettings(allowed_networks=LOOPBACK), lambda p, m, s: seen.append((p, m, s))
    )
    try:
        full = await provider.sync(context_for(user), SyncKind.FULL, None)
        assert len(full.upserts) == 30
        methods = [m for _, m, _ in seen]
        assert methods[:2] == ["imap.connect", "imap.login"]
        assert {"imap.select", "imap.fetch"} <= set(methods)
        assert {p for p, _, _ in seen} == {"imap"}
        assert all(0 <= s < 5 for _, _, s in seen)
        seen.clear()
        await provider.sync(context_for(user), SyncKind.INCREMENTAL, full.cursor)
        # The pooled connection is reused: no handshake, no login.
        assert "imap.connect" not in [m for _, m, _ in seen]
        assert "imap.select" in [m for _, m, _ in seen]
    finally:
        await provider.aclose()

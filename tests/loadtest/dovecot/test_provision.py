"""Provisioning users with generated mailboxes, and the Dovecot runner itself."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from daemon.providers.imap_client import ImapConnection
from daemon.providers.imap_parse import parse_select
from loadtest.dovecot.provision import (
    ProvisionSpec,
    message_counts,
    open_provisioned,
    provision,
    read_users,
)
from loadtest.dovecot.server import DovecotError, require_dovecot_23


def test_message_counts_are_seeded_lognormal_and_capped() -> None:
    spec = ProvisionSpec(users=2001, messages_median=200, seed=3, max_messages=1000)
    counts = message_counts(spec)
    assert counts == message_counts(spec)
    assert sorted(counts)[1000] == pytest.approx(200, rel=0.15)
    assert max(counts) == 1000
    assert message_counts(ProvisionSpec(5, 10, seed=4)) != message_counts(
        ProvisionSpec(5, 10, seed=5)
    )


async def test_provisioned_users_log_in_and_see_their_mail(dovecot_dir: Path) -> None:
    spec = ProvisionSpec(users=4, messages_median=30, seed=1, port=0)
    base = dovecot_dir / "p"
    _, made = provision(base, spec, progress=False)
    assert read_users(base) == made and len(made) == 4
    server = open_provisioned(base)
    assert server.port > 1024
    server.start()
    try:
        for user in made:
            conn = await ImapConnection.connect(
                server.host, server.port, ssl_context=None, timeout_s=10, now=0
            )
            await conn.login(user.name, user.password)
            reply = await conn.select('"INBOX"')
            assert parse_select(reply.untagged).exists == user.messages
            await conn.close()
    finally:
        server.stop()
    with pytest.raises(FileExistsError):
        provision(base, spec, progress=False)


def test_dovecot_24_is_refused_clearly(tmp_path: Path) -> None:
    fake = tmp_path / "dovecot"
    fake.write_text("#!/bin/sh\necho '2.4.1-4 (7d8c0e5759)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(DovecotError, match="2.4 needs dovecot_config_version"):
        require_dovecot_23(str(fake))
    with pytest.raises(DovecotError, match="not found on PATH"):
        require_dovecot_23(os.path.join(str(tmp_path), "missing", "dovecot"))

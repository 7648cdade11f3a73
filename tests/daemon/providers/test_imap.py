"""ImapProvider against a real Dovecot: full, incremental, UIDVALIDITY, auth, malformed."""

from __future__ import annotations

import random
import re
import shutil
from collections.abc import Callable

import pytest

from daemon.errors import AuthRevoked, ConfigError, PermanentError, RateLimited, TransientError
from daemon.policy import Outcome, RetryPolicy, SyncKind, on_failure
from daemon.providers.base import MailboxContext
from daemon.providers.imap import ImapProvider, ImapSettings, build_imap_provider
from daemon.providers.imap_hosts import LOOPBACK
from daemon.ratelimit import CountingGate
from daemon.settings import Settings
from loadtest.dovecot.imap_admin import ImapAdmin
from loadtest.dovecot.messages import generate_mailbox, generate_message, malformed_messages
from loadtest.dovecot.server import DovecotServer, DovecotUser, scratch_dir

START = 1_700_000_000.0
MakeUser = Callable[..., DovecotUser]
MakeCtx = Callable[..., MailboxContext]


def by_method(ctx: MailboxContext) -> dict[str, int]:
    gate = ctx.gate
    assert isinstance(gate, CountingGate)
    return dict(gate.by_method)


def index_of(subject: str | None) -> int:
    assert subject is not None
    m = re.match(r"Message (\d{6}) ", subject)
    assert m, subject
    return int(m.group(1))


async def test_full_sync_of_3000_messages(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    written = list(generate_mailbox(random.Random(7), 3000, start=START, end=START + 3e6))
    dovecot.write_messages(user, "INBOX", written)
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK, fetch_chunk=500))
    ctx = context_for(user)
    try:
        res = await provider.sync(ctx, SyncKind.FULL, None)
    finally:
        await provider.aclose()

    assert res.kind is SyncKind.FULL and res.full_scopes == ["INBOX"]
    assert len(res.upserts) == 3000 and not res.skipped and not res.deletes
    uids = [int(r.provider_id.rsplit(":", 1)[1]) for r in res.upserts]
    assert sorted(uids) == list(range(1, 3001))  # every UID exactly once
    uv = res.cursor["folders"]["INBOX"]["uidvalidity"]
    for rec in res.upserts:
        src = written[index_of(rec.subject)]
        assert rec.provider_id.startswith(f"INBOX:{uv}:") and rec.folder == "INBOX"
        assert rec.flags == tuple(sorted(src.flags))
        assert rec.size == len(src.data)  # generated with CRLF line ends
        assert rec.received_at == int(src.received_at)
        assert rec.sender and rec.internet_message_id and rec.parse_error is None
    assert res.cursor["folders"]["INBOX"]["uids"] == "1:3000"
    assert res.cursor["folders"]["INBOX"]["uidnext"] == 3001
    calls = by_method(ctx)
    assert calls == {"imap.login": 1, "imap.enable": 1, "imap.select": 1, "imap.search": 1,
                     "imap.fetch": 6}  # fmt: skip
    assert res.api_calls == 10


MODES = {
    "qresync": frozenset(),
    "condstore": frozenset({"QRESYNC"}),
    "plain": frozenset({"QRESYNC", "CONDSTORE"}),  # what Outlook offers
}


@pytest.mark.parametrize("mode", list(MODES))
async def test_incremental_picks_up_only_changes(
    mode: str, dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    dovecot.write_messages(
        user, "INBOX", generate_mailbox(random.Random(3), 40, start=START, end=START + 4e5)
    )
    provider = ImapProvider(
        ImapSettings(allowed_networks=LOOPBACK, ignore_capabilities=MODES[mode])
    )
    try:
        first = await provider.sync(context_for(user), SyncKind.FULL, None)
        assert len(first.upserts) == 40
        uv = first.cursor["folders"]["INBOX"]["uidvalidity"]
        before = {r.provider_id: r.flags for r in first.upserts}

        rng = random.Random(11)
        async with await ImapAdmin.login(dovecot.host, dovecot.port, user.name, user.password) as a:
            for i in range(3):
                msg = generate_message(rng, 100 + i, START + 5e5)
                await a.append("INBOX", msg.data, ["\\Seen"])
            await a.store("INBOX", [5, 6], "+FLAGS", ["\\Flagged", "$Important"])
            await a.store("INBOX", [7], "-FLAGS", ["\\Seen"])
            await a.expunge("INBOX", [10, 20])

        ctx = context_for(user)
        res = await provider.sync(ctx, SyncKind.INCREMENTAL, first.cursor)
        assert res.kind is SyncKind.INCREMENTAL and not res.full_scopes
        assert not res.fell_back_to_full
        assert sorted(index_of(r.subject) for r in res.upserts) == [100, 101, 102]
        assert sorted(r.provider_id for r in res.upserts) == [
            f"INBOX:{uv}:{u}" for u in (41, 42, 43)
        ]
        expected_flags = {
            f"INBOX:{uv}:5": tuple(sorted({*before[f"INBOX:{uv}:5"], "\\Flagged", "$Important"})),
            f"INBOX:{uv}:6": tuple(sorted({*before[f"INBOX:{uv}:6"], "\\Flagged", "$Important"})),
        }
        if "\\Seen" in before[f"INBOX:{uv}:7"]:
            expected_flags[f"INBOX:{uv}:7"] = tuple(
                f for f in before[f"INBOX:{uv}:7"] if f != "\\Seen"
            )
        assert dict(res.flag_updates) == expected_flags
        assert sorted(res.deletes) == [f"INBOX:{uv}:10", f"INBOX:{uv}:20"]
        state = res.cursor["folders"]["INBOX"]
        assert state["uids"] == "1:9,11:19,21:43" and state["uidnext"] == 44
        calls = by_method(ctx)
        assert "imap.login" not in calls  # the pooled connection was reused
        if mode == "qresync":
            # One SELECT (QRESYNC) tells vanished + changed; one FETCH gets the new headers.
            assert calls == {"imap.select": 1, "imap.fetch": 1}
        elif mode == "condstore":
            assert calls == {"imap.select": 1, "imap.fetch": 2, "imap.search": 1}
        else:
            assert calls == {"imap.select": 1, "imap.fetch": 2}

        quiet = await provider.sync(ctx, SyncKind.INCREMENTAL, res.cursor)
        assert not (quiet.upserts or quiet.flag_updates or quiet.deletes)
        assert quiet.cursor == res.cursor
    finally:
        await provider.aclose()


async def test_uidvalidity_change_resyncs_that_folder(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    rng = random.Random(5)
    dovecot.write_messages(user, "INBOX", generate_mailbox(rng, 5, start=START, end=START + 50))
    dovecot.write_messages(
        user, "Work", generate_mailbox(rng, 8, start=START, end=START + 80, first_index=100)
    )
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    try:
        ctx = context_for(user, folders=["INBOX", "Work"])
        first = await provider.sync(ctx, SyncKind.FULL, None)
        assert first.full_scopes == ["INBOX", "Work"] and len(first.upserts) == 13
        old_uv = first.cursor["folders"]["Work"]["uidvalidity"]

        async with await ImapAdmin.login(dovecot.host, dovecot.port, user.name, user.password) as a:
            await a.delete("Work")
            await a.create("Work")
            for i in range(2):
                await a.append("Work", generate_message(rng, 200 + i, START + 1e3).data)

        res = await provider.sync(ctx, SyncKind.INCREMENTAL, first.cursor)
        new_uv = res.cursor["folders"]["Work"]["uidvalidity"]
        assert new_uv != old_uv
        assert res.fell_back_to_full and res.kind is SyncKind.INCREMENTAL
        assert res.full_scopes == ["Work"]  # the worker drops Work's old rows
        assert sorted(r.provider_id for r in res.upserts) == [
            f"Work:{new_uv}:1",
            f"Work:{new_uv}:2",
        ]
        assert res.cursor["folders"]["INBOX"] == first.cursor["folders"]["INBOX"]
    finally:
        await provider.aclose()


async def test_wrong_password_is_auth_revoked(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    ctx = context_for(user, password="wrong")
    try:
        with pytest.raises(AuthRevoked, match="AUTHENTICATIONFAILED") as err:
            await provider.sync(ctx, SyncKind.FULL, None)
        decision = on_failure(err.value.kind, 0, 0.0, random.Random(1), RetryPolicy())
        assert decision.outcome is Outcome.NEEDS_REAUTH
        assert provider.pool.open_count((dovecot.host, dovecot.port, user.name)) == 0
        assert provider.pool.stats.logins == 0
    finally:
        await provider.aclose()


class _Tokens:
    """A token source handing out a cached token, and a new one when forced to refresh."""

    def __init__(self, cached: str, refreshed: str) -> None:
        self.cached, self.refreshed = cached, refreshed
        self.calls: list[bool] = []

    async def get(self, force_refresh: bool = False) -> str:
        self.calls.append(force_refresh)
        return self.refreshed if force_refresh else self.cached


async def test_xoauth2_stale_token_is_refreshed_once(
    oauth_dovecot: tuple[DovecotServer, dict[str, str]], context_for: MakeCtx
) -> None:
    server, valid = oauth_dovecot
    user = server.add_user("olga", "unused-password")
    server.write_messages(
        user, "INBOX", generate_mailbox(random.Random(6), 2, start=START, end=START + 2)
    )
    valid["fresh-token"] = "olga"
    tokens = _Tokens("expired-token", "fresh-token")
    ctx = context_for(user, server=server, extra={"auth": "xoauth2"}, tokens=tokens)
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    try:
        res = await provider.sync(ctx, SyncKind.FULL, None)
    finally:
        await provider.aclose()
    assert len(res.upserts) == 2 and tokens.calls == [False, True]
    assert by_method(ctx)["imap.login"] == 2


async def test_xoauth2_revoked_grant_is_auth_revoked(
    oauth_dovecot: tuple[DovecotServer, dict[str, str]], context_for: MakeCtx
) -> None:
    server, _valid = oauth_dovecot
    user = server.add_user("pavel", "unused-password")
    tokens = _Tokens("revoked-1", "revoked-2")
    ctx = context_for(user, server=server, extra={"auth": "xoauth2"}, tokens=tokens)
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    try:
        with pytest.raises(AuthRevoked, match="XOAUTH2"):
            await provider.sync(ctx, SyncKind.FULL, None)
    finally:
        await provider.aclose()
    assert tokens.calls == [False, True] and provider.pool.stats.logins == 0


async def test_malformed_messages_are_stored_with_reasons(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    rng = random.Random(9)
    dovecot.write_messages(user, "INBOX", generate_mailbox(rng, 10, start=START, end=START + 10))
    bad = malformed_messages(START + 100)
    dovecot.write_messages(user, "INBOX", bad.values())
    dovecot.write_messages(
        user, "INBOX", generate_mailbox(rng, 10, start=START + 200, end=START + 210, first_index=50)
    )
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK, fetch_chunk=7))
    try:
        res = await provider.sync(context_for(user), SyncKind.FULL, None)
    finally:
        await provider.aclose()
    assert len(res.upserts) == 20 + len(bad) and not res.skipped
    by_mid = {r.internet_message_id: r for r in res.upserts}
    assert by_mid["<broken@example.test>"].parse_error is None  # MIME is never parsed
    eight = by_mid["<8bit@example.test>"]
    assert eight.sender == "Jürgen Größe <jg@example.test>"
    assert eight.subject == "Grüße aus Köln – 8bit"
    assert "not UTF-8" in (eight.parse_error or "")
    ew = by_mid["<ew@example.test>"]
    assert ew.sender == "Renée <renee@example.test>" and (ew.subject or "").startswith("été")
    assert "unknown charset" in (ew.parse_error or "")
    # Only the first 64 KiB of its header fields are fetched: the Message-ID after them is lost.
    (huge,) = [r for r in res.upserts if (r.subject or "").startswith("long long")]
    assert len(huge.subject or "") == 1000 and huge.internet_message_id is None
    assert "headers cut at 65536 bytes" in (huge.parse_error or "")
    large = by_mid["<large@example.test>"]
    assert large.size is not None and large.size > 12_000_000 and large.parse_error is None
    assert "Date" in (by_mid["<baddate@example.test>"].parse_error or "")
    headerless = [r for r in res.upserts if "no From, Subject" in (r.parse_error or "")]
    assert len(headerless) == 2  # "no-headers" and "garbage-header-lines"
    assert all(r.received_at == START + 100 and r.size for r in headerless)


async def test_missing_folder_is_skipped_and_scoped(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    dovecot.write_messages(
        user, "INBOX", generate_mailbox(random.Random(1), 3, start=START, end=START + 3)
    )
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    try:
        res = await provider.sync(context_for(user, folders=["INBOX", "Nope"]), SyncKind.FULL, None)
        assert len(res.upserts) == 3
        assert res.skipped == [("folder:Nope", "folder does not exist")]
        assert res.full_scopes == ["INBOX", "Nope"] and list(res.cursor["folders"]) == ["INBOX"]
        with pytest.raises(PermanentError, match="none of the folders"):
            await provider.sync(context_for(user, folders=["Nope"]), SyncKind.FULL, None)
    finally:
        await provider.aclose()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"tls": "starttls"}, "STARTTLS is not implemented"),
        ({"tls": "none", "host": "imap.example.com"}, "loopback"),
        ({"auth": "kerberos"}, "config.auth"),
        ({"port": "993"}, "config.port"),
    ],
)
async def test_bad_account_config_is_permanent(
    extra: dict[str, object], message: str, new_user: MakeUser, context_for: MakeCtx
) -> None:
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    with pytest.raises(PermanentError, match=message):
        await provider.sync(context_for(new_user(), extra=extra), SyncKind.FULL, None)
    await provider.aclose()


async def test_unreadable_cursor_falls_back_to_full(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    user = new_user()
    dovecot.write_messages(
        user, "INBOX", generate_mailbox(random.Random(2), 4, start=START, end=START + 4)
    )
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    try:
        cursor = {"v": 1, "folders": {"INBOX": {"uidvalidity": "x"}}}
        res = await provider.sync(context_for(user), SyncKind.INCREMENTAL, cursor)
    finally:
        await provider.aclose()
    assert res.kind is SyncKind.FULL and res.fell_back_to_full and len(res.upserts) == 4


async def test_implicit_tls(context_for: MakeCtx) -> None:
    base = scratch_dir()
    server = DovecotServer(base, tls=True)
    server.start()
    try:
        user = server.add_user("tina", "pw")
        server.write_messages(
            user, "INBOX", generate_mailbox(random.Random(8), 3, start=START, end=START + 3)
        )
        ctx = context_for(user, server=server, extra={"tls": "implicit"})
        trusted = ImapProvider(
            ImapSettings(allowed_networks=LOOPBACK, ca_file=str(server.cert_path))
        )
        unchecked = ImapProvider(ImapSettings(allowed_networks=LOOPBACK, verify_tls=False))
        strict = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
        try:
            assert len((await trusted.sync(ctx, SyncKind.FULL, None)).upserts) == 3
            assert len((await unchecked.sync(ctx, SyncKind.FULL, None)).upserts) == 3
            with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED"):
                await strict.sync(ctx, SyncKind.FULL, None)
        finally:
            for p in (trusted, unchecked, strict):
                await p.aclose()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


async def test_server_connection_cap_is_rate_limited(context_for: MakeCtx) -> None:
    base = scratch_dir()
    server = DovecotServer(base, max_userip_connections=1)
    server.start()
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK, max_connections=3))
    try:
        user = server.add_user("capped", "pw")
        async with await ImapAdmin.login(server.host, server.port, user.name, "pw"):
            ctx = context_for(user, server=server)
            with pytest.raises(RateLimited, match="LIMIT"):
                await provider.sync(ctx, SyncKind.FULL, None)
            gate = ctx.gate
            assert isinstance(gate, CountingGate) and gate.throttle_events == 1
    finally:
        await provider.aclose()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


async def test_qresync_select_reporting_thousands_of_changes(
    dovecot: DovecotServer, new_user: MakeUser, context_for: MakeCtx
) -> None:
    # Thousands of FETCH lines in one SELECT answer: aioimaplib's recursive line loop would
    # raise RecursionError here; ours is iterative.
    user = new_user()
    dovecot.write_messages(
        user, "INBOX", generate_mailbox(random.Random(12), 4000, start=START, end=START + 4e4)
    )
    provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    try:
        first = await provider.sync(context_for(user), SyncKind.FULL, None)
        uv = first.cursor["folders"]["INBOX"]["uidvalidity"]
        async with await ImapAdmin.login(dovecot.host, dovecot.port, user.name, user.password) as a:
            await a.store("INBOX", range(1, 4001), "+FLAGS", ["$Archived"])
        ctx = context_for(user)
        res = await provider.sync(ctx, SyncKind.INCREMENTAL, first.cursor)
    finally:
        await provider.aclose()
    assert by_method(ctx) == {"imap.select": 1}
    assert len(res.flag_updates) == 4000
    updates = dict(res.flag_updates)
    assert all("$Archived" in updates[r.provider_id] for r in first.upserts)
    assert updates[f"INBOX:{uv}:1"] == tuple(sorted({*first.upserts[0].flags, "$Archived"}))


def test_daemon_settings_map_onto_provider_settings() -> None:
    cfg = Settings().imap.model_copy(
        update={"max_connections_per_account": 3, "fetch_chunk": 200, "idle_keepalive_s": 60.0}
    )
    s = build_imap_provider(cfg).settings
    assert (s.max_connections, s.fetch_chunk, s.keepalive_s) == (3, 200, 60.0)
    assert s.verify_tls and s.command_timeout_s == cfg.command_timeout_s
    with pytest.raises(ConfigError, match="fetch_chunk"):
        ImapSettings(fetch_chunk=0)

"""Pure decisions of the IMAP pool: whom a login serves and when it must be replaced."""

from __future__ import annotations

import pytest

from daemon.crypto import secret_digest
from daemon.policy import IMAP_REAUTH_SHARE, imap_reauth_after
from daemon.providers.base import Credentials
from daemon.providers.imap_identity import LoginIdentity, Reuse, ReuseLimits, reuse_verdict

KEY = bytes(range(32))
LIMITS = ReuseLimits(keepalive_s=60, max_idle_s=600)


def identity(mailbox_id: int = 1, password: str = "pw", **server: object) -> LoginIdentity:
    fields: dict[str, object] = {"host": "imap.test", "port": 993, "tls": "implicit",
                                 "username": "ann", "auth": "password"}  # fmt: skip
    fields.update(server)
    digest = secret_digest(KEY, Credentials({"password": password}))
    return LoginIdentity(**fields, mailbox_id=mailbox_id, secret_digest=digest)  # type: ignore[arg-type]  # fields typed as object for the overrides


def test_digest_tells_credentials_apart_and_hides_them() -> None:
    a = secret_digest(KEY, {"password": "secret-1"})
    assert a == secret_digest(KEY, {"password": "secret-1"})
    assert a != secret_digest(KEY, {"password": "secret-2"})
    assert a != secret_digest(bytes(32), {"password": "secret-1"})  # keyed per process
    # Every secret counts, in any order.
    assert secret_digest(KEY, {"a": "1", "b": "2"}) == secret_digest(KEY, {"b": "2", "a": "1"})
    assert secret_digest(KEY, {"a": "1", "b": "2"}) != secret_digest(KEY, {"a": "1"})
    who = identity(password="hunter2")
    assert "hunter2" not in repr(who) and "secret_digest" not in repr(who)
    assert who.secret_digest.hex() not in repr(who)


def test_identity_covers_mailbox_credentials_and_server() -> None:
    base = identity()
    assert base == identity() and base.account == ("imap.test", 993, "ann")
    others = [
        identity(mailbox_id=2),
        identity(password="other"),
        identity(tls="none"),
        identity(auth="xoauth2"),
        identity(port=143),
        identity(host="imap2.test"),
    ]
    assert all(o != base for o in others)
    # Older logins of the same mailbox are superseded; other mailboxes' are not.
    assert base.supersedes(identity(password="old"))
    assert base.supersedes(identity(host="old.test"))
    assert not base.supersedes(identity(mailbox_id=2))
    assert not base.supersedes(base)


@pytest.mark.parametrize(
    ("now", "logged_in", "last_used", "broken", "bound", "verdict"),
    [
        (100, 0, 90, False, 270, Reuse.AS_IS),
        (100, 0, 30, False, 270, Reuse.NOOP_FIRST),  # idle 70 s > keepalive 60 s
        (700, 0, 99, False, 800, Reuse.DISCARD),  # idle 601 s > max_idle 600 s
        (270, 0, 265, False, 270, Reuse.DISCARD),  # logged in 270 s ago: re-authenticate
        (269.9, 0, 265, False, 270, Reuse.AS_IS),
        (100, 0, 90, True, 270, Reuse.DISCARD),
    ],
)
def test_reuse_verdict(
    now: float, logged_in: float, last_used: float, broken: bool, bound: float, verdict: Reuse
) -> None:
    assert reuse_verdict(now, logged_in, last_used, broken, LIMITS, bound) is verdict


def test_reauth_bound_stays_under_the_sync_interval() -> None:
    assert imap_reauth_after(270, None) == 270
    assert imap_reauth_after(270, 300) == 270
    assert imap_reauth_after(270, 60) == pytest.approx(60 * IMAP_REAUTH_SHARE)
    assert imap_reauth_after(270, 3600) == 270
    # A sync on schedule comes a full interval after the last login: always re-authenticates.
    for interval in (5.0, 60.0, 300.0, 900.0):
        assert imap_reauth_after(270, interval) < interval

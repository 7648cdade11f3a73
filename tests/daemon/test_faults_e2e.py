"""Provider faults end to end: expired cursors, revoked tokens, quotas and 429s."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest

from daemon.policy import QUOTA_MARGIN_DEFAULT
from tests.daemon.harness import (
    MockServer,
    assert_store_matches_mock,
    daemon_settings,
    running,
    seed,
    synced_since,
    wait_until,
)


async def test_expired_cursors_fall_back_to_full_sync(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    mock = mock_server
    await mock.reset({"quotas": {"scale": 10}})
    creds, start, ids = await seed(db, mock, gmail=3, graph=3, seed=21)
    settings = daemon_settings(
        pg_dsn, redis_url, redis_prefix, mock.url, policy={"quota_scale": 10}
    )
    async with running(settings) as daemon:
        await wait_until(lambda: synced_since(db, start, 6), 60, "first sync")
        for c in creds:
            await mock.call("POST", f"/_mock/mailboxes/{c['address']}/expire-cursor")
            await mock.call("POST", f"/_mock/mailboxes/{c['address']}/deliver", {"count": 2})
        again = time.time()
        assert daemon.scheduler is not None
        for mid in ids:
            claimed = await daemon.scheduler.sync_now(mid)
            assert claimed is not None and str(claimed.kind) == "incremental"
        await wait_until(lambda: synced_since(db, again, 6), 60, "the resync")
    runs = await db.fetch(
        "SELECT DISTINCT ON (mailbox_id) kind, fell_back_to_full, error "
        "FROM sync_runs ORDER BY mailbox_id, id DESC"
    )
    assert [(r["kind"], r["fell_back_to_full"], r["error"]) for r in runs] == [
        ("full", True, None)
    ] * 6
    await assert_store_matches_mock(db, mock.messages)


async def test_revoked_token_ends_as_needs_reauth(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    mock = mock_server
    await mock.reset({"quotas": {"scale": 10}})
    creds, start, _ = await seed(db, mock, gmail=2, graph=2, seed=22)
    revoked = {creds[0]["address"], creds[2]["address"]}
    for addr in revoked:
        await mock.call("POST", f"/_mock/mailboxes/{addr}/revoke")
    settings = daemon_settings(
        pg_dsn, redis_url, redis_prefix, mock.url, policy={"quota_scale": 10}
    )
    async with running(settings):

        async def settled() -> bool:
            n = await db.fetchval("SELECT count(*) FROM mailboxes WHERE status = 'needs_reauth'")
            return bool(n == 2) and await synced_since(db, start, 2)

        await wait_until(settled, 60, "revoked mailboxes to need reauth")
        rows = await db.fetch(
            "SELECT address, status, status_reason, state FROM mailboxes "
            "WHERE status = 'needs_reauth'"
        )
        assert {r["address"] for r in rows} == revoked
        assert all("invalid_grant" in r["status_reason"] for r in rows)
        assert all(r["state"] == "idle" for r in rows)
        await asyncio.sleep(1.5)  # a few more scheduler cycles
        # Parked: exactly one run each, no retries.
        n = await db.fetchval("SELECT count(*) FROM sync_runs WHERE error_kind = 'auth_revoked'")
        assert n == 2


@pytest.mark.parametrize("margin", [None, 1.0], ids=["default-margin", "margin-1.0"])
async def test_burst_stays_under_the_quota_margin(
    db: asyncpg.Pool,
    mock_server: MockServer,
    pg_dsn: str,
    redis_url: str,
    redis_prefix: str,
    margin: float | None,
) -> None:
    """A burst of full syncs against a small project quota, several windows long: the daemon
    paces itself so the provider (which enforces the window strictly) sees at most the quota
    margin's share of its limit in any window; with a margin of 1.0 the whole limit."""
    mock = mock_server
    quota = {"gmail.project": {"limit": 1500, "period_s": 2}}
    await mock.reset({"quotas": {"preset": "documented-legacy", "custom": quota}})
    _, start, _ = await seed(db, mock, gmail=20, graph=0, seed=23, median=40, max_size=60)
    policy: dict[str, Any] = {
        "quota_preset": "documented-legacy",
        "quotas": {"gmail.project": {"limit": 1500, "period_s": 2, "burst": 150}},
    }
    if margin is not None:
        policy["quota_margin"] = margin
    settings = daemon_settings(pg_dsn, redis_url, redis_prefix, mock.url, policy=policy)
    expected = QUOTA_MARGIN_DEFAULT if margin is None else margin
    assert settings.policy.quota_margin == expected
    async with running(settings) as daemon:
        await wait_until(lambda: synced_since(db, start, 20), 60, "the burst to finish")
        assert daemon.limiters is not None
        waits = daemon.limiters.stats.waits.get("gmail", 0)
    stats = await mock.stats()
    peak = stats["quota_peaks"]["gmail.project"]
    # The limiter held calls back and kept the provider's busiest window at the margin,
    # give or take a call or two: the daemon counts a call's units when it admits it, the
    # provider when it arrives, a few milliseconds later (on a loaded machine, later still),
    # which can move them into the next window. That slack is what the margin is for.
    assert waits > 0 and peak["limit"] == 1500
    if margin is None:
        # Paced near 90 % of the limit and never the whole of it: the provider refused
        # nothing. The slack above 90 % is the call's travel time: on a busy event loop a
        # burst admitted at the end of one window can arrive in the next (1,450 units were
        # seen once in a provider window against the daemon's 1,350).
        assert 0.8 < peak["peak_ratio"] < 1.0
        assert stats["throttled_total"] == 0, stats["throttled"]
    else:
        # The burst, several windows long, fills the whole limit.
        assert peak["peak_ratio"] > 0.95
    await assert_store_matches_mock(db, mock.messages)


async def test_429s_are_honoured_and_counted(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    """The provider is stricter than the daemon was told: it answers 429 + Retry-After; the
    daemon waits as asked, counts the event and still syncs everything."""
    mock = mock_server
    await mock.reset(
        {
            "quotas": {
                "preset": "documented-legacy",
                "custom": {
                    "graph.mailbox": {"limit": 1, "period_s": 1},
                    "gmail.user": {"limit": 60, "period_s": 1},
                },
            }
        }
    )
    _, start, _ = await seed(db, mock, gmail=3, graph=3, seed=24, median=40, max_size=60)
    settings = daemon_settings(
        pg_dsn,
        redis_url,
        redis_prefix,
        mock.url,
        policy={"quota_preset": "documented-legacy"},
        graph={"max_call_retries": 8},
        gmail={"max_call_retries": 8},
    )
    async with running(settings) as daemon:
        await wait_until(lambda: synced_since(db, start, 6), 90, "all mailboxes despite 429s")
        assert daemon.limiters is not None
        throttled = dict(daemon.limiters.stats.throttled)
    stats = await mock.stats()
    assert stats["throttled_total"] > 0
    assert throttled.get("graph", 0) > 0 and throttled.get("gmail", 0) > 0
    assert sum(throttled.values()) == stats["throttled_total"]
    assert await db.fetchval("SELECT count(*) FROM sync_runs WHERE error IS NOT NULL") == 0
    await assert_store_matches_mock(db, mock.messages)


async def test_dear_gets_are_batched_so_the_per_user_window_holds(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    """2026 Gmail prices: 20 units per get against a per-user budget. A 50-get batch (1,000
    units) admitted piecewise and sent at once would overrun the provider's window; the
    daemon sends batches its bucket can admit whole, so the provider never refuses."""
    mock = mock_server
    await mock.reset(
        {
            "quotas": {
                "preset": "documented-2026",
                "custom": {"gmail.user": {"limit": 400, "period_s": 2}},
            }
        }
    )
    _, start, _ = await seed(db, mock, gmail=2, graph=0, seed=25, median=50, max_size=60)
    settings = daemon_settings(
        pg_dsn,
        redis_url,
        redis_prefix,
        mock.url,
        policy={
            "quota_preset": "documented-2026",
            "quotas": {"gmail.user": {"limit": 400, "period_s": 2, "burst": 100}},
        },
    )
    async with running(settings) as daemon:
        await wait_until(lambda: synced_since(db, start, 2), 60, "both full syncs")
        assert daemon.limiters is not None
        assert daemon.limiters.stats.waits.get("gmail", 0) > 0
    stats = await mock.stats()
    assert stats["throttled_total"] == 0, stats["throttled"]
    assert stats["quota_peaks"]["gmail.user"]["peak_units"] <= 400
    # Five 20-unit gets per batch: the bucket's burst of 100 admits each batch whole.
    counts = [r["message_count"] for r in await db.fetch("SELECT message_count FROM mailboxes")]
    gets = sum(v for k, v in stats["calls"].items() if k.endswith("messages.get"))
    batches = sum(v for k, v in stats["requests"].items() if "batch" in k)
    assert gets == sum(counts)
    assert batches == sum(-(-n // 5) for n in counts)
    await assert_store_matches_mock(db, mock.messages)

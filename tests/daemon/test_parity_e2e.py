"""Decision parity: the pure policy, the simulator's scheduler and the daemon itself (real
PostgreSQL, Redis, bullmq workers and the mock providers at zero latency) make the same
decisions — which mailboxes, which tier, which sync kind — cycle after cycle."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import pytest

from daemon import policy
from daemon.app import Daemon
from daemon.crypto import CredentialCipher
from daemon.policy import Assignment, DueMailbox, ErrorKind
from daemon.providers.base import Credentials
from daemon.store.mailboxes import MailboxStore
from daemon.store.records import ts
from simulator.checks.parity import SyncOutcome, scheduler_decisions
from tests.daemon.harness import TEST_KEY, MockServer, daemon_settings, wait_until

T0 = 1_900_000_000.0
INTERVAL = 120.0


class ManualClock:
    """Daemon time that moves only between scheduler cycles."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _workload(seed: int, n: int) -> list[DueMailbox]:
    rnd = random.Random(seed)
    out = []
    for i in range(1, n + 1):
        due = T0 + 10.0 * rnd.randint(-30, 20)  # a coarse grid: ties broken by id
        age = rnd.choice([None, 60.0, 3 * 3600.0, 10 * 3600.0, 30 * 3600.0, 80 * 3600.0])
        last = None if age is None else T0 - age
        out.append(DueMailbox(i, due, last, last is not None and rnd.random() < 0.7))
    return out


def _pure_policy(
    workload: list[DueMailbox], profile: policy.Profile, cycles: list[float], revoked: set[int]
) -> list[list[Assignment]]:
    state = {m.id: m for m in workload}
    out = []
    for now in cycles:
        plan = policy.plan_cycle(state.values(), now, profile)
        out.append(plan)
        for a in plan:
            if a.mailbox_id in revoked:
                del state[a.mailbox_id]  # needs_reauth: parked, no longer scheduled
            else:
                state[a.mailbox_id] = DueMailbox(
                    a.mailbox_id, policy.next_due(now, INTERVAL), now, True
                )
    return out


# Work conserving changes which worker runs a job, never what the scheduler decides: the
# daemon's pools (every tier's jobs, idle pools taking higher tiers') must run every claim.
@pytest.mark.parametrize("work_conserving", [False, True])
async def test_policy_simulator_and_daemon_decide_alike(
    db: asyncpg.Pool,
    mock_server: MockServer,
    pg_dsn: str,
    redis_url: str,
    redis_prefix: str,
    work_conserving: bool,
) -> None:
    await mock_server.reset({"quotas": {"scale": 10}})
    creds = await mock_server.populate(gmail=24, graph=24, seed=51, median=8, max_size=20)
    rnd = random.Random(51)
    rnd.shuffle(creds)
    workload = _workload(seed=51, n=len(creds))
    revoked_idx = {3, 17, 30}
    for i in revoked_idx:
        await mock_server.call("POST", f"/_mock/mailboxes/{creds[i - 1]['address']}/revoke")
    store = MailboxStore(db)
    tenant = await store.create_tenant("parity", sync_interval_s=int(INTERVAL))
    cipher = CredentialCipher(TEST_KEY)
    for m, c in zip(workload, creds, strict=True):
        row = await store.create_mailbox(
            tenant["id"],
            c["provider"],
            c["address"],
            cipher.encrypt(Credentials({"refresh_token": c["refresh_token"]})),
        )
        assert row["id"] == m.id
        cursor: dict[str, Any] | None = None
        if m.has_cursor:
            cursor = {"history_id": "1"} if c["provider"] == "gmail" else {"folders": {}}
        await db.execute(
            "UPDATE mailboxes SET next_sync_at = $2, last_success_at = $3, cursor = $4 "
            "WHERE id = $1",
            m.id,
            ts(m.next_sync_at),
            ts(m.last_success_at),
            cursor,
        )

    profile_overrides = {
        "batch_size": 7,
        "sync_interval_s": INTERVAL,
        "work_conserving": work_conserving,
    }
    profile = policy.with_overrides(policy.PLAN_B, profile_overrides)
    cycles = [T0 + 10.0 * k for k in range(40)]
    revoked = {m.id for m in workload if m.id in revoked_idx}

    settings = daemon_settings(
        pg_dsn,
        redis_url,
        redis_prefix,
        mock_server.url,
        policy={"quota_scale": 10, **profile_overrides},
        scheduler_enabled=False,
        api_enabled=False,
    )
    clock = ManualClock(cycles[0])
    daemon = Daemon(settings, clock=clock)
    await daemon.start()
    daemon_decisions: list[list[Assignment]] = []
    try:
        assert daemon.scheduler is not None
        for now in cycles:
            clock.now = now
            claimed = await daemon.scheduler.cycle()
            daemon_decisions.append([Assignment(c.mailbox_id, c.tier, c.kind) for c in claimed])

            async def settled() -> bool:
                n = await db.fetchval("SELECT count(*) FROM mailboxes WHERE state <> 'idle'")
                return bool(n == 0)

            await wait_until(settled, 30, f"the cycle at {now} to finish")
    finally:
        await daemon.shutdown()

    outcomes = {}
    for c, decided in enumerate(daemon_decisions):
        for a in decided:
            if a.mailbox_id in revoked:
                outcomes[(c, a.mailbox_id)] = SyncOutcome(ErrorKind.AUTH_REVOKED)
    simulated = scheduler_decisions(workload, profile, cycles, outcomes, interval_s=INTERVAL)
    pure = _pure_policy(workload, profile, cycles, revoked)
    assert daemon_decisions == simulated == pure
    # The workload exercised batching, every tier and both kinds, and the parked mailboxes.
    assert sum(len(d) for d in daemon_decisions) > 100
    assert {(a.tier, a.kind) for d in daemon_decisions for a in d} >= {
        (policy.Tier.HIGH, policy.SyncKind.INCREMENTAL),
        (policy.Tier.HIGH, policy.SyncKind.FULL),
        (policy.Tier.NORMAL, policy.SyncKind.FULL),
        (policy.Tier.LOW, policy.SyncKind.FULL),
    }
    assert max(len(d) for d in daemon_decisions) == 7
    statuses = dict(await db.fetch("SELECT id, status FROM mailboxes WHERE status <> 'active'"))
    assert statuses == {i: "needs_reauth" for i in revoked}

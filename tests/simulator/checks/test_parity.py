"""The simulator's scheduler decides exactly what the pure policy decides."""

from __future__ import annotations

import random

import pytest

from daemon import policy
from daemon.policy import TIERS, Assignment, DueMailbox, ErrorKind, Outcome, Profile, Tier
from simulator.checks.parity import (
    Arrival,
    Start,
    SyncOutcome,
    dispatch_decisions,
    scheduler_decisions,
)


def reference(
    workload: list[DueMailbox],
    profile: Profile,
    cycles: list[float],
    outcomes: dict[tuple[int, int], SyncOutcome],
    interval: float,
    seed: int,
) -> list[list[Assignment]]:
    """The daemon's loop written out with nothing but daemon.policy over the whole table."""
    state = {m.id: [m.next_sync_at, m.last_success_at, m.has_cursor, 0, True] for m in workload}
    rng = random.Random(seed)
    out = []
    for c, now in enumerate(cycles):
        due = [DueMailbox(i, st[0], st[1], st[2]) for i, st in state.items() if st[4]]
        plan = policy.plan_cycle(due, now, profile)
        out.append(plan)
        for a in plan:
            st = state[a.mailbox_id]
            res = outcomes.get((c, a.mailbox_id))
            if res is None or res.error is None:
                st[0], st[1], st[2], st[3] = policy.next_due(now, interval), now, True, 0
                continue
            d = policy.on_failure(res.error, st[3], now, rng, profile.retry, res.retry_after_s)
            st[3] = d.failures
            if d.outcome is Outcome.RETRY:
                assert d.retry_at is not None
                st[0] = d.retry_at
            else:
                st[4] = False
    return out


def workload(seed: int, n: int) -> tuple[list[DueMailbox], dict[tuple[int, int], SyncOutcome]]:
    rnd = random.Random(seed)
    ids = rnd.sample(range(10_000, 99_999), n)
    out = []
    for i in ids:
        # Due times on a coarse grid so that ties (broken by id) happen often.
        nxt = 60.0 * rnd.randint(-120, 10)
        age = rnd.choice([None, 30.0, 3 * 3600.0, 10 * 3600.0, 30 * 3600.0, 100 * 3600.0])
        last = None if age is None else nxt - age
        out.append(DueMailbox(i, nxt, last, last is not None and rnd.random() < 0.8))
    kinds = list(ErrorKind)
    outcomes = {
        (c, i): SyncOutcome(rnd.choice(kinds), rnd.choice([None, 5.0, 120.0]))
        for c in range(80)
        for i in rnd.sample(ids, n // 20)
    }
    return out, outcomes


@pytest.mark.parametrize(
    ("profile_name", "overrides"),
    [
        ("plan-b", {}),
        ("original", {}),
        ("plan-b-wc", {}),
        ("plan-b", {"batch_size": 7, "sync_interval_s": 120}),
    ],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_simulator_scheduler_matches_the_pure_policy(
    profile_name: str, overrides: dict[str, object], seed: int
) -> None:
    profile = policy.with_overrides(policy.get_profile(profile_name), overrides)
    mailboxes, outcomes = workload(seed, 400)
    cycles = [10.0 * k for k in range(80)]
    got = scheduler_decisions(mailboxes, profile, cycles, outcomes, seed=seed)
    want = reference(mailboxes, profile, cycles, outcomes, profile.sync_interval_s, seed)
    assert got == want
    # The workload exercises every tier and both kinds.
    seen = {(a.tier, a.kind) for cycle in got for a in cycle}
    assert {t for t, _ in seen} == set(policy.TIERS)
    assert {k for _, k in seen} == set(policy.SyncKind)


@pytest.mark.parametrize("profile_name", ["plan-b", "original"])
def test_assign_rows_decides_as_assign_one_by_one(profile_name: str) -> None:
    # The simulator's claim assigns a whole batch at once; every age on and around each
    # threshold (tier and sync kind), never synced, with and without a cursor.
    profile = policy.get_profile(profile_name)
    now = 1_000_000.0
    hours = [0.0, profile.normal_after_h, profile.low_after_h, profile.incremental_threshold_h]
    ages = sorted({h * 3600.0 + d for h in hours for d in (-1e-6, 0.0, 1e-6, 60.0)})
    batch = [
        DueMailbox(i, now, None if age is None else now - age, cursor)
        for i, (age, cursor) in enumerate(
            (age, cursor) for age in [None, *ages, -30.0] for cursor in (True, False)
        )
    ]
    got = policy.assign_rows(batch, now, profile)
    assert got == [tuple(policy.assign(m, now, profile)) for m in batch]
    assert {tier for _, tier, _ in got} == set(policy.TIERS)
    assert {kind for _, _, kind in got} == set(policy.SyncKind)


def test_batches_are_capped_and_ordered_by_due_then_id() -> None:
    profile = policy.with_overrides(policy.PLAN_B, {"batch_size": 3})
    mailboxes = [DueMailbox(i, 0.0 if i % 2 else -5.0, None, False) for i in (9, 4, 7, 2, 5)]
    got = scheduler_decisions(mailboxes, profile, [0.0, 0.0])
    assert [[a.mailbox_id for a in c] for c in got] == [[2, 4, 5], [7, 9]]


def test_rejects_unordered_cycles_and_duplicate_ids() -> None:
    m = DueMailbox(1, 0.0, None, False)
    with pytest.raises(ValueError, match="non-decreasing"):
        scheduler_decisions([m], policy.PLAN_B, [10.0, 0.0])
    with pytest.raises(ValueError, match="unique"):
        scheduler_decisions([m, m], policy.PLAN_B, [0.0])


# --- worker pools ---------------------------------------------------------------------------


def reference_dispatch(profile: Profile, arrivals: list[Arrival], processes: int) -> list[Start]:
    """The pools written out with nothing but ``policy.serving_order`` and ``serving_pools``:
    at each instant the ends, then the arrivals in list order."""
    free = {t: processes * profile.concurrency.for_tier(t) for t in TIERS}
    waiting: dict[Tier, list[int]] = {t: [] for t in TIERS}
    running: list[tuple[float, int, Tier]] = []  # (end, order started, pool)
    out: list[Start] = []
    instants = sorted({a.at for a in arrivals})
    pending = list(range(len(arrivals)))

    def start(job: int, now: float, pool: Tier) -> None:
        out.append(Start(job, now, pool))
        running.append((now + arrivals[job].run_s, len(out), pool))

    while pending or running:
        next_arrival = arrivals[pending[0]].at if pending else float("inf")
        next_end = min((e for e, _, _ in running), default=float("inf"))
        now = min(next_arrival, next_end)
        if next_end <= next_arrival:
            # One end at a time (the earliest started first), as the calendar pops them.
            end = min(r for r in running if r[0] == now)
            running.remove(end)
            pool = end[2]
            queue = next((q for q in policy.serving_order(pool, profile) if waiting[q]), None)
            if queue is None:
                free[pool] += 1
            else:
                start(waiting[queue].pop(0), now, pool)
            continue
        job = pending.pop(0)
        tier = arrivals[job].tier
        pool = next((p for p in policy.serving_pools(tier, profile) if free[p] > 0), None)
        if pool is None:
            waiting[tier].append(job)
        else:
            free[pool] -= 1
            start(job, now, pool)
    assert instants  # arrivals exist
    return out


def random_arrivals(seed: int, n: int) -> list[Arrival]:
    rnd = random.Random(seed)
    out, t = [], 0.0
    for _ in range(n):
        # Bursts (batch releases: several jobs at one instant) and whole-second run times,
        # so that ends and arrivals coincide often.
        t += rnd.choice([0.0, 0.0, 0.0, 1.0, 2.0, 5.0])
        tier = rnd.choices(TIERS, weights=[6, 2, 1])[0]
        out.append(Arrival(t, tier, float(rnd.randint(1, 12))))
    return out


def waits(arrivals: list[Arrival], starts: list[Start]) -> dict[int, float]:
    return {s.job: s.at - arrivals[s.job].at for s in starts}


@pytest.mark.parametrize("profile_name", ["plan-b", "plan-b-wc", "original"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_simulator_pools_match_the_pure_policy(profile_name: str, seed: int) -> None:
    profile = policy.with_overrides(
        policy.get_profile(profile_name), {"concurrency": {"high": 3, "normal": 2, "low": 1}}
    )
    arrivals = random_arrivals(seed, 600)
    got = dispatch_decisions(profile, arrivals)
    assert got == reference_dispatch(profile, arrivals, 1)
    assert sorted(s.job for s in got) == list(range(len(arrivals)))
    pools = {s.pool for s in got}
    if profile.work_conserving:
        # Lower pools ran high jobs; the high pool never ran lower-tier work.
        assert {s.pool for s in got if arrivals[s.job].tier is Tier.HIGH} == set(TIERS)
        assert all(arrivals[s.job].tier is Tier.HIGH for s in got if s.pool is Tier.HIGH)
    else:
        assert all(arrivals[s.job].tier is s.pool for s in got)
    assert pools == set(TIERS)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_work_conserving_is_strict_priority_and_never_idles_a_worker(seed: int) -> None:
    profile = policy.with_overrides(
        policy.PLAN_B_WC, {"concurrency": {"high": 3, "normal": 2, "low": 1}}
    )
    arrivals = random_arrivals(seed, 600)
    starts = dispatch_decisions(profile, arrivals, processes=2)
    start_of = {s.job: s for s in starts}
    rank = {t: i for i, t in enumerate(TIERS)}
    for s in starts:
        tier = arrivals[s.job].tier
        assert tier in policy.serving_order(s.pool, profile)
        # Strict priority: no job of a tier this pool serves first was waiting then.
        for j, a in enumerate(arrivals):
            if (
                j == s.job
                or rank[a.tier] >= rank[tier]
                or s.pool not in (policy.serving_pools(a.tier, profile))
            ):
                continue
            assert not a.at < s.at < start_of[j].at, (s, j)
    # Work conserving: while a job waits, every pool allowed to take it is fully busy.
    instants = sorted({a.at for a in arrivals} | {s.at for s in starts})
    for t in instants:
        busy = {
            p: sum(1 for s in starts if s.pool is p and s.at <= t < s.at + arrivals[s.job].run_s)
            for p in TIERS
        }
        for j, a in enumerate(arrivals):
            if a.at <= t < start_of[j].at:
                for p in policy.serving_pools(a.tier, profile):
                    assert busy[p] == 2 * profile.concurrency.for_tier(p), (t, j, p)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_work_conserving_never_delays_a_high_job(seed: int) -> None:
    base = policy.with_overrides(policy.PLAN_B, {"concurrency": {"high": 3, "normal": 2, "low": 1}})
    wc = policy.with_overrides(base, {"work_conserving": True})
    arrivals = random_arrivals(seed, 600)
    off = waits(arrivals, dispatch_decisions(base, arrivals))
    on = waits(arrivals, dispatch_decisions(wc, arrivals))
    high = [j for j, a in enumerate(arrivals) if a.tier is Tier.HIGH]
    # Job by job, not only on average: more workers, FIFO, the same run times.
    assert all(on[j] <= off[j] for j in high)
    assert sum(on[j] for j in high) < sum(off[j] for j in high)

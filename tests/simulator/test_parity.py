"""The simulator's scheduler decides exactly what the pure policy decides."""

from __future__ import annotations

import random

import pytest

from daemon import policy
from daemon.policy import Assignment, DueMailbox, ErrorKind, Outcome, Profile
from simulator.parity import SyncOutcome, scheduler_decisions


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
    [("plan-b", {}), ("original", {}), ("plan-b", {"batch_size": 7, "sync_interval_s": 120})],
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

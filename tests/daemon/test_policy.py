"""The pure policy: tiers, sync kinds, batch selection, due times, backoff, profiles."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from daemon.policy import (
    ORIGINAL,
    PLAN_B,
    PLAN_B_WC,
    PROFILES,
    QUOTA_MARGIN_DEFAULT,
    ApiCall,
    DueMailbox,
    ErrorKind,
    FetchShape,
    Outcome,
    SyncKind,
    Tier,
    apply_quota_margin,
    backoff_delay,
    batch_fits,
    get_profile,
    get_quota_preset,
    hours_since,
    next_due,
    on_failure,
    plan_cycle,
    quota_deferral,
    select_batch,
    serving_order,
    serving_pools,
    sync_calls,
    sync_kind,
    tier_for,
    with_overrides,
    workers_serving,
)

H = 3600.0


def test_profiles_match_the_plan_table() -> None:
    assert (ORIGINAL.concurrency.high, ORIGINAL.concurrency.normal, ORIGINAL.concurrency.low) == (
        5,
        3,
        2,
    )
    assert (PLAN_B.concurrency.high, PLAN_B.concurrency.normal, PLAN_B.concurrency.low) == (
        17,
        10,
        7,
    )
    assert (ORIGINAL.batch_size, PLAN_B.batch_size) == (50, 200)
    assert (ORIGINAL.incremental_threshold_h, PLAN_B.incremental_threshold_h) == (1, 6)
    assert (ORIGINAL.low_after_h, ORIGINAL.normal_after_h) == (24, 2)
    assert (PLAN_B.low_after_h, PLAN_B.normal_after_h) == (48, 6)
    assert get_profile("plan-b") is PLAN_B
    with pytest.raises(KeyError, match="known: original, plan-b"):
        get_profile("plan-c")


@pytest.mark.parametrize(
    ("hours", "original", "plan_b"),
    [
        (0.0, Tier.HIGH, Tier.HIGH),
        (2.0, Tier.HIGH, Tier.HIGH),  # "> 2 h" is strict
        (2.01, Tier.NORMAL, Tier.HIGH),
        (6.5, Tier.NORMAL, Tier.NORMAL),
        (24.5, Tier.LOW, Tier.NORMAL),
        (48.5, Tier.LOW, Tier.LOW),
        (math.inf, Tier.LOW, Tier.LOW),  # never synced
    ],
)
def test_tier_follows_the_active_profile(hours: float, original: Tier, plan_b: Tier) -> None:
    assert tier_for(hours, ORIGINAL) is original
    assert tier_for(hours, PLAN_B) is plan_b


def test_sync_kind_needs_cursor_and_recent_sync() -> None:
    assert sync_kind(True, 0.5, ORIGINAL) is SyncKind.INCREMENTAL
    assert sync_kind(True, 1.5, ORIGINAL) is SyncKind.FULL
    assert sync_kind(True, 1.5, PLAN_B) is SyncKind.INCREMENTAL
    assert sync_kind(True, 6.0, PLAN_B) is SyncKind.FULL
    assert sync_kind(False, 0.1, PLAN_B) is SyncKind.FULL
    assert hours_since(None, 100.0) == math.inf
    assert hours_since(0.0, 2 * H) == 2.0


def test_select_batch_takes_oldest_due_first_up_to_the_batch() -> None:
    due = [DueMailbox(i, float(100 - i), None, False) for i in range(10)]
    due.append(DueMailbox(99, 500.0, None, False))  # not due yet
    due.append(DueMailbox(50, 95.0, None, False))  # ties with id 5, id breaks the tie
    picked = select_batch(due, now=200.0, batch_size=4)
    assert [m.id for m in picked] == [9, 8, 7, 6]
    picked = select_batch(due, now=200.0, batch_size=7)
    assert [m.id for m in picked] == [9, 8, 7, 6, 5, 50, 4]


def test_plan_cycle_assigns_tier_and_kind() -> None:
    now = 100 * H
    due = [
        DueMailbox(1, 0.0, None, False),  # new: low / full
        DueMailbox(2, 1.0, now - 0.2 * H, True),  # fresh: high / incremental
        DueMailbox(3, 2.0, now - 10 * H, True),  # plan-b normal, past 6 h threshold: full
        DueMailbox(4, 3.0, now - 3 * H, True),  # plan-b high/incremental; original normal/full
    ]
    plan = plan_cycle(due, now, PLAN_B)
    assert [(a.mailbox_id, a.tier, a.kind) for a in plan] == [
        (1, Tier.LOW, SyncKind.FULL),
        (2, Tier.HIGH, SyncKind.INCREMENTAL),
        (3, Tier.NORMAL, SyncKind.FULL),
        (4, Tier.HIGH, SyncKind.INCREMENTAL),
    ]
    plan = plan_cycle(due, now, ORIGINAL)
    assert [(a.tier, a.kind) for a in plan][3] == (Tier.NORMAL, SyncKind.FULL)


def test_next_due_is_anchored_on_the_start() -> None:
    assert next_due(1000.0, 300.0) == 1300.0


def test_backoff_is_exponential_capped_and_jittered() -> None:
    retry = PLAN_B.retry
    rng = random.Random(7)
    delays = [backoff_delay(n, rng, retry) for n in range(1, 12)]
    for n, d in enumerate(delays, start=1):
        ceiling = min(retry.cap_s, retry.base_s * retry.factor ** (n - 1))
        assert ceiling * (1 - retry.jitter) <= d <= ceiling
    assert max(delays) <= retry.cap_s
    # Randomness is passed in: the same seed gives the same delays.
    again = random.Random(7)
    assert delays == [backoff_delay(n, again, retry) for n in range(1, 12)]


def test_on_failure_decides_retry_reauth_or_error() -> None:
    rng = random.Random(1)
    retry = PLAN_B.retry
    d = on_failure(ErrorKind.TRANSIENT, 0, 1000.0, rng, retry)
    assert d.outcome is Outcome.RETRY and d.failures == 1
    assert 1000 + retry.base_s / 2 <= (d.retry_at or 0) <= 1000 + retry.base_s
    d = on_failure(ErrorKind.RATE_LIMITED, 0, 1000.0, rng, retry, retry_after_s=600.0)
    assert d.outcome is Outcome.RETRY and d.retry_at == 1600.0
    assert on_failure(ErrorKind.AUTH_REVOKED, 0, 0.0, rng, retry).outcome is Outcome.NEEDS_REAUTH
    assert on_failure(ErrorKind.PERMANENT, 0, 0.0, rng, retry).outcome is Outcome.ERROR
    d = on_failure(ErrorKind.TRANSIENT, retry.max_failures - 1, 0.0, rng, retry)
    assert d.outcome is Outcome.ERROR and d.retry_at is None


def test_overrides_change_only_what_they_name() -> None:
    p = with_overrides(PLAN_B, {"concurrency.high": 20, "batch_size": 300, "retry": {"cap_s": 60}})
    assert (p.concurrency.high, p.concurrency.normal, p.batch_size, p.retry.cap_s) == (
        20,
        10,
        300,
        60,
    )
    assert p.low_after_h == PLAN_B.low_after_h
    with pytest.raises(ValueError, match="unknown profile field 'batchsize'"):
        with_overrides(PLAN_B, {"batchsize": 3})
    with pytest.raises(ValueError, match="concurrency.bogus"):
        with_overrides(PLAN_B, {"concurrency.bogus": 3})
    with pytest.raises(ValueError, match="low_after_h must be greater"):
        with_overrides(PLAN_B, {"low_after_h": 1.0})


def test_quota_presets_carry_documented_limits() -> None:
    doc = get_quota_preset("documented")
    user = next(q for q in doc["gmail"].quotas if q.name == "gmail.user")
    assert (user.limit, user.period_s) == (6_000, 60)
    assert doc["gmail"].cost("messages.get") == 20 and doc["gmail"].cost("history.list") == 2
    legacy = get_quota_preset("documented-legacy")["gmail"]
    assert legacy.cost("messages.get") == 5
    graph = {q.name: q for q in doc["graph"].quotas}
    assert (graph["graph.mailbox"].limit, graph["graph.mailbox"].period_s) == (10_000, 600)
    planned = get_quota_preset("as-planned")
    assert [(q.limit, q.period_s) for q in planned["gmail"].quotas] == [(100, 1)]
    # Burst plus the sustained rate over one period never exceeds the limit.
    for preset in ("as-planned", "documented-legacy", "documented-2026"):
        for lim in get_quota_preset(preset).values():
            for q in lim.quotas:
                assert q.burst + q.sustained_per_s * q.period_s == pytest.approx(q.limit)


def test_the_quota_margin_lowers_every_limit_and_keeps_the_bursts() -> None:
    # The shipped default leaves a tenth of every quota as headroom.
    assert QUOTA_MARGIN_DEFAULT == 0.9
    gmail = get_quota_preset("documented")["gmail"]
    margined = apply_quota_margin(gmail, QUOTA_MARGIN_DEFAULT)
    assert [(q.name, q.limit, q.period_s, q.burst) for q in margined.quotas] == [
        ("gmail.user", 5_400, 60, 100),
        ("gmail.project", 1_080_000, 60, 20_000),
    ]
    # Same costs and batch sizes; only the sustained rate drops (6,000 -> 5,400 a minute).
    assert margined.costs == gmail.costs
    assert batch_fits(margined, "messages.get", 50) == batch_fits(gmail, "messages.get", 50) == 5
    assert margined.quotas[0].sustained_per_s == pytest.approx((5_400 - 100) / 60)
    assert apply_quota_margin(gmail, 1.0) == gmail
    # Rounded down, never losing a unit to float error; a burst stays below the limit.
    tiny = replace(gmail, quotas=(replace(gmail.quotas[0], limit=100, burst=50),))
    assert [(q.limit, q.burst) for q in apply_quota_margin(tiny, 0.29).quotas] == [(29, 28)]
    for bad in (0.0, -0.5, 1.01):
        with pytest.raises(ValueError, match="quota_margin must be within"):
            apply_quota_margin(gmail, bad)


def test_sync_calls_count_requests_and_quota_calls() -> None:
    full = sync_calls("gmail", SyncKind.FULL, 1200)
    assert [(c.method, c.count, c.requests) for c in full] == [
        ("getProfile", 1, 1),
        ("messages.list", 3, 3),
        ("messages.get", 1200, 24),
    ]
    inc = sync_calls("gmail", SyncKind.INCREMENTAL, 1200, added=3)
    assert [(c.method, c.count, c.requests) for c in inc] == [
        ("history.list", 1, 1),
        ("messages.get", 3, 1),
    ]
    # Graph, whole mailbox (9 folders, 2 with child folders): the folder lists, then one
    # delta round per folder, an incremental sync's in one JSON batch (each page charged)
    # that also carries the root list's page (a call without a request of its own);
    # 1,000 messages are 112 per folder, two pages of 100 each.
    inc = sync_calls("graph", SyncKind.INCREMENTAL, 500, added=3)
    assert [(c.method, c.count, c.requests) for c in inc] == [
        ("mailFolders.list", 1, 0),
        ("mailFolders.childFolders", 2, 2),
        ("messages.delta", 9, 1),
    ]
    # A full sync lists first, on its own.
    full = sync_calls("graph", SyncKind.FULL, 500)
    assert full[0] == ApiCall("mailFolders.list", 1, 1)
    # 40 folders with the list in the first batch: 19 pages ride with it, then 20, then 1.
    forty = FetchShape(graph_folders=40)
    assert sync_calls("graph", SyncKind.INCREMENTAL, 500, shape=forty)[-1] == ApiCall(
        "messages.delta", 40, 3
    )
    # 250 changes are three pages in the changed folder: two more batches of one.
    inc = sync_calls("graph", SyncKind.INCREMENTAL, 500, added=250)
    assert (inc[-1].count, inc[-1].requests) == (11, 3)
    # 45 folders: batches of 20, 20 and 5.
    many = FetchShape(graph_folders=45, graph_list_folders=False)
    assert sync_calls("graph", SyncKind.INCREMENTAL, 500, shape=many) == [
        ApiCall("messages.delta", 45, 3)
    ]
    # Batching off: one request per page.
    one_by_one = FetchShape(graph_folders=45, graph_list_folders=False, graph_batch=0)
    assert sync_calls("graph", SyncKind.INCREMENTAL, 500, shape=one_by_one) == [
        ApiCall("messages.delta", 45, 45)
    ]
    full = sync_calls("graph", SyncKind.FULL, 1000)
    assert [(c.method, c.requests) for c in full][-1] == ("messages.delta", 18)
    # Narrowed to two named folders: nothing listed.
    two = FetchShape(graph_folders=2, graph_list_folders=False)
    assert [
        (c.method, c.requests) for c in sync_calls("graph", SyncKind.INCREMENTAL, 500, shape=two)
    ] == [("messages.delta", 1)]
    assert sync_calls("graph", SyncKind.FULL, 1000, shape=two)[0].requests == 10
    # 250 folders in one level: three pages of 100, the first in the delta batch.
    wide = FetchShape(graph_folders=250, graph_parent_folders=0)
    assert sync_calls("graph", SyncKind.INCREMENTAL, 0, shape=wide)[0] == ApiCall(
        "mailFolders.list", 3, 2
    )


def test_imap_call_model_matches_measured_round_trips() -> None:
    # Round trips measured against Dovecot for a 10,000-message folder after 5 new,
    # 20 flag changes and 3 deletions (docs/imap.md): QRESYNC 2, CONDSTORE 4, plain 4.
    for mode, trips in (("qresync", 2), ("condstore", 4), ("plain", 4)):
        calls = sync_calls(
            "imap", SyncKind.INCREMENTAL, 10_000, 5, 20, 3, FetchShape(imap_mode=mode)
        )
        assert sum(c.requests for c in calls) == trips, mode
    full = sync_calls("imap", SyncKind.FULL, 3000)
    assert [(c.method, c.requests) for c in full] == [
        ("imap.select", 1),
        ("imap.search", 1),
        ("imap.fetch", 6),
    ]


def test_batches_fit_the_enforced_buckets_whole() -> None:
    from daemon.policy import batch_fits, fetch_shape_for

    doc = get_quota_preset("documented-2026")
    # 20 units per get, per-user burst 100: at most 5 gets travel in one batch.
    assert batch_fits(doc["gmail"], "messages.get", 50) == 5
    assert fetch_shape_for(doc).gmail_batch == 5
    assert fetch_shape_for(get_quota_preset("documented-legacy")).gmail_batch == 50
    assert batch_fits(None, "messages.get", 50) == 50


@pytest.mark.parametrize(
    ("waited", "wait", "budget", "expected"),
    [
        (0.0, 0.0, 1.0, None),  # admitted at once
        (0.0, 0.8, 1.0, None),  # within the budget: wait inline
        (0.5, 0.5, 1.0, None),  # exactly the budget
        (0.5, 0.6, 1.0, 0.6),  # past it: give the worker back for the wait
        (0.0, 1.13, 1.0, 1.13),  # a whole refill beyond the budget on the first wait
        (0.0, 0.2, 0.0, 0.2),  # a zero budget never waits
    ],
)
def test_quota_deferral_waits_within_the_run_budget_only(
    waited: float, wait: float, budget: float, expected: float | None
) -> None:
    assert quota_deferral(waited, wait, budget) == expected


def test_full_sync_budget_is_a_profile_field() -> None:
    assert PLAN_B.full_sync_quota_wait_s == ORIGINAL.full_sync_quota_wait_s == 1.0
    p = with_overrides(PLAN_B, {"full_sync_quota_wait_s": 3})
    assert p.full_sync_quota_wait_s == 3
    with pytest.raises(ValueError, match="full_sync_quota_wait_s must be >= 0"):
        with_overrides(PLAN_B, {"full_sync_quota_wait_s": -1.0})


def test_work_conserving_is_off_in_the_shipped_plans_and_on_in_plan_b_wc() -> None:
    assert list(PROFILES) == ["original", "plan-b", "plan-b-wc"]
    assert not ORIGINAL.work_conserving and not PLAN_B.work_conserving
    assert PLAN_B_WC.work_conserving
    # Otherwise Plan B, field by field.
    assert replace(PLAN_B_WC, name="plan-b", work_conserving=False) == PLAN_B
    assert with_overrides(PLAN_B, {"work_conserving": True}).work_conserving
    assert not with_overrides(PLAN_B_WC, {"work_conserving": False}).work_conserving
    with pytest.raises(ValueError, match="work_conserving must be true or false"):
        with_overrides(PLAN_B, {"work_conserving": "yes"})


def test_serving_order_is_strict_priority_from_high_down_to_the_own_tier() -> None:
    high, normal, low = Tier.HIGH, Tier.NORMAL, Tier.LOW
    for tier in (high, normal, low):
        assert serving_order(tier, PLAN_B) == (tier,)
        assert serving_pools(tier, PLAN_B) == (tier,)
    assert serving_order(high, PLAN_B_WC) == (high,)
    assert serving_order(normal, PLAN_B_WC) == (high, normal)
    assert serving_order(low, PLAN_B_WC) == (high, normal, low)
    # A high job: its own pool first, then the lower ones; a low job only its own.
    assert serving_pools(high, PLAN_B_WC) == (high, normal, low)
    assert serving_pools(normal, PLAN_B_WC) == (normal, low)
    assert serving_pools(low, PLAN_B_WC) == (low,)
    assert [workers_serving(t, PLAN_B) for t in (high, normal, low)] == [17, 10, 7]
    assert [workers_serving(t, PLAN_B_WC) for t in (high, normal, low)] == [34, 17, 7]

"""Decision parity: the simulator's scheduler and worker pools replayed over a workload.

``scheduler_decisions`` runs the same ``MailboxTable`` the event simulation uses, with zero
sync latency, and returns each cycle's assignments. The daemon's own scheduler, run against
mock providers answering at once, must produce the same lists; so must the pure policy.
``dispatch_decisions`` runs the event model's ``TierPools`` over given arrivals and run
times and returns which pool started each job and when (``policy.serving_order``).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from daemon.policy import TIERS, Assignment, DueMailbox, ErrorKind, Profile, Tier
from simulator.model.mailboxes import MailboxTable
from simulator.model.station import TierPools


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """How one sync ends; the default is success."""

    error: ErrorKind | None = None
    retry_after_s: float | None = None


SUCCESS = SyncOutcome()


def scheduler_decisions(
    workload: Sequence[DueMailbox],
    profile: Profile,
    cycles: Sequence[float],
    outcomes: Mapping[tuple[int, int], SyncOutcome] | None = None,
    interval_s: float | None = None,
    seed: int = 0,
) -> list[list[Assignment]]:
    """Per-cycle assignments of one scheduler over ``workload``.

    At each instant of ``cycles`` (non-decreasing) one scheduler cycle claims a batch; every
    claimed sync then runs at once (started = finished = the cycle instant) with the outcome
    ``outcomes[(cycle_index, mailbox_id)]`` (success when absent). Failures draw backoff
    jitter from ``random.Random(seed)``, one draw per retried failure in enqueue order.
    ``interval_s`` defaults to ``profile.sync_interval_s``.
    """
    if any(b < a for a, b in itertools.pairwise(cycles)):
        raise ValueError("cycles must be non-decreasing")
    ids = sorted(m.id for m in workload)
    if len(set(ids)) != len(ids):
        raise ValueError("workload mailbox ids must be unique")
    by_id = {m.id: m for m in workload}
    # Positions follow id order, so the table's (due, position) order is the policy's
    # (due, id) order.
    ordered = [by_id[i] for i in ids]
    interval = profile.sync_interval_s if interval_s is None else interval_s
    table = MailboxTable(
        [m.next_sync_at for m in ordered],
        [m.last_success_at for m in ordered],
        [m.has_cursor for m in ordered],
        [interval] * len(ordered),
    )
    rng = random.Random(seed)
    outcomes = outcomes or {}
    out: list[list[Assignment]] = []
    for c, now in enumerate(cycles):
        plan = table.claim(now, profile)
        decided = [Assignment(ids[a.mailbox_id], a.tier, a.kind) for a in plan]
        out.append(decided)
        for a, d in zip(plan, decided, strict=True):
            table.start(a.mailbox_id)
            result = outcomes.get((c, d.mailbox_id), SUCCESS)
            if result.error is None:
                table.succeed(a.mailbox_id, now, now)
            else:
                table.fail(
                    a.mailbox_id, result.error, now, rng, profile.retry, result.retry_after_s
                )
    return out


@dataclass(frozen=True, slots=True)
class Arrival:
    """A job joining ``tier``'s queue at ``at`` that runs for ``run_s`` once started."""

    at: float
    tier: Tier
    run_s: float


@dataclass(frozen=True, slots=True)
class Start:
    """Job ``job`` (its index in the arrivals) started at ``at`` on a worker of ``pool``."""

    job: int
    at: float
    pool: Tier


def dispatch_decisions(
    profile: Profile, arrivals: Sequence[Arrival], processes: int = 1
) -> list[Start]:
    """Every job's start, in start order, as the event model's worker pools decide it.

    At one instant, jobs that end free their workers before jobs arriving then are placed,
    and arrivals are placed in list order (the order of a bulk enqueue).
    """
    if any(b.at < a.at for a, b in itertools.pairwise(arrivals)):
        raise ValueError("arrivals must be in time order")
    starts: list[Start] = []
    # (instant, 0 for an end / 1 for an arrival, sequence, job or pool index)
    events: list[tuple[float, int, int, int]] = []
    seq = itertools.count()

    def on_start(job: int, now: float, waited: float, pool: int) -> None:
        starts.append(Start(job, now, TIERS[pool]))
        heapq.heappush(events, (now + arrivals[job].run_s, 0, next(seq), pool))

    pools = TierPools.for_profile(profile, processes, on_start)
    for i, a in enumerate(arrivals):
        heapq.heappush(events, (a.at, 1, next(seq), i))
    index = {t: i for i, t in enumerate(TIERS)}
    while events:
        now, kind, _, x = heapq.heappop(events)
        if kind == 0:
            pools.depart(now, x)
        else:
            pools.arrive(x, now, index[arrivals[x].tier])
    return starts

"""The scheduler's and the workers' decisions: tier and sync kind of a mailbox, which
mailboxes a cycle takes, which queues a worker serves, when a mailbox is due again, and how
long a pooled IMAP login is trusted."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

from daemon.policy.profiles import TIERS, Profile, SyncKind, Tier


def hours_since(last_success_at: float | None, now: float) -> float:
    """Hours since the last successful sync; infinite for a mailbox never synced."""
    if last_success_at is None:
        return math.inf
    return max(0.0, now - last_success_at) / 3600.0


def tier_for(hours: float, profile: Profile) -> Tier:
    """Tier from hours since the last successful sync: low beyond ``low_after_h``, etc."""
    if hours > profile.low_after_h:
        return Tier.LOW
    if hours > profile.normal_after_h:
        return Tier.NORMAL
    return Tier.HIGH


def sync_kind(has_cursor: bool, hours: float, profile: Profile) -> SyncKind:
    """Incremental when a valid cursor exists and the last sync is younger than the threshold."""
    if has_cursor and hours < profile.incremental_threshold_h:
        return SyncKind.INCREMENTAL
    return SyncKind.FULL


# Named tuples rather than frozen dataclasses: the simulator builds millions of them and a
# frozen dataclass costs several times as much to construct.
class DueMailbox(NamedTuple):
    """What the scheduler needs to know of a mailbox that may be due."""

    id: int
    next_sync_at: float
    last_success_at: float | None
    has_cursor: bool


class Assignment(NamedTuple):
    """One scheduler decision: this mailbox goes on this tier's queue for this kind of sync."""

    mailbox_id: int
    tier: Tier
    kind: SyncKind


def due_order_key(m: DueMailbox) -> tuple[float, int]:
    """Oldest due first; ties broken by id so every implementation agrees."""
    return (m.next_sync_at, m.id)


def select_batch(due: Iterable[DueMailbox], now: float, batch_size: int) -> list[DueMailbox]:
    """The mailboxes one scheduler cycle takes: due by ``now``, oldest due first, at most batch."""
    ready = [m for m in due if m.next_sync_at <= now]
    ready.sort(key=due_order_key)
    return ready[:batch_size]


def assign(m: DueMailbox, now: float, profile: Profile) -> Assignment:
    """Tier and sync kind of one claimed mailbox."""
    hours = hours_since(m.last_success_at, now)
    return Assignment(m.id, tier_for(hours, profile), sync_kind(m.has_cursor, hours, profile))


# A mailbox as ``DueMailbox`` lays it out (id, next sync at, last success at, has cursor):
# a ``DueMailbox`` or a plain tuple of the same fields.
DueRow = tuple[int, float, float | None, bool]


def assign_rows(
    batch: Iterable[DueRow], now: float, profile: Profile
) -> list[tuple[int, Tier, SyncKind]]:
    """``[assign(m, now, profile) for m in batch]`` in one call, each decision a plain
    (mailbox id, tier, kind) tuple, for rows laid out as ``DueMailbox``: the simulator
    claims thousands of mailboxes a minute, and a named tuple costs more to build than the
    decision itself."""
    low, normal = profile.low_after_h, profile.normal_after_h
    fresh = profile.incremental_threshold_h
    high_t, normal_t, low_t = Tier.HIGH, Tier.NORMAL, Tier.LOW
    incr, full = SyncKind.INCREMENTAL, SyncKind.FULL
    out = []
    for mid, _due, last, cursor in batch:
        # hours_since, tier_for and sync_kind, inlined (``max(0.0, d)`` written out: the
        # call costs more than the rest of the decision).
        if last is None:
            hours = math.inf
        else:
            d = now - last
            hours = (d if d > 0.0 else 0.0) / 3600.0
        tier = low_t if hours > low else normal_t if hours > normal else high_t
        kind = incr if cursor and hours < fresh else full
        out.append((mid, tier, kind))
    return out


def plan_cycle(due: Iterable[DueMailbox], now: float, profile: Profile) -> list[Assignment]:
    """One scheduler cycle's decisions, in enqueue order."""
    return [assign(m, now, profile) for m in select_batch(due, now, profile.batch_size)]


def serving_order(tier: Tier, profile: Profile) -> tuple[Tier, ...]:
    """The queues a free worker of ``tier``'s pool takes its next job from, best first: it
    takes the oldest job of the first non-empty one, or idles.

    Off (``work_conserving=False``) a pool serves its own queue only. On, it serves every
    queue from ``high`` down to its own tier, highest first: a normal worker takes a high
    job before a normal one, a low worker high, then normal, then low; a high worker never
    takes lower-tier work. This is strict non-preemptive priority over every worker allowed
    to serve a tier, and it is what keeps a lower tier from delaying a higher one:

    - no worker ever starts a lower-tier job while a higher-tier job that it may serve is
      waiting, so a high job waits only while every worker is busy (a lower-tier job
      already running is not interrupted: syncs are not preemptible);
    - the high pool is the high tier's alone in both modes, so the high tier has at least
      the workers it has with the option off, and more whenever other pools are idle.

    The price is the lower tiers' reservation: under a high-tier backlog that outlasts the
    idle workers, normal and low jobs wait until the high queue is empty. Serving the own
    queue first instead would keep that reservation but start lower-tier work while high
    jobs wait, which is the delay this option must not add.
    """
    if not profile.work_conserving:
        return (tier,)
    return TIERS[: TIERS.index(tier) + 1]


def serving_pools(tier: Tier, profile: Profile) -> tuple[Tier, ...]:
    """The pools whose free workers may start a job that arrives on ``tier``'s queue, in
    the order a free worker is preferred: the tier's own pool, then the lower ones.

    Any of them starts the job at once, so the order does not change its wait; taking the
    most restricted pool's worker (the one that serves the fewest queues) keeps the
    workers that can also serve lower tiers free for them.
    """
    return tuple(p for p in TIERS[TIERS.index(tier) :] if tier in serving_order(p, profile))


def workers_serving(tier: Tier, profile: Profile) -> int:
    """Workers per process that may serve ``tier``'s queue (its own pool and, when work
    conserving, every lower pool)."""
    return sum(profile.concurrency.for_tier(p) for p in serving_pools(tier, profile))


def sync_now_assignment(m: DueMailbox, now: float, profile: Profile) -> Assignment:
    """A push-triggered or user-requested sync: high priority at once, kind by the usual rule."""
    hours = hours_since(m.last_success_at, now)
    return Assignment(m.id, Tier.HIGH, sync_kind(m.has_cursor, hours, profile))


def next_due(started_at: float, interval_s: float) -> float:
    """When a mailbox is due again after a successful sync that started at ``started_at``.

    Anchored on the start, when the provider was read, so a slow sync does not stretch
    the cadence.
    """
    return started_at + interval_s


# Share of a mailbox's sync interval after which a pooled IMAP login is no longer trusted.
# Below 1 so that a sync on schedule (one interval after the previous start, which is at or
# after the login) always logs in again, with room for login latency.
IMAP_REAUTH_SHARE = 0.9


def imap_reauth_after(max_s: float, interval_s: float | None) -> float:
    """Age (seconds since LOGIN) at which a pooled IMAP connection must be replaced by a new
    login: the configured cap, and under the mailbox's sync interval, so that a password
    changed or revoked on the server is noticed by the next scheduled sync."""
    if interval_s is None or interval_s <= 0:
        return max_s
    return min(max_s, interval_s * IMAP_REAUTH_SHARE)


def imap_sweep_every(max_idle_s: float) -> float:
    """Seconds between the IMAP pool's sweeps, which close sessions idle past ``max_idle_s``
    or logged in longer ago than the re-authentication bound: a session lives until the
    first sweep after that (the simulator counts connections the same way)."""
    return max(1.0, max_idle_s / 3)

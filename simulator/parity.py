"""Decision parity: the simulator's scheduler replayed over a seeded workload.

``scheduler_decisions`` runs the same ``MailboxTable`` the event simulation uses, with zero
sync latency, and returns each cycle's assignments. The daemon's own scheduler, run against
mock providers answering at once, must produce the same lists; so must the pure policy.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from daemon.policy import Assignment, DueMailbox, ErrorKind, Profile
from simulator.mailboxes import MailboxTable


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

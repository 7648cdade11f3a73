"""The sync policy: every scheduling decision as a pure function over plain data.

The daemon's scheduler and workers and the capacity simulator import this module and
nothing else for tiers, sync kinds, batch selection, due times, backoff and the two
named profiles. Nothing here reads a clock, a random source or a socket: the caller
passes time (seconds, any epoch) and a seeded ``random.Random``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, NamedTuple


class Tier(StrEnum):
    """Priority tier; each has its own queue and worker pool."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


TIERS: tuple[Tier, ...] = (Tier.HIGH, Tier.NORMAL, Tier.LOW)


class SyncKind(StrEnum):
    """A full sync re-lists the mailbox; an incremental one reads changes since a cursor."""

    FULL = "full"
    INCREMENTAL = "incremental"


class ErrorKind(StrEnum):
    """How a failed sync is classified; decides retry or stop."""

    TRANSIENT = "transient"  # network error, 5xx, timeout
    RATE_LIMITED = "rate_limited"  # 429 / Gmail 403 usageLimits that outlived in-sync retries
    AUTH_REVOKED = "auth_revoked"  # invalid_grant, wrong password: the user must reconnect
    PERMANENT = "permanent"  # mailbox gone, permission denied, malformed config


class Outcome(StrEnum):
    """What happens to a mailbox after a failed sync."""

    RETRY = "retry"
    NEEDS_REAUTH = "needs_reauth"
    ERROR = "error"


@dataclass(frozen=True)
class Concurrency:
    """Workers per tier inside one daemon process."""

    high: int
    normal: int
    low: int

    def for_tier(self, tier: Tier) -> int:
        """Worker count of one tier."""
        return {Tier.HIGH: self.high, Tier.NORMAL: self.normal, Tier.LOW: self.low}[tier]

    @property
    def total(self) -> int:
        """Workers of all tiers."""
        return self.high + self.normal + self.low


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, and a failure budget."""

    base_s: float = 30.0
    factor: float = 2.0
    cap_s: float = 3600.0
    # Share of the delay that is randomised: 0.5 means the delay lies in [d/2, d].
    jitter: float = 0.5
    # Transient failures in a row after which the mailbox is parked in `error`.
    max_failures: int = 12


@dataclass(frozen=True)
class Profile:
    """A named set of policy values; every field can be overridden."""

    name: str
    concurrency: Concurrency
    batch_size: int
    incremental_threshold_h: float
    low_after_h: float
    normal_after_h: float
    scheduler_interval_s: float = 10.0
    sync_interval_s: float = 300.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Quota a full sync may wait for within one run; past it the run commits what it has
    # and gives its worker back until the quota has refilled (see ``quota_deferral``).
    full_sync_quota_wait_s: float = 1.0
    # Idle workers of a lower tier take jobs of the tiers above it (``serving_order``);
    # off, each pool serves its own tier's queue only.
    work_conserving: bool = False

    def __post_init__(self) -> None:
        problems = validate_profile(self)
        if problems:
            raise ValueError(f"profile {self.name!r}: " + "; ".join(problems))


def validate_profile(p: Profile) -> list[str]:
    """Reasons why a profile is unusable, each naming the field; empty when valid."""
    out: list[str] = []
    for tier in TIERS:
        if p.concurrency.for_tier(tier) < 0:
            out.append(f"concurrency.{tier} must be >= 0")
    if p.concurrency.total < 1:
        out.append("concurrency must have at least one worker")
    if p.batch_size < 1:
        out.append("batch_size must be >= 1")
    if p.incremental_threshold_h <= 0:
        out.append("incremental_threshold_h must be > 0")
    if p.normal_after_h < 0:
        out.append("normal_after_h must be >= 0")
    if p.low_after_h <= p.normal_after_h:
        out.append("low_after_h must be greater than normal_after_h")
    if p.scheduler_interval_s <= 0:
        out.append("scheduler_interval_s must be > 0")
    if p.sync_interval_s <= 0:
        out.append("sync_interval_s must be > 0")
    if p.full_sync_quota_wait_s < 0:
        out.append("full_sync_quota_wait_s must be >= 0")
    if not isinstance(p.work_conserving, bool):
        out.append("work_conserving must be true or false")
    if p.retry.base_s <= 0 or p.retry.cap_s < p.retry.base_s:
        out.append("retry.base_s must be > 0 and <= retry.cap_s")
    if not 0 <= p.retry.jitter <= 1:
        out.append("retry.jitter must be within [0, 1]")
    if p.retry.max_failures < 1:
        out.append("retry.max_failures must be >= 1")
    return out


ORIGINAL = Profile(
    name="original",
    concurrency=Concurrency(high=5, normal=3, low=2),
    batch_size=50,
    incremental_threshold_h=1.0,
    low_after_h=24.0,
    normal_after_h=2.0,
)

PLAN_B = Profile(
    name="plan-b",
    concurrency=Concurrency(high=17, normal=10, low=7),
    batch_size=200,
    incremental_threshold_h=6.0,
    low_after_h=48.0,
    normal_after_h=6.0,
)

# Plan B with idle normal and low workers helping the high tier (strict priority kept).
PLAN_B_WC = replace(PLAN_B, name="plan-b-wc", work_conserving=True)

PROFILES: Mapping[str, Profile] = {p.name: p for p in (ORIGINAL, PLAN_B, PLAN_B_WC)}
DEFAULT_PROFILE = PLAN_B.name


def get_profile(name: str) -> Profile:
    """The named preset; raises ``KeyError`` naming the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}") from None


def with_overrides(profile: Profile, overrides: Mapping[str, Any]) -> Profile:
    """A copy of ``profile`` with overrides; nested fields by dotted key (``concurrency.high``)
    or by mapping (``{"retry": {"cap_s": 60}}``). ``None`` values are ignored."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        elif isinstance(value, Mapping):
            nested.setdefault(head, {}).update(value)
        else:
            top[head] = value
    known = set(Profile.__dataclass_fields__)
    for name in [*top, *nested]:
        if name not in known:
            raise ValueError(f"unknown profile field {name!r}")
    for head, fields in nested.items():
        sub = getattr(profile, head)
        sub_fields = getattr(sub, "__dataclass_fields__", {})
        for name in fields:
            if name not in sub_fields:
                raise ValueError(f"unknown profile field {head}.{name}")
        top[head] = replace(sub, **fields)
    return replace(profile, **top)


# --- decisions -----------------------------------------------------------------------------


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


def backoff_delay(failures: int, rng: random.Random, retry: RetryPolicy) -> float:
    """Delay before retry number ``failures`` (1-based): exponential, capped, jittered."""
    if failures < 1:
        raise ValueError("failures must be >= 1")
    # Exponent capped so huge failure counts cannot overflow the float.
    exp = min(failures - 1, 64)
    ceiling = min(retry.cap_s, retry.base_s * retry.factor**exp)
    return ceiling * (1.0 - retry.jitter) + rng.random() * ceiling * retry.jitter


@dataclass(frozen=True, slots=True)
class FailureDecision:
    """What to do with a mailbox whose sync failed."""

    outcome: Outcome
    retry_at: float | None
    failures: int


def on_failure(
    kind: ErrorKind,
    failures_before: int,
    now: float,
    rng: random.Random,
    retry: RetryPolicy,
    retry_after_s: float | None = None,
) -> FailureDecision:
    """Retry with backoff, or stop: revoked credentials need the user, others park as error."""
    failures = failures_before + 1
    if kind is ErrorKind.AUTH_REVOKED:
        return FailureDecision(Outcome.NEEDS_REAUTH, None, failures)
    if kind is ErrorKind.PERMANENT or failures >= retry.max_failures:
        return FailureDecision(Outcome.ERROR, None, failures)
    delay = backoff_delay(failures, rng, retry)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return FailureDecision(Outcome.RETRY, now + delay, failures)


# Providers whose full syncs are chunked: Gmail's per-user budget binds a full sync (20 units
# per message fetched under the 2026 costs); a Graph full sync makes one request per 100
# messages, far below its per-mailbox limit, and IMAP has no request quota.
CHUNKED_FULL_SYNC_PROVIDERS = frozenset({"gmail"})


def quota_deferral(waited_s: float, wait_s: float, budget_s: float) -> float | None:
    """Seconds a chunked full sync gives its worker back for, or ``None`` to wait inline.

    The run has waited ``waited_s`` for quota so far and the next call would wait ``wait_s``
    more. Within ``budget_s`` it waits; beyond, the run commits its progress and the mailbox
    is due again after ``wait_s``, so a mailbox bound by its own quota never holds a worker
    that other mailboxes could use.
    """
    if wait_s <= 0 or waited_s + wait_s <= budget_s:
        return None
    return wait_s


# --- provider quotas -----------------------------------------------------------------------


class QuotaScope(StrEnum):
    """What a quota's bucket is keyed on."""

    APP = "app"  # the whole OAuth app / GCP project, across every mailbox
    MAILBOX = "mailbox"  # one mailbox (Gmail: per user; Graph: per app + mailbox)


@dataclass(frozen=True)
class Quota:
    """A provider limit: at most ``limit`` units in any window of ``period_s`` seconds.

    Enforced as GCRA with capacity ``burst`` and rate ``(limit - burst) / period_s``: in
    any window of ``period_s`` that admits at most ``burst + (limit - burst) = limit``.
    """

    name: str
    scope: QuotaScope
    limit: int
    period_s: int
    burst: int

    def __post_init__(self) -> None:
        if self.period_s < 1 or self.limit < 2:
            raise ValueError(f"quota {self.name}: limit >= 2 and period_s >= 1 required")
        if not 1 <= self.burst < self.limit:
            raise ValueError(f"quota {self.name}: burst must be within [1, limit)")

    @property
    def rate_limit(self) -> int:
        """Units per period that the GCRA emits after the burst."""
        return self.limit - self.burst

    @property
    def emission_interval_s(self) -> float:
        """Seconds per unit at the sustained rate."""
        return self.period_s / self.rate_limit

    @property
    def sustained_per_s(self) -> float:
        """Units per second the limiter admits in the long run."""
        return self.rate_limit / self.period_s


@dataclass(frozen=True)
class ProviderLimits:
    """One provider's quotas, per-method costs and per-mailbox concurrency."""

    provider: str
    quotas: tuple[Quota, ...]
    costs: Mapping[str, int]
    default_cost: int = 1
    max_concurrent_per_mailbox: int = 4

    def cost(self, method: str) -> int:
        """Quota units one call of ``method`` costs."""
        return self.costs.get(method, self.default_cost)


GMAIL_COSTS_LEGACY: Mapping[str, int] = {
    "getProfile": 1,
    "history.list": 2,
    "messages.list": 5,
    "messages.get": 5,
    "messages.attachments.get": 5,
    "threads.get": 10,
    "threads.list": 10,
    "messages.modify": 5,
    "messages.send": 100,
    "watch": 100,
    "stop": 50,
}
GMAIL_COSTS_2026: Mapping[str, int] = {
    **GMAIL_COSTS_LEGACY,
    "messages.get": 20,
    "messages.attachments.get": 20,
    "threads.get": 40,
}

_GRAPH_DOCUMENTED = ProviderLimits(
    provider="graph",
    quotas=(
        # Outlook service limit, evaluated per app ID + mailbox.
        Quota("graph.mailbox", QuotaScope.MAILBOX, limit=10_000, period_s=600, burst=100),
        # Global Graph limit per app across all tenants.
        Quota("graph.app", QuotaScope.APP, limit=130_000, period_s=10, burst=13_000),
    ),
    costs={},
    max_concurrent_per_mailbox=4,
)

QUOTA_PRESETS: Mapping[str, Mapping[str, ProviderLimits]] = {
    # The plan's own assumption: whole-app request budgets, every call costing 1.
    "as-planned": {
        "gmail": ProviderLimits(
            provider="gmail",
            quotas=(Quota("gmail.app", QuotaScope.APP, limit=100, period_s=1, burst=10),),
            costs={},
            max_concurrent_per_mailbox=4,
        ),
        "graph": ProviderLimits(
            provider="graph",
            quotas=(Quota("graph.app", QuotaScope.APP, limit=10_000, period_s=600, burst=100),),
            costs={},
            max_concurrent_per_mailbox=4,
        ),
    },
    # Gmail projects that used the API before 2026-05-01 keep these.
    "documented-legacy": {
        "gmail": ProviderLimits(
            provider="gmail",
            quotas=(
                Quota("gmail.user", QuotaScope.MAILBOX, limit=15_000, period_s=60, burst=250),
                Quota("gmail.project", QuotaScope.APP, limit=1_200_000, period_s=60, burst=20_000),
            ),
            costs=GMAIL_COSTS_LEGACY,
            max_concurrent_per_mailbox=4,
        ),
        "graph": _GRAPH_DOCUMENTED,
    },
    # Projects created on or after 2026-05-01: tighter per-user budget, dearer gets.
    "documented-2026": {
        "gmail": ProviderLimits(
            provider="gmail",
            quotas=(
                Quota("gmail.user", QuotaScope.MAILBOX, limit=6_000, period_s=60, burst=100),
                Quota("gmail.project", QuotaScope.APP, limit=1_200_000, period_s=60, burst=20_000),
            ),
            costs=GMAIL_COSTS_2026,
            max_concurrent_per_mailbox=4,
        ),
        "graph": _GRAPH_DOCUMENTED,
    },
}
QUOTA_ALIASES: Mapping[str, str] = {"documented": "documented-2026"}
DEFAULT_QUOTA_PRESET = "documented"


def get_quota_preset(name: str) -> Mapping[str, ProviderLimits]:
    """Provider limits of a named preset (``documented`` is the 2026 Gmail project profile)."""
    key = QUOTA_ALIASES.get(name, name)
    try:
        return QUOTA_PRESETS[key]
    except KeyError:
        known = ", ".join([*QUOTA_PRESETS, *QUOTA_ALIASES])
        raise KeyError(f"unknown quota preset {name!r}; known: {known}") from None


def scale_quotas(limits: ProviderLimits, factor: float) -> ProviderLimits:
    """The same limits with every budget multiplied by ``factor`` (for tests and what-ifs)."""

    def scaled(q: Quota) -> Quota:
        limit = max(2, int(q.limit * factor))
        burst = min(limit - 1, max(1, int(q.burst * factor)))
        return replace(q, limit=limit, burst=burst)

    return replace(limits, quotas=tuple(scaled(q) for q in limits.quotas))


# Share of every provider quota the daemon lets itself use. The GCRA never admits more than
# the enforced limit in any window, so with 1.0 a busy mailbox runs at exactly the provider's
# limit: a clock skew between our window and the provider's, or a second client of the same
# project or mailbox, then means 429s. 0.9 leaves a tenth as headroom; 1.0 uses it all.
QUOTA_MARGIN_DEFAULT = 0.9


def apply_quota_margin(limits: ProviderLimits, margin: float) -> ProviderLimits:
    """The limits the daemon enforces under the provider's: every ``limit`` times ``margin``
    (rounded down). Bursts are kept (capped below the new limit), so batch sizes
    (``batch_fits``) stay as they are and only the sustained rate drops."""
    if not 0 < margin <= 1:
        raise ValueError(f"quota_margin must be within (0, 1], got {margin!r}")
    if margin == 1:
        return limits

    def margined(q: Quota) -> Quota:
        # The epsilon keeps a product such as 0.29 * 100 = 28.999... from losing a unit.
        limit = max(2, math.floor(q.limit * margin + 1e-9))
        return replace(q, limit=limit, burst=min(q.burst, limit - 1))

    return replace(limits, quotas=tuple(margined(q) for q in limits.quotas))


def quota_table(preset: str) -> Sequence[tuple[str, str, str, int, int, int]]:
    """Rows (provider, quota, scope, limit, period_s, burst) for reports and docs."""
    rows = []
    for provider, lim in get_quota_preset(preset).items():
        for q in lim.quotas:
            rows.append((provider, q.name, str(q.scope), q.limit, q.period_s, q.burst))
    return rows


# --- how many calls a sync makes --------------------------------------------------------------


@dataclass(frozen=True)
class FetchShape:
    """Page and batch sizes the providers use; the simulator counts calls with the same."""

    gmail_list_page: int = 500  # messages.list maxResults (API maximum)
    gmail_history_page: int = 500  # history.list maxResults (API maximum)
    gmail_batch: int = 50  # inner messages.get per HTTP batch (Google advises <= 50)
    graph_page: int = 100  # Prefer: odata.maxpagesize on delta rounds
    graph_folder_page: int = 100  # $top of mailFolders / childFolders lists (Graph's default: 10)
    # The call model's Graph mailbox; the daemon syncs the folders it finds. Microsoft's "List
    # mailFolders" example (learn.microsoft.com/graph/api/user-list-mailfolders) shows a new
    # mailbox's 8 top-level folders (Archive, Conversation History, Deleted Items, Drafts,
    # Inbox, Junk Email, Outbox, Sent Items); Conversation History and Inbox each have one
    # child (Inbox's a search folder, not synced): 9 synced folders, 2 with child folders.
    graph_folders: int = 9
    graph_parent_folders: int = 2
    # True: the whole mailbox, its folders listed on every sync; False: a configured list.
    graph_list_folders: bool = True
    imap_fetch_chunk: int = 500  # UIDs per UID FETCH of new messages
    imap_flag_scan_chunk: int = 5000  # UIDs per FLAGS scan on servers without CONDSTORE
    imap_folders: int = 1
    # What the server offers: "qresync" (Dovecot), "condstore" (Gmail), "plain" (Outlook).
    imap_mode: str = "qresync"


DEFAULT_FETCH = FetchShape()


def batch_fits(limits: ProviderLimits | None, method: str, wanted: int) -> int:
    """The largest batch of ``method`` calls, up to ``wanted``, that every quota bucket can
    admit in one piece.

    A batch is charged when the provider receives it; admitting a bigger one piecewise
    before sending would let the provider see more than the limit inside one window.
    """
    if limits is None or not limits.quotas:
        return wanted
    room = min(q.burst for q in limits.quotas) // limits.cost(method)
    return max(1, min(wanted, room))


def fetch_shape_for(
    limits: Mapping[str, ProviderLimits], shape: FetchShape = DEFAULT_FETCH
) -> FetchShape:
    """``shape`` with batch sizes the enforced quotas can admit whole (daemon and simulator)."""
    return replace(
        shape, gmail_batch=batch_fits(limits.get("gmail"), "messages.get", shape.gmail_batch)
    )


@dataclass(frozen=True, slots=True)
class ApiCall:
    """A group of identical provider calls: ``count`` quota-charged calls in ``requests`` trips."""

    method: str
    count: int
    requests: int


def _pages(items: int, page: int) -> int:
    # An empty listing still costs one request.
    return max(1, -(-items // page))


def sync_calls(
    provider: str,
    kind: SyncKind,
    messages: int,
    added: int = 0,
    changed: int = 0,
    deleted: int = 0,
    shape: FetchShape = DEFAULT_FETCH,
) -> list[ApiCall]:
    """The API calls one sync makes, as the daemon's Gmail and Graph providers issue them.

    ``messages`` is the mailbox size at sync time; ``added/changed/deleted`` are the changes
    since the cursor (incremental only).
    """
    if provider == "gmail":
        if kind is SyncKind.FULL:
            gets = messages
            return [
                ApiCall("getProfile", 1, 1),
                ApiCall(
                    "messages.list",
                    _pages(messages, shape.gmail_list_page),
                    _pages(messages, shape.gmail_list_page),
                ),
                *([ApiCall("messages.get", gets, -(-gets // shape.gmail_batch))] if gets else []),
            ]
        events = added + changed + deleted
        pages = _pages(events, shape.gmail_history_page)
        out = [ApiCall("history.list", pages, pages)]
        if added:
            out.append(ApiCall("messages.get", added, -(-added // shape.gmail_batch)))
        return out
    if provider == "graph":
        return [
            *graph_listing_calls(shape),
            *_graph_delta_calls(kind, messages, added + changed + deleted, shape),
        ]
    if provider == "imap":
        return _imap_calls(kind, messages, added, changed, deleted, shape)
    raise ValueError(f"no call model for provider {provider!r}")


def graph_listing_calls(shape: FetchShape = DEFAULT_FETCH) -> list[ApiCall]:
    """The folder lists one Graph sync of the whole mailbox reads before its delta rounds.

    The root's folders (``mailFolders``), then the children of every folder that has some
    (``childFolders``), one level at a time; exact while each level fits one page of
    ``graph_folder_page``. None when a fixed list of folders is synced.
    """
    if not shape.graph_list_folders:
        return []
    top = _pages(shape.graph_folders, shape.graph_folder_page)
    out = [ApiCall("mailFolders.list", top, top)]
    if shape.graph_parent_folders:
        n = shape.graph_parent_folders
        out.append(ApiCall("mailFolders.childFolders", n, n))
    return out


def _graph_delta_calls(
    kind: SyncKind, messages: int, events: int, shape: FetchShape
) -> list[ApiCall]:
    # One delta round per folder; each round costs at least one request.
    folders = shape.graph_folders
    if kind is SyncKind.FULL:
        # Messages spread over the synced folders; each folder pages separately.
        per = -(-messages // folders) if folders else 0
        pages = folders * _pages(per, shape.graph_page)
    else:
        # An incremental sync's changes fall in one folder; the others answer one empty page.
        pages = folders - 1 + _pages(events, shape.graph_page)
    return [ApiCall("messages.delta", pages, pages)]


def _imap_calls(
    kind: SyncKind, messages: int, added: int, changed: int, deleted: int, shape: FetchShape
) -> list[ApiCall]:
    """IMAP round trips on a pooled, logged-in connection (a fresh one adds LOGIN + ENABLE).

    Messages spread evenly over the folders; an incremental sync's changes fall in one.
    """
    folders = shape.imap_folders
    per = -(-messages // folders) if folders else 0
    out = [ApiCall("imap.select", folders, folders)]
    if kind is SyncKind.FULL:
        if messages:
            fetches = folders * -(-per // shape.imap_fetch_chunk)
            out += [
                ApiCall("imap.search", folders, folders),
                ApiCall("imap.fetch", fetches, fetches),
            ]
        return out
    fetch = -(-added // shape.imap_fetch_chunk)
    search = 1 if added > shape.imap_fetch_chunk else 0
    if shape.imap_mode == "condstore":
        # CHANGEDSINCE when anything changed; a count mismatch costs a UID SEARCH ALL.
        fetch += 1 if added + changed + deleted else 0
        search += 1 if deleted else 0
    elif shape.imap_mode == "plain":
        # Without CONDSTORE a flag scan, which also reveals deletions.
        fetch += folders * -(-per // shape.imap_flag_scan_chunk) if messages else 0
    if search:
        out.append(ApiCall("imap.search", search, search))
    if fetch:
        out.append(ApiCall("imap.fetch", fetch, fetch))
    return out

"""Tiers, sync kinds and the policy profiles: the values every decision reads, the named
presets (``original``, ``plan-b``, ``plan-b-wc``) and overrides of any field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


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

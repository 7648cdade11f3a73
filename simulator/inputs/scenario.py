"""The scenario: what is simulated (population, daemon, providers, resources, costs, run).

Policy values are not repeated here: a scenario names a profile of ``daemon.policy`` plus
overrides, a quota preset and a quota margin, and ``Scenario.profile()`` /
``Scenario.limits()`` resolve them. Every other figure has a documented default; the shipped
``base.yaml`` states their sources.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from daemon import policy
from daemon.provider_settings import ImapSettings
from simulator.inputs import bounds
from simulator.inputs.distributions import Constant, Distribution, Exponential, Lognormal, upper
from simulator.inputs.distributions import mean as dist_mean
from simulator.inputs.providers import PROVIDERS, Providers
from simulator.inputs.section import Section, known


class ActivityClass(Section):
    """A share of mailboxes with a mail arrival rate."""

    name: str
    share: float = Field(gt=0, le=1)
    arrivals_per_hour: float = Field(ge=0)


def _default_activity() -> list[ActivityClass]:
    return [
        ActivityClass(name="quiet", share=0.5, arrivals_per_hour=1.0),
        ActivityClass(name="regular", share=0.4, arrivals_per_hour=6.0),
        ActivityClass(name="busy", share=0.1, arrivals_per_hour=30.0),
    ]


class Population(Section):
    """Tenants and their mailboxes."""

    tenants: int = Field(ge=1, le=bounds.MAX_TENANTS)
    mailboxes_per_tenant: Distribution = Constant(value=1)
    # Share of tenants on each provider; a tenant's mailboxes share its provider.
    providers: dict[str, float] = Field(default_factory=lambda: {"gmail": 0.5, "graph": 0.5})
    activity: list[ActivityClass] = Field(default_factory=_default_activity, min_length=1)
    # Flag changes and deletions, as multiples of the arrival rate.
    changes_per_arrival: float = Field(default=0.5, ge=0)
    deletes_per_arrival: float = Field(default=0.2, ge=0)
    mailbox_size: Distribution = Lognormal(mean=5000, sigma=1.0)
    mailbox_size_cap: int = Field(default=200_000, ge=1, le=bounds.MAX_MAILBOX_SIZE)
    # Per tenant; None means the profile's ``sync_interval_s``.
    sync_interval_s: Distribution | None = None
    # steady: synced mailboxes with cursors, due times spread over one interval;
    # all_due: every mailbox due at t=0 (the "N mailboxes in M minutes" drain);
    # never_synced: onboarding, no cursor, due at t=0;
    # stale: back from an outage of ``stale_h`` hours, every mailbox due at t=0.
    initial: Literal["steady", "all_due", "never_synced", "stale"] = "steady"
    stale_h: float = Field(default=0.0, ge=0)
    never_synced_share: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> Population:
        unknown = sorted(set(self.providers) - set(PROVIDERS))
        if unknown:
            raise ValueError(f"providers: unknown {unknown}; known: {list(PROVIDERS)}")
        for name, share in self.providers.items():
            if not 0 <= share <= 1:
                raise ValueError(f"providers: share of {name} must be within [0, 1]")
        if abs(sum(self.providers.values()) - 1) > 1e-6:
            raise ValueError("providers: shares must sum to 1")
        if abs(sum(a.share for a in self.activity) - 1) > 1e-6:
            raise ValueError("activity: shares must sum to 1")
        per_tenant = dist_mean(self.mailboxes_per_tenant)
        if self.tenants * max(1.0, per_tenant) > bounds.MAX_MAILBOXES:
            raise ValueError(
                f"mailboxes_per_tenant: {self.tenants:,} tenants x a mean of {per_tenant:,.4g} "
                f"mailboxes is more than {bounds.MAX_MAILBOXES:,} mailboxes "
                f"({bounds.WHY['population.tenants']})"
            )
        size = dist_mean(self.mailbox_size)
        if size > self.mailbox_size_cap:
            raise ValueError(
                f"mailbox_size: a mean of {size:,.4g} messages is above mailbox_size_cap "
                f"({self.mailbox_size_cap:,}, at most {bounds.MAX_MAILBOX_SIZE:,}): sizes are "
                "capped, so every mailbox would hold the cap"
            )
        if self.sync_interval_s is not None:
            top = upper(self.sync_interval_s)
            if top == float("inf"):
                top = dist_mean(self.sync_interval_s)
            if top > bounds.MAX_SYNC_INTERVAL_S:
                raise ValueError(
                    f"sync_interval_s: {top:,.4g} s is longer than "
                    f"{bounds.MAX_SYNC_INTERVAL_S:,.0f} s ({bounds.WHY['sync_interval_s']})"
                )
        return self


def _imap_default(name: str) -> Any:
    # The daemon's own setting defaults (``daemon.settings.ImapSettings``), not a copy.
    return ImapSettings.model_fields[name].default


class ImapPool(Section):
    """The daemon's per-process IMAP connection pool (its ``imap.*`` settings)."""

    max_connections_per_account: int = Field(
        default=_imap_default("max_connections_per_account"), ge=1
    )
    idle_keepalive_s: float = Field(default=_imap_default("idle_keepalive_s"), gt=0)
    max_idle_s: float = Field(default=_imap_default("max_idle_s"), gt=0)
    reauth_after_s: float = Field(default=_imap_default("reauth_after_s"), gt=0)

    @model_validator(mode="after")
    def _check(self) -> ImapPool:
        if self.max_idle_s < self.idle_keepalive_s:
            raise ValueError("max_idle_s: must be >= idle_keepalive_s")
        return self


class Daemon(Section):
    """The deployed daemon: profile, overrides, processes and hosts."""

    profile: str = policy.DEFAULT_PROFILE
    overrides: dict[str, Any] = Field(default_factory=dict)
    processes: int = Field(default=1, ge=1, le=bounds.MAX_PROCESSES)
    hosts: int = Field(default=1, ge=1)
    instance: str = "gp-4"
    quota_preset: str = policy.DEFAULT_QUOTA_PRESET
    # Share of each provider quota the daemon enforces (its ``policy.quota_margin``).
    quota_margin: float = Field(default=policy.QUOTA_MARGIN_DEFAULT, gt=0, le=1)
    # Share of mail arrivals that produce a push notification (Gmail watch / Graph webhook).
    push_share: float = Field(default=0.0, ge=0, le=1)
    # Probability that an incremental cursor has expired (Gmail 404 / Graph 410).
    cursor_expiry_per_sync: float = Field(default=0.001, ge=0, le=1)
    imap: ImapPool = ImapPool()
    # The processes have just started: no pooled IMAP connection and no cached access token
    # (false: they have been running, their pools and caches are warm).
    fresh_start: bool = False

    @field_validator("overrides")
    @classmethod
    def _overrides(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("profile")
        if not isinstance(name, str) or name not in policy.PROFILES:
            return value  # the profile's own error is reported
        return checked_overrides(policy.PROFILES[name], value)

    @model_validator(mode="after")
    def _check(self) -> Daemon:
        known(policy.get_profile, self.profile)
        known(policy.get_quota_preset, self.quota_preset)
        if self.hosts > self.processes:
            raise ValueError("hosts must be <= processes")
        return self


def _flat(overrides: Mapping[str, Any]) -> dict[str, Any]:
    # ``{"retry": {"cap_s": 60}}`` and ``{"retry.cap_s": 60}`` alike, as dotted keys.
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[str(key)] = value
    return out


# Profile fields whose values the simulator bounds beyond the policy's own checks.
_OVERRIDE_BOUNDS: dict[str, tuple[float, float, str]] = {
    "sync_interval_s": (0.0, bounds.MAX_SYNC_INTERVAL_S, bounds.WHY["sync_interval_s"]),
    "scheduler_interval_s": (0.1, 86_400.0, "each cycle of every process is a simulated event"),
    "batch_size": (1, 1_000_000, "a claim of more than a million rows is not a scheduler batch"),
}


def checked_overrides(profile: policy.Profile, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` of ``profile`` with every value of the field's type, finite and within
    bounds; raises ``ValueError`` naming the field (``key: reason``)."""
    out: dict[str, Any] = {}
    for key, value in _flat(overrides).items():
        if value is None:
            continue
        head, _, rest = key.partition(".")
        current: Any = getattr(profile, head, None)
        if current is not None and rest:
            current = getattr(current, rest, None)
        if current is None:
            raise ValueError(f"{key}: unknown profile field")
        if hasattr(current, "__dataclass_fields__"):
            raise ValueError(f"{key}: expected a mapping of its fields, got {value!r}")
        if isinstance(current, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{key}: expected true or false, got {value!r}")
        elif isinstance(current, int | float):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not math.isfinite(value):
                raise ValueError(f"{key}: expected a finite number, got {value!r}")
            if isinstance(current, int):
                if value != int(value):
                    raise ValueError(f"{key}: expected a whole number, got {value!r}")
                value = int(value)
            low, high, why = _OVERRIDE_BOUNDS.get(key, (-math.inf, math.inf, ""))
            if not low <= value <= high:
                raise ValueError(f"{key}: {value!r} is outside [{low:g}, {high:g}] ({why})")
        out[key] = value
    try:
        policy.with_overrides(profile, out)
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{next(iter(out), 'overrides')}: {e}") from None
    return out


class Resources(Section):
    """CPU, memory, database and Redis cost of the work (uncalibrated defaults)."""

    cpu_ms_per_call: float = Field(default=1.0, ge=0)
    cpu_ms_per_message: float = Field(default=0.05, ge=0)
    cpu_ms_per_job: float = Field(default=0.3, ge=0)
    cpu_ms_per_cycle: float = Field(default=2.0, ge=0)
    # CPU each daemon process spends per second with nothing to sync.
    cpu_ms_per_s_process: float = Field(default=0.0, ge=0)
    # CPU of opening an IMAP connection (TCP and TLS handshakes) before its LOGIN.
    cpu_ms_per_connect: float = Field(default=3.0, ge=0)
    # From a claim to a free worker starting the job: the claim's transaction, the bulk
    # enqueue (per job of the batch) and the worker's pickup. A job due one interval after
    # it started is then due just after a scheduler cycle, not on it.
    dispatch_ms: float = Field(default=5.0, ge=0)
    enqueue_ms_per_job: float = Field(default=0.2, ge=0)
    # A scheduler cycle lasts its period plus a random lateness of this mean (the event loop
    # wakes its timer late): over an interval's cycles the drift decides whether a mailbox
    # falls due just before a cycle or just after one.
    scheduler_overshoot_ms: float = Field(default=1.0, ge=0)
    rss_base_mb: float = Field(default=80.0, ge=0)
    rss_per_job_mb: float = Field(default=0.5, ge=0)
    rss_per_mailbox_kb: float = Field(default=2.0, ge=0)
    db_commit_ms: float = Field(default=1.0, ge=0)
    db_ms_per_message: float = Field(default=0.02, ge=0)
    db_ms_per_claim: float = Field(default=2.0, ge=0)
    redis_ops_per_job: float = Field(default=8.0, ge=0)
    redis_ops_per_request: float = Field(default=1.0, ge=0)
    # RSS of one pooled, logged-in IMAP connection over TLS (measured, see base.yaml).
    rss_per_imap_connection_kb: float = Field(default=300.0, ge=0)


class Costs(Section):
    """Which catalogue and managed tiers price the deployment."""

    catalogue: str = "default"
    redis: str | None = None
    postgres: str | None = None


class Run(Section):
    """Horizon, warm-up, replications, seed."""

    horizon_s: float = Field(default=7200.0, gt=0, le=bounds.MAX_HORIZON_S)
    warmup_s: float = Field(default=1800.0, ge=0)
    replications: int = Field(default=5, ge=1, le=bounds.MAX_REPLICATIONS)
    seed: int = 1
    sample_interval_s: float = Field(default=30.0, ge=bounds.MIN_SAMPLE_INTERVAL_S)
    # Also run the drain experiment (all mailboxes due at once) to measure capacity.
    drain: bool = True
    # Run the steady-state experiment (off for pure drain / onboarding studies).
    steady: bool = True

    @model_validator(mode="after")
    def _check(self) -> Run:
        if self.warmup_s >= self.horizon_s:
            raise ValueError("warmup_s must be < horizon_s")
        return self


class Criteria(Section):
    """Plan B's success criteria."""

    throughput_per_min: float = 200.0
    cpu_pct_max: float = 80.0
    ram_gb_max: float = 8.0
    error_rate_max: float = 0.05
    fresh_within_s: float = 300.0
    # Which quantile of sampled staleness must be within ``fresh_within_s``: 1.0 = all.
    fresh_quantile: float = Field(default=1.0, gt=0, le=1)


class Scenario(Section):
    """One complete, validated scenario."""

    name: str = "scenario"
    description: str = ""
    population: Population
    daemon: Daemon = Daemon()
    providers: Providers = Providers()
    resources: Resources = Resources()
    costs: Costs = Costs()
    run: Run = Run()
    criteria: Criteria = Criteria()
    # Set when a calibration file replaced the defaults.
    calibrated_from: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        # The mail one incremental sync reads: the busiest class over the longest interval.
        pop = self.population
        interval = self.profile().sync_interval_s
        if pop.sync_interval_s is not None:
            interval = upper(pop.sync_interval_s)
            if interval == float("inf"):
                interval = dist_mean(pop.sync_interval_s)
        busiest = max(a.arrivals_per_hour for a in pop.activity)
        touched = 1 + pop.changes_per_arrival + pop.deletes_per_arrival
        per_sync = busiest / 3600 * interval * touched
        if per_sync > bounds.MAX_MESSAGES_PER_SYNC:
            raise ValueError(
                f"population: one sync would read about {per_sync:,.0f} messages "
                f"({busiest:,.4g} arrivals/h x {interval:,.0f} s x {touched:.3g} with changes "
                f"and deletions), more than {bounds.MAX_MESSAGES_PER_SYNC:,} "
                f"({bounds.WHY['messages_per_sync']})"
            )
        return self

    def profile(self) -> policy.Profile:
        """The daemon profile with this scenario's overrides applied."""
        return policy.with_overrides(policy.get_profile(self.daemon.profile), self.daemon.overrides)

    def limits(self) -> Mapping[str, policy.ProviderLimits]:
        """The quotas the daemon enforces, per provider (IMAP has none): the preset's under
        the quota margin, as the daemon's settings build them. The real provider's limits
        stay the preset's (``providers.<p>.actual_quotas`` when they differ)."""
        margin = self.daemon.quota_margin
        return {
            provider: policy.apply_quota_margin(limits, margin)
            for provider, limits in policy.get_quota_preset(self.daemon.quota_preset).items()
        }

    def enforced(self, provider: str) -> policy.ProviderLimits | None:
        """What the daemon enforces for ``provider``; None when it gates nothing (IMAP)."""
        return self.limits().get(provider)

    def updated(self, changes: Mapping[str, Any]) -> Scenario:
        """A re-validated copy with dotted-path changes (``daemon.processes``: 4)."""
        data = self.model_dump(mode="python")
        for key, value in changes.items():
            *heads, last = key.split(".")
            node = data
            for h in heads:
                node = node[h]
            node[last] = value.model_dump() if isinstance(value, BaseModel) else value
        return Scenario.model_validate(data)


def plan_job_time(seconds: float) -> dict[str, Any]:
    """Scenario changes that make every sync take about ``seconds`` (the plan's assumption)."""
    out: dict[str, Any] = {}
    for p in PROVIDERS:
        out[f"providers.{p}.sync_overhead_s"] = Constant(value=seconds)
        out[f"providers.{p}.latency_s"] = Exponential(mean=1e-3)
        # "Every sync takes 10 s" includes any token refresh.
        out[f"providers.{p}.latency_by_method"] = {"token": Constant(value=0.0)}
        out[f"providers.{p}.batch_inner_s"] = 0.0
    return out

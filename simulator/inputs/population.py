"""Drawing the mailbox population of a scenario: provider, activity, size, interval, start state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.errors import ConfigError
from simulator.inputs import bounds
from simulator.inputs.bounds import MAX_SYNC_INTERVAL_S
from simulator.inputs.distributions import draw
from simulator.inputs.providers import PROVIDERS
from simulator.inputs.scenario import Scenario


@dataclass(frozen=True)
class PopulationArrays:
    """One row per mailbox; ``provider`` indexes ``PROVIDERS``."""

    tenant: np.ndarray
    provider: np.ndarray
    arrivals_per_s: np.ndarray
    size: np.ndarray
    interval_s: np.ndarray
    next_sync_at: np.ndarray
    last_success_at: np.ndarray  # NaN: never synced
    has_cursor: np.ndarray

    @property
    def n(self) -> int:
        """Mailbox count."""
        return int(self.provider.size)


def mailboxes_per_tenant(s: Scenario, rng: np.random.Generator) -> np.ndarray:
    """Mailbox count of each tenant (at least one)."""
    raw = draw(s.population.mailboxes_per_tenant, rng, s.population.tenants)
    # A long tail (lognormal) may draw a tenant past every bound: no tenant holds more
    # mailboxes than a whole scenario may (``bounds.MAX_MAILBOXES``).
    counts: np.ndarray = np.clip(np.rint(raw), 1, bounds.MAX_MAILBOXES).astype(np.int64)
    if counts.sum() > 2 * bounds.MAX_MAILBOXES:
        raise ConfigError(
            f"population.mailboxes_per_tenant: drew {int(counts.sum()):,} mailboxes, more "
            f"than {bounds.MAX_MAILBOXES:,} (a distribution with a long tail; narrow it)"
        )
    return counts


def expected_mailboxes(s: Scenario) -> float:
    """Mean mailbox count of the scenario, without drawing."""
    from simulator.inputs.distributions import mean

    return s.population.tenants * max(1.0, mean(s.population.mailboxes_per_tenant))


@dataclass(frozen=True)
class Mailboxes:
    """Who the mailboxes are, before their start state: one row per mailbox."""

    tenant: np.ndarray
    provider: np.ndarray
    arrivals_per_s: np.ndarray
    size: np.ndarray
    interval_s: np.ndarray

    def to_lists(self) -> dict[str, list[float]]:
        """Plain lists (to hand to another process)."""
        return {k: getattr(self, k).tolist() for k in self.__dataclass_fields__}

    @classmethod
    def from_lists(cls, d: dict[str, list[float]]) -> Mailboxes:
        """The inverse of ``to_lists``."""
        return cls(
            np.asarray(d["tenant"], dtype=np.int64),
            np.asarray(d["provider"], dtype=np.int64),
            np.asarray(d["arrivals_per_s"], dtype=float),
            np.asarray(d["size"], dtype=float),
            np.asarray(d["interval_s"], dtype=float),
        )


def draw_mailboxes(s: Scenario, rng: np.random.Generator) -> Mailboxes:
    """Tenants' providers, mailboxes' activity, sizes and intervals."""
    pop = s.population
    per_tenant = mailboxes_per_tenant(s, rng)
    n = int(per_tenant.sum())
    tenant = np.repeat(np.arange(pop.tenants), per_tenant)
    names = list(pop.providers)
    shares = np.array([pop.providers[p] for p in names])
    t_provider = rng.choice(len(names), size=pop.tenants, p=shares / shares.sum())
    code = np.array([PROVIDERS.index(p) for p in names])
    provider = code[t_provider][tenant]
    a_shares = np.array([a.share for a in pop.activity])
    a_rates = np.array([a.arrivals_per_hour for a in pop.activity]) / 3600.0
    klass = rng.choice(len(a_shares), size=n, p=a_shares / a_shares.sum())
    rate = a_rates[klass]
    size = np.minimum(np.rint(draw(pop.mailbox_size, rng, n)), pop.mailbox_size_cap)
    default_interval = s.profile().sync_interval_s
    if pop.sync_interval_s is None:
        interval = np.full(n, default_interval)
    else:
        # Within the daemon's own range (at most a day); a long tail cannot draw past it.
        t_int = np.clip(draw(pop.sync_interval_s, rng, pop.tenants), 1.0, MAX_SYNC_INTERVAL_S)
        interval = t_int[tenant]
    return Mailboxes(tenant, provider, rate, size, interval)


def build(
    s: Scenario, rng: np.random.Generator, mailboxes: Mailboxes | None = None
) -> PopulationArrays:
    """A seeded population for one replication; ``mailboxes`` fixes who they are (a load
    test's very tenants), the start state is still drawn."""
    pop = s.population
    m = draw_mailboxes(s, rng) if mailboxes is None else mailboxes
    tenant, provider, rate, size, interval = (
        m.tenant, m.provider, m.arrivals_per_s, m.size, m.interval_s
    )  # fmt: skip
    n = int(provider.size)
    # Initial state.
    if pop.initial == "steady":
        nxt = rng.uniform(0, 1, n) * interval
        last = nxt - interval
        cursor = np.ones(n, dtype=bool)
    elif pop.initial == "stale":
        nxt = np.zeros(n)
        last = -pop.stale_h * 3600 - rng.uniform(0, 1, n) * interval
        cursor = np.ones(n, dtype=bool)
    elif pop.initial == "all_due":
        nxt = np.zeros(n)
        last = -interval
        cursor = np.ones(n, dtype=bool)
    else:
        nxt = np.zeros(n)
        last = np.full(n, np.nan)
        cursor = np.zeros(n, dtype=bool)
    if pop.never_synced_share > 0:
        new = rng.random(n) < pop.never_synced_share
        nxt = np.where(new, 0.0, nxt)
        last = np.where(new, np.nan, last)
        cursor = cursor & ~new
    return PopulationArrays(
        tenant, provider, rate, size.astype(np.int64), interval, nxt, last, cursor
    )

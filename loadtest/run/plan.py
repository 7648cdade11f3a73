"""From a prepared scenario (``prepare``) to a concrete load test: tenants, mailboxes and
three load levels.

Pure: no service is touched. The population is the simulator's own
(``simulator.inputs.population.build``), so the tenants the load test registers have the sizes,
activity classes, providers and intervals the model draws for the same scenario and seed.

Levels are shares of the capacity the model predicts for the scenario (the fast path's
maximum sustainable throughput): ``light`` 30 %, ``saturation`` 90 %, ``overload`` 130 %.
A level's tenants are the first tenants of the population whose syncs per minute add up to
that share; each level adds tenants to the previous one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from daemon.errors import ConfigError
from simulator.inputs import population
from simulator.inputs.providers import PROVIDERS
from simulator.inputs.scenario import Scenario

DEFAULT_SHARES: tuple[float, ...] = (0.3, 0.9, 1.3)
DEFAULT_NAMES: tuple[str, ...] = ("light", "saturation", "overload")
DEFAULT_MAX_MAILBOXES = 40_000


@dataclass(frozen=True)
class Level:
    """One step of the load: ``tenants`` active from ``start_s`` for ``duration_s``; the
    first ``settle_s`` are not measured."""

    name: str
    share: float
    tenants: int
    start_s: float
    duration_s: float
    settle_s: float

    @property
    def window(self) -> tuple[float, float]:
        """The measured part, in seconds from the start of the load."""
        return self.start_s + self.settle_s, self.start_s + self.duration_s


@dataclass(frozen=True)
class MailboxPlan:
    """One mailbox to create at its provider and register with the daemon."""

    index: int
    tenant: int
    provider: str
    address: str
    username: str
    password: str
    arrivals_per_s: float
    size: int
    interval_s: int


@dataclass(frozen=True)
class TenantPlan:
    """One tenant: a Locust user while its level runs."""

    index: int
    name: str
    provider: str
    interval_s: int
    mailboxes: tuple[int, ...]


@dataclass(frozen=True)
class LoadPlan:
    """Everything the run needs to know before it starts anything."""

    scenario: Scenario
    source: str
    seed: int
    capacity_per_min: float
    tenants: tuple[TenantPlan, ...]
    mailboxes: tuple[MailboxPlan, ...]
    levels: tuple[Level, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def interval_s(self) -> float:
        """The mean sync interval of the mailboxes."""
        return float(np.mean([m.interval_s for m in self.mailboxes]))

    @property
    def total_s(self) -> float:
        """Length of the load, all levels."""
        last = self.levels[-1]
        return last.start_s + last.duration_s

    def providers(self) -> list[str]:
        """Providers with at least one mailbox, in the simulator's order."""
        used = {m.provider for m in self.mailboxes}
        return [p for p in PROVIDERS if p in used]

    def to_json(self) -> dict[str, Any]:
        """Plain data (the scenario as its own JSON form)."""
        return {
            "scenario": self.scenario.model_dump(mode="json"),
            "source": self.source,
            "seed": self.seed,
            "capacity_per_min": self.capacity_per_min,
            "tenants": [asdict(t) for t in self.tenants],
            "mailboxes": [asdict(m) for m in self.mailboxes],
            "levels": [asdict(lv) for lv in self.levels],
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadPlan:
        """The inverse of ``to_json``."""
        return cls(
            scenario=Scenario.model_validate(data["scenario"]),
            source=data["source"],
            seed=int(data["seed"]),
            capacity_per_min=float(data["capacity_per_min"]),
            tenants=tuple(
                TenantPlan(**{**t, "mailboxes": tuple(t["mailboxes"])}) for t in data["tenants"]
            ),
            mailboxes=tuple(MailboxPlan(**m) for m in data["mailboxes"]),
            levels=tuple(Level(**lv) for lv in data["levels"]),
            notes=tuple(data["notes"]),
        )


def _demand_per_tenant(pop: population.PopulationArrays, tenants: int) -> np.ndarray:
    """Syncs per minute each tenant asks for (its mailboxes over their intervals)."""
    per = np.zeros(tenants)
    np.add.at(per, pop.tenant, 60.0 / pop.interval_s)
    return per


def _durations(
    duration_s: float | Sequence[float] | None, levels: int, interval: float
) -> list[float]:
    """Each level's length: three sync intervals and half a minute unless given."""
    if duration_s is None:
        durations = [3 * interval + 30] * levels
    elif isinstance(duration_s, int | float):
        durations = [float(duration_s)] * levels
    else:
        durations = [float(x) for x in duration_s]
        if len(durations) != levels:
            raise ConfigError(
                f"--duration: {len(durations)} lengths for {levels} levels; give one, "
                "or one per level"
            )
    return durations


def _mailbox_plans(
    pop: population.PopulationArrays, keep: np.ndarray, seed: int
) -> list[MailboxPlan]:
    """The mailboxes of the kept tenants, with their accounts at the providers."""
    mailboxes = []
    for i in np.flatnonzero(keep).tolist():
        provider = PROVIDERS[int(pop.provider[i])]
        name = f"lt{i:06d}"
        domain = {"gmail": "gmail.load.test", "graph": "outlook.load.test"}.get(
            provider, "imap.load.test"
        )
        mailboxes.append(
            MailboxPlan(
                index=i,
                tenant=int(pop.tenant[i]),
                provider=provider,
                address=f"{name}@{domain}",
                username=name,
                password=f"pw-{seed}-{i:06d}",
                arrivals_per_s=float(pop.arrivals_per_s[i]),
                size=int(pop.size[i]),
                interval_s=max(1, round(float(pop.interval_s[i]))),
            )
        )
    return mailboxes


def _tenant_plans(mailboxes: Sequence[MailboxPlan], t_max: int) -> tuple[TenantPlan, ...]:
    """The first ``t_max`` tenants with their mailboxes."""
    by_tenant: dict[int, list[MailboxPlan]] = {}
    for m in mailboxes:
        by_tenant.setdefault(m.tenant, []).append(m)
    return tuple(
        TenantPlan(
            index=t,
            name=f"lt-tenant-{t:05d}",
            provider=by_tenant[t][0].provider,
            interval_s=by_tenant[t][0].interval_s,
            mailboxes=tuple(m.index for m in by_tenant[t]),
        )
        for t in range(t_max)
    )


def build_plan(
    s: Scenario,
    source: str,
    capacity_per_min: float,
    *,
    shares: Sequence[float] = DEFAULT_SHARES,
    names: Sequence[str] | None = None,
    duration_s: float | Sequence[float] | None = None,
    settle_s: float | None = None,
    seed: int = 1,
    max_mailboxes: int = DEFAULT_MAX_MAILBOXES,
    notes: Sequence[str] = (),
    tenants: Sequence[int] | None = None,
) -> LoadPlan:
    """The plan of a prepared scenario (see ``prepare``) at the given capacity; ``tenants``
    gives the levels as tenant counts instead of shares of the capacity."""
    if not math.isfinite(capacity_per_min) or capacity_per_min <= 0:
        raise ConfigError(f"{s.name}: the model predicts no capacity ({capacity_per_min})")
    if tenants is not None:
        if not tenants or min(tenants) < 1 or list(tenants) != sorted(tenants):
            raise ConfigError(f"--tenants {list(tenants)}: need increasing counts >= 1")
        shares = [t * _mean_demand(s) / capacity_per_min for t in tenants]
        names = names or [f"{t:,} tenants" for t in tenants]
    if not shares or any(x <= 0 for x in shares) or list(shares) != sorted(shares):
        raise ConfigError(f"levels {list(shares)}: need increasing shares of capacity > 0")
    if names is None:
        names = DEFAULT_NAMES if tuple(shares) == DEFAULT_SHARES else [f"{x:.0%}" for x in shares]
    per_tenant = _mean_demand(s)
    guess = math.ceil(max(shares) * capacity_per_min / per_tenant * 1.3) + 20
    for _ in range(6):
        pop = population.build(
            s.updated({"population.tenants": guess}), np.random.default_rng(seed)
        )
        cum = np.cumsum(_demand_per_tenant(pop, guess))
        if cum[-1] >= max(shares) * capacity_per_min:
            break
        guess *= 2
    else:  # pragma: no cover - the guess doubles until the demand is reached
        raise ConfigError(f"{s.name}: could not draw enough tenants for the levels")
    if tenants is not None:
        counts = [int(t) for t in tenants]
        guess = max(guess, counts[-1])
        pop = population.build(
            s.updated({"population.tenants": guess}), np.random.default_rng(seed)
        )
        cum = np.cumsum(_demand_per_tenant(pop, guess))
        shares = [float(cum[c - 1]) / capacity_per_min for c in counts]
    else:
        counts = [max(1, int(np.searchsorted(cum, x * capacity_per_min)) + 1) for x in shares]
    t_max = counts[-1]
    keep = pop.tenant < t_max
    n = int(keep.sum())
    if n > max_mailboxes:
        raise ConfigError(
            f"{s.name}: the overload level needs {n:,} mailboxes (capacity "
            f"{capacity_per_min:,.0f} syncs/min at a {float(np.mean(pop.interval_s)):.0f} s "
            f"interval), more than --max-mailboxes {max_mailboxes:,}; use a shorter sync "
            "interval (--set population.sync_interval_s=...), fewer workers, or raise the limit"
        )
    interval = float(np.mean(pop.interval_s[keep]))
    durations = _durations(duration_s, len(shares), interval)
    settle = settle_s if settle_s is not None else min(min(durations) / 2, interval + 30)
    if settle >= min(durations):
        raise ConfigError(
            f"--settle {settle:g} s must be shorter than every level ({min(durations):g} s)"
        )
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]]).tolist()
    levels = tuple(
        Level(str(nm), float(x), int(c), float(st), d, float(settle))
        for nm, x, c, st, d in zip(names, shares, counts, starts, durations, strict=True)
    )
    mailboxes = _mailbox_plans(pop, keep, seed)
    tenant_plans = _tenant_plans(mailboxes, t_max)
    return LoadPlan(
        scenario=s.updated({"population.tenants": t_max}),
        source=source,
        seed=seed,
        capacity_per_min=capacity_per_min,
        tenants=tenant_plans,
        mailboxes=tuple(mailboxes),
        levels=levels,
        notes=tuple(notes),
    )


def _mean_demand(s: Scenario) -> float:
    """Expected syncs per minute of one tenant."""
    from simulator.inputs.distributions import mean

    per = max(1.0, mean(s.population.mailboxes_per_tenant))
    return per * 60.0 * analytic_inv_interval(s)


def analytic_inv_interval(s: Scenario) -> float:
    """E[1 / interval] of the scenario's mailboxes (sampled)."""
    d = s.population.sync_interval_s
    if d is None:
        return 1.0 / s.profile().sync_interval_s
    from simulator.inputs.distributions import draw

    x = np.maximum(1.0, draw(d, np.random.default_rng(0), 4096))
    return float(np.mean(1.0 / x))

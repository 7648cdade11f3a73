"""Provider quotas: the limits of each preset, the margin the daemon keeps under them, and
when a chunked full sync gives its worker back rather than wait for quota."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

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

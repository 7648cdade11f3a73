"""The scenario as the load test runs it (``prepare``) and the capacity the model predicts
for it (``predicted_capacity``), which sizes the plan's levels.

Pure: no service is touched. What cannot be reproduced on this machine (random provider
faults, several hosts, full-size mailboxes, the scenario's Graph folders) is changed on both
sides, the prediction's and the run's, and each change is noted for the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from daemon.errors import ConfigError
from simulator.fast import analytic
from simulator.inputs.distributions import (
    Constant,
    Distribution,
    Empirical,
    Exponential,
    Lognormal,
    Uniform,
)
from simulator.inputs.providers import PROVIDERS
from simulator.inputs.scenario import Scenario

# Mailbox sizes are scaled down so the warm-up (a full sync of every mailbox) stays short;
# incremental syncs of Gmail, Graph and QRESYNC IMAP do not depend on a mailbox's size.
DEFAULT_SIZE_SCALE = 0.01
MOCK_TOKEN_LIFETIME_S = 3599.0
MOCK_GRAPH_FOLDERS = 6


def scaled(d: Distribution, factor: float) -> Distribution:
    """``d`` with every value multiplied by ``factor`` (a mailbox size scaled down)."""
    if isinstance(d, Constant):
        return Constant(value=d.value * factor)
    if isinstance(d, Exponential):
        return Exponential(mean=d.mean * factor)
    if isinstance(d, Lognormal):
        return Lognormal(mean=d.mean * factor, sigma=d.sigma)
    if isinstance(d, Uniform):
        return Uniform(low=d.low * factor, high=d.high * factor)
    assert isinstance(d, Empirical)
    return Empirical(samples=[x * factor for x in d.samples])


def prepare(
    s: Scenario,
    *,
    processes: int | None = None,
    size_scale: float = DEFAULT_SIZE_SCALE,
    catalogue: str | None = None,
    instance: str | None = None,
) -> tuple[Scenario, list[str]]:
    """The scenario as the load test runs it, and what had to change (for the report).

    One host (this machine), mailbox sizes scaled, no random provider faults (the load
    test injects none, so the prediction assumes none), steady mailboxes at the start.
    """
    notes: list[str] = []
    imap = s.providers.imap
    if s.population.providers.get("imap", 0) > 0 and imap.mode != "qresync":
        raise ConfigError(
            f"{s.name}: providers.imap.mode {imap.mode!r}: the load test's IMAP server is "
            "Dovecot, which offers QRESYNC; only mode qresync can be reproduced"
        )
    if not 0 < size_scale <= 1:
        raise ConfigError(f"--size-scale {size_scale}: must be within (0, 1]")
    pop = s.population
    changes: dict[str, Any] = {
        "daemon.hosts": 1,
        "population.initial": "steady",
        "population.never_synced_share": 0.0,
        "population.mailbox_size": scaled(pop.mailbox_size, size_scale),
        "population.mailbox_size_cap": max(1, int(pop.mailbox_size_cap * size_scale)),
    }
    if processes is not None:
        changes["daemon.processes"] = processes
    if catalogue is not None:
        changes["costs.catalogue"] = catalogue
    if instance is not None:
        changes["daemon.instance"] = instance
    if size_scale < 1:
        notes.append(
            f"Mailbox sizes scaled by {size_scale:g} on both sides (mean "
            f"{_mean_size(s):,.0f} → {_mean_size(s) * size_scale:,.0f} messages) so the "
            "warm-up full syncs stay short; incremental syncs do not depend on size, full "
            "syncs after an expired cursor are correspondingly shorter."
        )
    if pop.initial != "steady" or pop.never_synced_share:
        notes.append(
            f"population.initial {pop.initial!r} replaced by 'steady': every mailbox is "
            "synced once during the warm-up before the levels run."
        )
    # The mock's access tokens last 3,599 s for both providers (its token endpoint's default).
    changes["providers.graph.token_lifetime_s"] = MOCK_TOKEN_LIFETIME_S
    changes["providers.gmail.token_lifetime_s"] = MOCK_TOKEN_LIFETIME_S
    # The daemons start right before the first level: no token cached, no IMAP connection.
    changes["daemon.fresh_start"] = True
    # The mock's Graph mailboxes hold the six well-known folders, none with children.
    graph = s.providers.graph
    if pop.providers.get("graph", 0) > 0 and (graph.folders, graph.parent_folders) != (
        MOCK_GRAPH_FOLDERS,
        0,
    ):
        changes["providers.graph.folders"] = MOCK_GRAPH_FOLDERS
        changes["providers.graph.parent_folders"] = 0
        notes.append(
            f"Graph mailboxes have the mock's {MOCK_GRAPH_FOLDERS} well-known folders (no "
            f"child folders) on both sides, not the scenario's {graph.folders} folders and "
            f"{graph.parent_folders} parents."
        )
    for p in PROVIDERS:
        model = s.providers[p]
        e = model.errors
        if e.transient or e.auth_revoked or e.permanent:
            changes[f"providers.{p}.errors"] = {"transient": 0, "auth_revoked": 0, "permanent": 0}
        if p != "imap" and model.rate_429:
            changes[f"providers.{p}.rate_429"] = 0.0
            notes.append(
                f"providers.{p}.rate_429 ({model.rate_429:g}) not reproduced: the mock answers "
                "429 only when a quota is exceeded; set to 0 for the prediction too."
            )
    if any(s.providers[p].errors.transient for p in PROVIDERS):
        notes.append(
            "Random provider failures (providers.*.errors) are not injected by the load "
            "test; the prediction assumes none either."
        )
    if pop.providers.get("imap", 0) > 0:
        notes.append(
            "IMAP latency is added by a TCP delay proxy, one delay per server answer: "
            "per-command differences (providers.imap.latency_by_method) come from Dovecot "
            "itself, and calibration measures them."
        )
        if s.daemon.cursor_expiry_per_sync:
            notes.append(
                "Expired cursors (daemon.cursor_expiry_per_sync) are reproduced for Gmail and "
                "Graph (the mock's expire-cursor); an IMAP UIDVALIDITY change is not."
            )
    return s.updated(changes), notes


def _mean_size(s: Scenario) -> float:
    from simulator.inputs.distributions import mean

    return min(mean(s.population.mailbox_size), float(s.population.mailbox_size_cap))


def predicted_capacity(s: Scenario) -> float:
    """The model's maximum sustainable syncs per minute for the scenario (fast path)."""
    prof = analytic.job_profile(s)
    out = analytic.evaluate(
        s, prof, np.array([float(s.population.tenants)]), np.array([float(s.daemon.processes)])
    )
    return float(np.asarray(out["x_max_per_min"]).ravel()[0])

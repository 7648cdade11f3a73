"""The scenario as settings of the real components: daemon environment, mock providers
config and the IMAP delay proxy. Pure functions; ``stack`` applies them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from simulator.inputs.distributions import Constant, Distribution, Exponential, Lognormal, draw
from simulator.inputs.scenario import Scenario

# The mock's OAuth apps (loadtest.mock_providers.config.TokenConfig defaults).
MOCK_CLIENTS = {
    "gmail": ("mock-gmail-client", "mock-gmail-secret"),
    "graph": ("mock-graph-client", "mock-graph-secret"),
}
IMAP_FOLDERS = ("INBOX", "Archive", "Projects", "Receipts", "Travel", "Lists")


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}__{k.upper().replace('.', '__')}", v, out)
    elif value is not None:
        out[prefix] = str(value)


def policy_env(s: Scenario) -> dict[str, str]:
    """``MAILSYNC_POLICY__*`` (and IMAP pool) variables for the scenario's daemon."""
    out = {
        "MAILSYNC_POLICY__PROFILE": s.daemon.profile,
        "MAILSYNC_POLICY__QUOTA_PRESET": s.daemon.quota_preset,
    }
    for key, value in s.daemon.overrides.items():
        _flatten("MAILSYNC_POLICY__" + key.upper().replace(".", "__"), value, out)
    imap = s.daemon.imap
    out["MAILSYNC_IMAP__MAX_CONNECTIONS_PER_ACCOUNT"] = str(imap.max_connections_per_account)
    out["MAILSYNC_IMAP__IDLE_KEEPALIVE_S"] = str(imap.idle_keepalive_s)
    out["MAILSYNC_IMAP__MAX_IDLE_S"] = str(imap.max_idle_s)
    return out


def daemon_env(
    base: Mapping[str, str],
    *,
    database_url: str,
    redis_url: str,
    prefix: str,
    key: str,
    token: str,
    mock_url: str,
    api_port: int,
    name: str,
    ca_file: str | None,
) -> dict[str, str]:
    """The environment of one daemon process of the run (everything but the policy)."""
    env = {k: v for k, v in base.items() if not k.startswith("MAILSYNC_")}
    env.update(
        {
            "MAILSYNC_DATABASE_URL": database_url,
            "MAILSYNC_REDIS_URL": redis_url,
            "MAILSYNC_REDIS_PREFIX": prefix,
            "MAILSYNC_ENCRYPTION_KEY": key,
            "MAILSYNC_API_TOKEN": token,
            "MAILSYNC_API_PORT": str(api_port),
            "MAILSYNC_PROCESS_NAME": name,
            "MAILSYNC_LOG_LEVEL": "warning",
            "MAILSYNC_GMAIL__BASE_URL": mock_url,
            "MAILSYNC_GMAIL__TOKEN_URL": f"{mock_url}/token",
            "MAILSYNC_GMAIL__CLIENT_ID": MOCK_CLIENTS["gmail"][0],
            "MAILSYNC_GMAIL__CLIENT_SECRET": MOCK_CLIENTS["gmail"][1],
            "MAILSYNC_GRAPH__BASE_URL": f"{mock_url}/v1.0",
            "MAILSYNC_GRAPH__TOKEN_URL": f"{mock_url}/common/oauth2/v2.0/token",
            "MAILSYNC_GRAPH__CLIENT_ID": MOCK_CLIENTS["graph"][0],
            "MAILSYNC_GRAPH__CLIENT_SECRET": MOCK_CLIENTS["graph"][1],
            # The run's Dovecot (and its delay proxy) listen on loopback, which the IMAP
            # host policy refuses by default.
            "MAILSYNC_IMAP__ALLOWED_NETWORKS": '["127.0.0.0/8", "::1/128"]',
        }
    )
    if ca_file is not None:
        env["MAILSYNC_IMAP__CA_FILE"] = ca_file
    return env


def warmup_env(s: Scenario, quota_scale: float) -> dict[str, str]:
    """Policy of the warm-up daemons: the scenario's, with room for every first full sync.

    New mailboxes are in the low tier; a wide low pool and relaxed quotas make the warm-up
    a matter of CPU, not of the scenario's limits (its figures are not measured).
    """
    out = policy_env(s)
    out.update(
        {
            "MAILSYNC_POLICY__CONCURRENCY__LOW": "64",
            "MAILSYNC_POLICY__BATCH_SIZE": "1000",
            "MAILSYNC_POLICY__QUOTA_SCALE": str(quota_scale),
            "MAILSYNC_POLICY__SCHEDULER_INTERVAL_S": "1",
        }
    )
    return out


def warmup_estimate_s(s: Scenario, mailboxes: int, messages: int) -> float:
    """About how long the first full sync of every mailbox takes on the scenario's own
    settings with no provider latency: its low-tier workers at a few milliseconds of CPU
    per request and per message, or the Gmail project quota, whichever is slower."""
    from daemon.policy import apply_quota_margin, get_quota_preset

    prof = s.profile()
    workers = max(1, prof.concurrency.low) * s.daemon.processes
    cpu = (mailboxes * 0.02 + messages * 0.001) / workers
    gmail = s.population.providers.get("gmail", 0.0)
    quota = 0.0
    lim = get_quota_preset(s.daemon.quota_preset).get("gmail")
    if gmail and lim is not None:
        lim = apply_quota_margin(lim, s.daemon.quota_margin)
        units = gmail * messages * lim.cost("messages.get")
        for q in lim.quotas:
            if q.scope.value == "app":
                quota = max(quota, units / q.sustained_per_s)
            else:
                # Each mailbox waits for its own budget beyond the burst, a worker held.
                per = max(0.0, units / max(1.0, gmail * mailboxes) - q.burst)
                quota = max(quota, gmail * mailboxes * per / q.sustained_per_s / workers)
    return max(cpu, quota)


def latency_dist(d: Distribution, samples: int = 500) -> dict[str, Any]:
    """A scenario distribution (seconds) as the mock's latency distribution (milliseconds)."""
    if isinstance(d, Constant):
        return {"dist": "constant", "mean_ms": d.value * 1000}
    if isinstance(d, Exponential):
        return {"dist": "exponential", "mean_ms": d.mean * 1000}
    if isinstance(d, Lognormal):
        return {"dist": "lognormal", "mean_ms": d.mean * 1000, "sigma": d.sigma}
    values = np.sort(draw(d, np.random.default_rng(0), samples)) * 1000
    return {"dist": "empirical", "samples_ms": [round(float(v), 3) for v in values]}


def mock_config(s: Scenario, seed: int, latency: bool = True) -> dict[str, Any]:
    """The mock's config: the scenario's latencies (none with ``latency=False``, for a
    warm-up) and the provider's real quotas."""
    providers: dict[str, Any] = {}
    methods: dict[str, Any] = {}
    inner_ms = 0.0
    for p in ("gmail", "graph"):
        model = s.providers[p]
        providers[p] = latency_dist(model.latency_s)
        for method, dist in model.latency_by_method.items():
            methods[f"{p}:{method}"] = latency_dist(dist)
        if p == "gmail":
            inner_ms = model.batch_inner_s * 1000
    real = s.providers.gmail.actual_quotas or s.daemon.quota_preset
    if not latency:
        providers, methods, inner_ms = {}, {}, 0.0
    return {
        "seed": seed,
        "latency": {
            "dist": "constant",
            "mean_ms": 0,
            "providers": providers,
            "methods": methods,
            "batch_inner_ms": inner_ms,
        },
        "quotas": {"enabled": True, "preset": real, "scale": 1.0},
        "faults": {"error_rate": 0, "slow_rate": 0, "garbage_rate": 0},
    }


def warmup_mock_config(quota_scale: float) -> dict[str, Any]:
    """The mock during the warm-up: no latency, quotas relaxed like the daemon's."""
    return {
        "latency": {"dist": "constant", "mean_ms": 0, "providers": {}, "methods": {}},
        "quotas": {"scale": quota_scale},
    }


def proxy_delay(s: Scenario) -> str:
    """The delay proxy's server-to-client delay standing for the IMAP round trip."""
    d = s.providers.imap.latency_s
    if isinstance(d, Constant):
        return f"{d.value * 1000:.3f}ms"
    if isinstance(d, Exponential):
        return f"exponential:{d.mean * 1000:.3f}ms"
    if isinstance(d, Lognormal):
        median = d.mean * math.exp(-(d.sigma**2) / 2)
        return f"lognormal:{median * 1000:.3f}ms:{d.sigma:g}"
    # Uniform and empirical: a lognormal with the same mean and spread.
    x = draw(d, np.random.default_rng(0), 4000)
    m, sd = float(x.mean()), float(x.std())
    sigma = math.sqrt(math.log(1 + (sd / m) ** 2)) if m > 0 else 0.0
    return f"lognormal:{m * math.exp(-(sigma**2) / 2) * 1000:.3f}ms:{sigma:.3f}"


def imap_folders(s: Scenario) -> list[str]:
    """The folders each IMAP mailbox is provisioned with and synced."""
    n = s.providers.imap.folders
    return [*IMAP_FOLDERS[:n], *(f"Folder{i}" for i in range(len(IMAP_FOLDERS), n))]

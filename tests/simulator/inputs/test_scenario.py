"""The scenario model: the IMAP provider, the Graph folders, the quota margin, their defaults
and errors (through the loader)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from daemon import policy
from daemon.errors import ConfigError
from daemon.policy import DEFAULT_FETCH, FetchShape, SyncKind
from daemon.provider_settings import ImapSettings
from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario
from simulator.model.gate import ProviderRuntime


def _load(tmp_path: Path, body: str) -> str:
    p = tmp_path / "s.yaml"
    p.write_text("extends: base\npopulation:\n  tenants: 10\n" + body, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_scenario(p)
    return str(e.value)


def test_imap_defaults_come_from_the_daemon_and_base_yaml() -> None:
    s = load_scenario("mixed-imap")
    assert s.population.providers["imap"] == pytest.approx(0.3)
    imap = s.providers["imap"]
    assert s.providers.imap is imap
    daemon = ImapSettings()
    assert (
        s.daemon.imap.idle_keepalive_s,
        s.daemon.imap.max_idle_s,
        s.daemon.imap.reauth_after_s,
    ) == (daemon.idle_keepalive_s, daemon.max_idle_s, daemon.reauth_after_s)
    assert s.daemon.imap.max_connections_per_account == daemon.max_connections_per_account
    assert s.providers.imap.fetch_shape() == FetchShape(imap_mode="qresync", imap_folders=1)
    # LOGIN + ENABLE QRESYNC; Dovecot's 10 connections per user and client IP.
    assert (s.providers.imap.logins, s.providers.imap.connection_limit) == (2, 10)
    gmail_like = s.updated({"providers.imap.mode": "condstore"}).providers.imap
    assert (gmail_like.logins, gmail_like.connection_limit) == (1, 15)
    assert s.enforced("imap") is None and s.enforced("gmail") is not None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "providers:\n  imap:\n    mode: imap4rev2\n",
            "line 6: providers.imap.mode: Input should be",
        ),
        (
            "providers:\n  imap:\n    folders: 0\n",
            "line 6: providers.imap.folders: Input should be",
        ),
        (
            "providers:\n  imap:\n    actual_quotas: documented\n",
            "line 6: providers.imap.actual_quotas: IMAP has no request quota",
        ),
        ("providers:\n  imap:\n    rate_429: 0.1\n", "line 6: providers.imap.rate_429: IMAP"),
        ("providers:\n  imapx: {}\n", "line 5: providers.imapx: Extra inputs are not permitted"),
        (
            "daemon:\n  imap:\n    max_idle_s: 30\n",
            "line 6: daemon.imap.max_idle_s: must be >= idle_keepalive_s",
        ),
        (
            "providers:\n  graph:\n    folders: 3\n    parent_folders: 4\n",
            "line 7: providers.graph.parent_folders: cannot exceed folders",
        ),
        (
            "providers:\n  graph:\n    folders: 0\n",
            "line 6: providers.graph.folders: Input should be",
        ),
        (
            "  providers: {gmail: 1.5, imap: -0.5}\n",
            "line 4: population.providers: share of gmail must be within [0, 1]",
        ),
        (
            "  providers: {gmail: 0.5, pop3: 0.5}\n",
            "population.providers: unknown ['pop3']; known: ['gmail', 'graph', 'imap']",
        ),
    ],
)
def test_provider_errors_name_the_field_and_line(tmp_path: Path, body: str, expected: str) -> None:
    assert expected in _load(tmp_path, body)


def test_enforced_quotas_are_the_presets_under_the_daemons_margin() -> None:
    s = load_scenario("plan-b-1000")
    assert s.daemon.quota_margin == policy.QUOTA_MARGIN_DEFAULT
    preset = policy.get_quota_preset(s.daemon.quota_preset)
    assert dict(s.limits()) == {
        p: policy.apply_quota_margin(lim, policy.QUOTA_MARGIN_DEFAULT) for p, lim in preset.items()
    }
    gmail = s.enforced("gmail")
    assert gmail is not None
    # The 2026 per-user budget of 6,000 units a minute, enforced as 5,400 (burst kept).
    assert (gmail.quotas[0].name, gmail.quotas[0].limit, gmail.quotas[0].burst) == (
        "gmail.user",
        5_400,
        100,
    )
    # A margin of 1.0 enforces the provider's limits as they are.
    assert dict(s.updated({"daemon.quota_margin": 1.0}).limits()) == dict(preset)


@pytest.mark.parametrize("value", ["0", "1.5"])
def test_quota_margin_errors_name_the_field_and_line(tmp_path: Path, value: str) -> None:
    message = _load(tmp_path, f"daemon:\n  quota_margin: {value}\n")
    assert "line 5: daemon.quota_margin: Input should be" in message


def _graph_requests(s: Scenario, kind: SyncKind, messages: int, added: int) -> tuple[int, int]:
    """HTTP requests and quota units of one Graph sync as the simulator walks them."""
    rt = ProviderRuntime(
        "graph",
        s.providers.graph,
        s.enforced("graph"),
        None,
        1,
        np.random.default_rng(1),
        random.Random(1),
    )
    reqs = rt.requests(kind, messages, added, 0, 0)
    return len(reqs), sum(r[1] for r in reqs)


def test_graph_folders_are_a_scenario_setting_counted_as_the_daemon_counts() -> None:
    s = load_scenario("plan-b-1000")
    graph = s.providers.graph
    assert (graph.folders, graph.parent_folders, graph.list_folders) == (
        DEFAULT_FETCH.graph_folders,
        DEFAULT_FETCH.graph_parent_folders,
        DEFAULT_FETCH.graph_list_folders,
    )
    # Default: one page of top-level folders, a child list per parent, a delta per folder;
    # an incremental sync sends the folders' delta pages in JSON batches of 20 (each page
    # still one unit of quota), the first carrying the root list's page.
    assert _graph_requests(s, SyncKind.INCREMENTAL, 5000, 2) == (0 + 2 + 1, 1 + 2 + 9)
    bigger = s.updated({"providers.graph.folders": 40, "providers.graph.parent_folders": 6})
    # The list and 19 pages, then 20, then 1.
    assert _graph_requests(bigger, SyncKind.INCREMENTAL, 5000, 2) == (0 + 6 + 3, 1 + 6 + 40)
    # 40 folders, 4,000 messages: 100 per folder, one delta page each, not batched.
    assert _graph_requests(bigger, SyncKind.FULL, 4000, 0) == (1 + 6 + 40, 1 + 6 + 40)
    narrowed = s.updated(
        {
            "providers.graph.folders": 2,
            "providers.graph.parent_folders": 0,
            "providers.graph.list_folders": False,
        }
    )
    assert _graph_requests(narrowed, SyncKind.INCREMENTAL, 5000, 2) == (1, 2)

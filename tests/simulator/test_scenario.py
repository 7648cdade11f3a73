"""The scenario model: the IMAP provider, its defaults and its errors (through the loader)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.errors import ConfigError
from daemon.policy import FetchShape
from daemon.settings import ImapSettings
from simulator.loader import load_scenario


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
            "daemon:\n  imap:\n    max_idle_s: 60\n",
            "line 6: daemon.imap.max_idle_s: must be >= idle_keepalive_s",
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
def test_imap_errors_name_the_field_and_line(tmp_path: Path, body: str, expected: str) -> None:
    assert expected in _load(tmp_path, body)

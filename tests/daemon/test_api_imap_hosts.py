"""The IMAP host policy: refused at registration (422 naming config.host and the rule) and
again at connect time (a PermanentError), unless the operator allows the network."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from daemon.app import Daemon
from daemon.errors import PermanentError, TransientError
from daemon.policy import SyncKind
from daemon.providers.base import Credentials, MailboxContext
from daemon.providers.imap import ImapProvider, ImapSettings, build_imap_provider
from daemon.providers.imap_hosts import LOOPBACK, HostPolicy, HostRefused
from daemon.ratelimit import CountingGate
from daemon.settings import load_settings
from tests.daemon.api_harness import api, api_daemon
from tests.daemon.harness import free_port

NON_PUBLIC = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "0.0.0.0",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "64:ff9b::a00:1",
    "224.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
]


def imap_box(host: str, port: int = 993, address: str = "i@b.test") -> dict[str, Any]:
    return {
        "provider": "imap",
        "address": address,
        "credentials": {"password": "p"},
        "config": {"host": host, "port": port, "username": "u"},
    }


@pytest.fixture
async def daemon(
    db: asyncpg.Pool, pg_dsn: str, redis_url: str, redis_prefix: str
) -> AsyncIterator[Daemon]:
    async with api_daemon(pg_dsn, redis_url, redis_prefix) as d:
        yield d


def test_the_policy_refuses_non_public_addresses_unless_allowed() -> None:
    strict = HostPolicy()
    for text in NON_PUBLIC:
        assert strict.refusal(ipaddress.ip_address(text)) is not None, text
    for text in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"):
        assert strict.refusal(ipaddress.ip_address(text)) is None, text
    local = HostPolicy(LOOPBACK)
    assert local.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert local.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert local.refusal(ipaddress.ip_address("10.0.0.1")) is not None
    office = HostPolicy.of(["10.1.2.0/24"])
    assert office.refusal(ipaddress.ip_address("10.1.2.3")) is None
    assert office.refusal(ipaddress.ip_address("10.1.3.3")) is not None


async def test_names_are_resolved_and_every_address_checked() -> None:
    with pytest.raises(HostRefused, match="not a public address") as refused:
        await HostPolicy().resolve("localhost", 993)
    assert refused.value.rule == "non_public_address"
    # A decimal IPv4 literal is still loopback once resolved.
    with pytest.raises(HostRefused) as refused:
        await HostPolicy().resolve("2130706433", 993)
    assert refused.value.rule == "non_public_address"
    with pytest.raises(HostRefused) as refused:
        await HostPolicy().resolve("no-such-host.invalid", 993)
    assert refused.value.rule == "not_resolvable"
    assert await HostPolicy(LOOPBACK).resolve("127.0.0.1", 993) == ["127.0.0.1"]
    assert set(await HostPolicy(LOOPBACK).resolve("localhost", 993)) <= {"127.0.0.1", "::1"}


async def test_registration_refuses_hosts_outside_the_policy(daemon: Daemon) -> None:
    async with api(daemon, imap_hosts=HostPolicy()) as client:
        tenant = (await client.post("/tenants", json={"name": "t"})).json()["id"]
        url = f"/tenants/{tenant}/mailboxes"
        for host in [*NON_PUBLIC, "localhost", "2130706433"]:
            r = await client.post(url, json=imap_box(host, 5432))
            assert r.status_code == 422, (host, r.text)
            [err] = r.json()["detail"]
            assert err["loc"] == ["body", "config", "host"], err
            assert err["type"] == "imap_host_policy.non_public_address", err
            assert "IMAP host policy" in err["msg"] and "imap.allowed_networks" in err["msg"]
        r = await client.post(url, json=imap_box("no-such-host.invalid"))
        assert r.status_code == 422
        assert r.json()["detail"][0]["type"] == "imap_host_policy.not_resolvable"
        # A public address is accepted (nothing connects at registration).
        r = await client.post(url, json=imap_box("93.184.216.34"))
        assert r.status_code == 201, r.text
        assert r.json()["config"] == {
            "host": "93.184.216.34",
            "port": 993,
            "tls": "implicit",
            "username": "u",
            "auth": "password",
        }
        # Bulk routes name the mailbox that is refused.
        boxes = [imap_box("93.184.216.34", address="x@b.test"), imap_box("10.0.0.1")]
        r = await client.post(f"{url}/bulk", json={"mailboxes": boxes})
        assert r.status_code == 422
        assert [e["loc"] for e in r.json()["detail"]] == [
            ["body", "mailboxes", 1, "config", "host"]
        ]
        onboarding = {"tenants": [{"name": "n", "mailboxes": [imap_box("192.168.0.1")]}]}
        r = await client.post("/tenants/bulk", json=onboarding)
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == [
            "body",
            "tenants",
            0,
            "mailboxes",
            0,
            "config",
            "host",
        ]
        assert (await client.get("/tenants")).json()[0]["mailboxes"] == 1


async def test_registration_accepts_networks_the_operator_allows(daemon: Daemon) -> None:
    policy = HostPolicy.of(["127.0.0.0/8", "10.1.2.0/24"])
    async with api(daemon, imap_hosts=policy) as client:
        tenant = (await client.post("/tenants", json={"name": "t"})).json()["id"]
        url = f"/tenants/{tenant}/mailboxes"
        r = await client.post(url, json=imap_box("127.0.0.1", 5432, "a@b.test"))
        assert r.status_code == 201
        assert (
            await client.post(url, json=imap_box("10.1.2.3", 993, "b@b.test"))
        ).status_code == 201
        assert (
            await client.post(url, json=imap_box("10.1.3.3", 993, "c@b.test"))
        ).status_code == 422


def _context(host: str, port: int) -> MailboxContext:
    async def save(_: Credentials) -> None:
        return None

    return MailboxContext(
        mailbox_id=1,
        address="i@b.test",
        credentials=Credentials({"password": "p"}),
        config={"host": host, "port": port, "username": "u", "tls": "none"},
        gate=CountingGate(),
        save_credentials=save,
    )


async def test_connect_time_check_refuses_what_the_policy_refuses() -> None:
    port = free_port()  # nothing listens there
    strict = ImapProvider(ImapSettings())
    for host in ("127.0.0.1", "localhost"):
        with pytest.raises(PermanentError, match="refused by the IMAP host policy"):
            await strict.sync(_context(host, port), SyncKind.FULL, None)
    # Allowed: the policy lets it through and the connection itself fails (transient).
    local = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
    with pytest.raises(TransientError, match="cannot connect"):
        await local.sync(_context("127.0.0.1", port), SyncKind.FULL, None)
    await strict.aclose()
    await local.aclose()


def test_the_daemon_settings_carry_the_policy_to_the_provider() -> None:
    settings = load_settings(None, {"imap": {"allowed_networks": ["10.0.0.0/8"]}}, environ={})
    provider = build_imap_provider(settings.imap)
    assert provider.settings.allowed_networks == (ipaddress.ip_network("10.0.0.0/8"),)
    assert (
        build_imap_provider(load_settings(None, {}, environ={}).imap).settings.allowed_networks
        == ()
    )
    env = {"MAILSYNC_IMAP__ALLOWED_NETWORKS": '["127.0.0.0/8", "::1/128"]'}
    assert load_settings(None, {}, environ=env).imap.allowed_networks == list(LOOPBACK)

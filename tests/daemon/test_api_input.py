"""Bad input to the HTTP API (issue 13): every case a 4xx naming the field and the rule,
never a 500, never echoing a secret; against the real PostgreSQL and Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from daemon.app import Daemon
from daemon.policy import QuotaScope
from daemon.ratelimit import QuotaGate, account_key
from tests.daemon.api_harness import api, api_daemon

MAX_ID = 2**63 - 1
GMAIL = {"provider": "gmail", "address": "a@b.test", "credentials": {"refresh_token": "rt"}}
JSON = {"content-type": "application/json"}


@pytest.fixture
async def daemon(
    db: asyncpg.Pool, pg_dsn: str, redis_url: str, redis_prefix: str
) -> AsyncIterator[Daemon]:
    async with api_daemon(pg_dsn, redis_url, redis_prefix) as d:
        yield d


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    async with api(daemon) as c:
        yield c


@pytest.fixture
async def tenant(client: httpx.AsyncClient) -> int:
    r = await client.post("/tenants", json={"name": "acme"})
    assert r.status_code == 201
    return int(r.json()["id"])


def fields(r: httpx.Response) -> set[str]:
    """The fields a 422 names (path in the body, query or path parameters)."""
    assert r.status_code == 422, (r.status_code, r.text)
    detail = json.loads(r.text)["detail"]  # strict JSON: no NaN echoed
    return {".".join(str(p) for p in e["loc"][1:]) for e in detail}


def raw(text: str) -> dict[str, Any]:
    """Keyword arguments posting ``text`` as a JSON body, byte for byte."""
    return {"content": text.encode(), "headers": JSON}


async def test_nul_characters_and_lone_surrogates_are_named(
    client: httpx.AsyncClient, tenant: int
) -> None:
    url = f"/tenants/{tenant}/mailboxes"
    imap = '"provider": "imap", "address": "i@b.test", "credentials": {"password": "p"}'
    cases = [
        ("/tenants", '{"name": "a\\u0000b"}', "name"),
        ("/tenants", '{"name": "a\\ud800b"}', "name"),
        ("/tenants", '{"name": "\\udfff"}', "name"),
        (url, '{"provider": "gmail", "address": "a\\u0000@b.test", "credentials": {}}', "address"),
        (url, '{"provider": "gmail", "address": "\\ud800@b.test", "credentials": {}}', "address"),
        (
            url,
            '{"provider": "gmail", "address": "a@b.test", "credentials": {"refresh_token": '
            '"r\\u0000t"}}',
            "credentials.refresh_token",
        ),
        (
            url,
            '{"provider": "gmail", "address": "a@b.test", "credentials": {"refresh_token": '
            '"\\udc00"}}',
            "credentials.refresh_token",
        ),
        (url, "{" + imap + ', "config": {"host": "h\\u0000", "username": "u"}}', "config"),
        (url, "{" + imap + ', "config": {"host": "h", "username": "\\ud801"}}', "config"),
    ]
    for key, value in (("x", '"\\u0000"'), ("\\ud800", "1"), ("a", '[{"b": "\\udc00"}]')):
        body = (
            '{"provider": "graph", "address": "g@b.test", "credentials": {"refresh_token": "r"},'
            f' "config": {{"{key}": {value}}}}}'
        )
        cases.append((url, body, "config"))
    for path, body, field in cases:
        r = await client.post(path, **raw(body))
        assert fields(r) == {field}, (body, r.text)
    assert (await client.get("/tenants")).json()[0]["mailboxes"] == 0


async def test_nan_and_infinity_are_named_not_echoed(
    client: httpx.AsyncClient, tenant: int
) -> None:
    url = f"/tenants/{tenant}/mailboxes"
    for number in ("NaN", "Infinity", "-Infinity"):
        r = await client.post("/tenants", **raw('{"name": "n", "sync_interval_s": ' + number + "}"))
        assert fields(r) == {"sync_interval_s"}
        body = dict(GMAIL, sync_interval_s="X")
        r = await client.post(url, **raw(json.dumps(body).replace('"X"', number)))
        assert fields(r) == {"sync_interval_s"}
        for config in ('{"a": N}', '{"a": {"b": [1, N]}}'):
            body = dict(GMAIL, config="X")
            r = await client.post(
                url, **raw(json.dumps(body).replace('"X"', config.replace("N", number)))
            )
            assert fields(r) == {"config"} and "NaN and Infinity" in r.text
    r = await client.post("/tenants", **raw('{"name": "n", "sync_interval_s": 1e400}'))
    assert fields(r) == {"sync_interval_s"}


# Every route with an id in its path, with a body it would accept.
ID_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/tenants/{}", None),
    ("DELETE", "/tenants/{}", None),
    ("POST", "/tenants/{}/mailboxes", GMAIL),
    ("POST", "/tenants/{}/mailboxes/bulk", {"mailboxes": [GMAIL]}),
    ("POST", "/tenants/{}/pause", None),
    ("POST", "/tenants/{}/resume", None),
    ("GET", "/mailboxes/{}", None),
    ("GET", "/mailboxes/{}/runs", None),
    ("DELETE", "/mailboxes/{}", None),
    ("PUT", "/mailboxes/{}/credentials", {"credentials": {"refresh_token": "x"}}),
    ("POST", "/mailboxes/{}/sync", None),
]


async def test_ids_are_bounded_to_bigint_on_every_route(client: httpx.AsyncClient) -> None:
    for method, template, body in ID_ROUTES:
        param = "tenant_id" if template.startswith("/tenants") else "mailbox_id"
        for bad in (2**63, 2**64, 10**30, 0, -1, "1.5", "x"):
            r = await client.request(method, template.format(bad), json=body)
            assert fields(r) == {param}, (method, template, bad, r.text)
        r = await client.request(method, template.format(MAX_ID), json=body)
        assert r.status_code == 404, (method, template, r.text)
    for query in ({"after_id": 2**63}, {"after_id": -1}, {"tenant_id": 2**63}, {"tenant_id": 0}):
        r = await client.get("/mailboxes", params=query)
        assert fields(r) == set(query), query
    r = await client.get("/mailboxes", params={"tenant_id": MAX_ID, "after_id": MAX_ID})
    assert r.status_code == 200 and r.json() == []


async def test_bodies_and_strings_are_bounded(
    client: httpx.AsyncClient, tenant: int, db: asyncpg.Pool
) -> None:
    url = f"/tenants/{tenant}/mailboxes"
    huge = dict(GMAIL, credentials={"refresh_token": "t" * 10_000_000})
    r = await client.post(url, json=huge)
    assert r.status_code == 413 and "65536 bytes" in r.json()["detail"]
    r = await client.put("/mailboxes/1/credentials", json={"credentials": huge["credentials"]})
    assert r.status_code == 413
    r = await client.post(url, json=dict(GMAIL, config={"x": "y" * 10_000_000}))
    assert r.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        # Streamed without a Content-Length: counted as it arrives.
        yield b'{"name": "'
        for _ in range(100):
            yield b"n" * 1000
        yield b'"}'

    r = await client.post("/tenants", content=chunks(), headers=JSON)
    assert r.status_code == 413
    bulk = {"mailboxes": [dict(GMAIL, credentials={"refresh_token": "t" * 8000})] * 4500}
    r = await client.post(f"{url}/bulk", json=bulk)
    assert r.status_code == 413 and str(32 * 1024 * 1024) in r.text

    r = await client.post(url, json=dict(GMAIL, credentials={"refresh_token": "t" * 8193}))
    assert fields(r) == {"credentials.refresh_token"} and "8192" in r.text
    many = {f"k{i}": "v" for i in range(9)} | {"refresh_token": "t"}
    assert fields(await client.post(url, json=dict(GMAIL, credentials=many))) == {"credentials"}
    bad_name = {"refresh_token": "t", "no spaces": "v"}
    r = await client.post(url, json=dict(GMAIL, credentials=bad_name))
    assert fields(r) == {"credentials.no spaces.[key]"}
    r = await client.post(url, json=dict(GMAIL, config={"x": "y" * 17_000}))
    assert fields(r) == {"config"} and "16384 bytes" in r.text
    deep: Any = 1
    for _ in range(9):
        deep = [deep]
    r = await client.post(url, json=dict(GMAIL, config={"x": deep}))
    assert fields(r) == {"config"} and "nested deeper" in r.text
    r = await client.post("/tenants", content=b"[" * 30_000, headers=JSON)
    assert r.status_code in (400, 422)
    assert fields(await client.post("/tenants", json={"name": "n" * 201})) == {"name"}
    r = await client.post(url, json=dict(GMAIL, address="a" * 300 + "@" + "b" * 30))
    assert fields(r) == {"address"}
    imap = {
        "provider": "imap",
        "address": "i@b.test",
        "credentials": {"password": "p"},
        "config": {"host": "h" * 254, "username": "u"},
    }
    r = await client.post(url, json=imap)
    assert fields(r) == {"config"} and "config.host" in r.text
    imap["config"] = {"host": "127.0.0.1", "username": "u", "folders": ["f"] * 101}
    assert "config.folders" in (await client.post(url, json=imap)).text

    # What is stored and listed is as bounded as what is accepted.
    fits = dict(GMAIL, config={"x": "y" * 16_000}, credentials={"refresh_token": "t" * 8192})
    assert (await client.post(url, json=fits)).status_code == 201
    listed = await client.get("/mailboxes")
    assert len(listed.content) < 20_000 and "credentials" not in listed.json()[0]
    assert await db.fetchval("SELECT max(length(config::text)) FROM mailboxes") < 16_500


async def test_422_answers_never_echo_input_values(client: httpx.AsyncClient, tenant: int) -> None:
    url = f"/tenants/{tenant}/mailboxes"
    secret = "SECRET-REFRESH-TOKEN-71"
    bodies: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", url, dict(GMAIL, address="not-an-address", credentials={"refresh_token": secret})),
        ("POST", url, dict(GMAIL, credentials={"refresh_token": [secret]})),
        ("POST", url, dict(GMAIL, credentials={"refresh_token": secret, "bad key": secret})),
        ("POST", url, dict(GMAIL, credentials={"refresh_token": secret}, extra=secret)),
        (
            "POST",
            url,
            {
                "provider": "imap",
                "address": "i@b.test",
                "credentials": {"password": secret},
                "config": {"host": "127.0.0.1", "port": 0, "username": secret},
            },
        ),
        ("POST", f"{url}/bulk", {"mailboxes": [dict(GMAIL, credentials={"password": secret})]}),
        ("POST", "/tenants/bulk", {"tenants": [{"name": secret, "mailboxes": [{"a": secret}]}]}),
        ("PUT", "/mailboxes/1/credentials", {"credentials": {"refresh_token": secret * 1000}}),
        ("PUT", "/mailboxes/1/credentials", {"credentials": {"refresh_token": 7}, "x": secret}),
    ]
    for method, path, body in bodies:
        r = await client.request(method, path, json=body)
        assert r.status_code == 422, (path, body, r.text)
        assert secret not in r.text, r.text
        for err in r.json()["detail"]:
            assert set(err) == {"type", "loc", "msg"}, err


async def test_addresses_compare_case_insensitively_and_accounts_share_their_quota(
    client: httpx.AsyncClient, tenant: int, db: asyncpg.Pool, daemon: Daemon
) -> None:
    url = f"/tenants/{tenant}/mailboxes"
    r = await client.post(url, json=dict(GMAIL, address="Alice@Example.COM"))
    assert r.status_code == 201 and r.json()["address"] == "alice@example.com"
    for twin in ("alice@example.com", "ALICE@EXAMPLE.COM"):
        r = await client.post(url, json=dict(GMAIL, address=twin))
        assert r.status_code == 409 and "case-insensitively" in r.text
    # Another provider's account of the same address is another account.
    graph = dict(GMAIL, provider="graph", address="ALICE@example.com")
    assert (await client.post(url, json=graph)).status_code == 201
    boxes = [dict(GMAIL, address=a) for a in ("aLiCe@example.com", "Bob@x.test", "BOB@x.test")]
    r = await client.post(f"{url}/bulk", json={"mailboxes": boxes})
    assert r.status_code == 201 and r.json()["skipped"] == 2
    assert [m["address"] for m in r.json()["created"]] == ["bob@x.test"]
    twins = [dict(GMAIL, address="c@x.test"), dict(GMAIL, address="C@X.test")]
    r = await client.post("/tenants/bulk", json={"tenants": [{"name": "t2", "mailboxes": twins}]})
    assert r.status_code == 409

    # The same account under a second tenant is allowed ...
    other = (await client.post("/tenants", json={"name": "other"})).json()["id"]
    r = await client.post(
        f"/tenants/{other}/mailboxes", json=dict(GMAIL, address="ALICE@example.com")
    )
    assert r.status_code == 201
    rows = await db.fetch(
        "SELECT tenant_id, address FROM mailboxes WHERE provider = 'gmail' AND address LIKE 'alice%'"
    )
    assert sorted(r["tenant_id"] for r in rows) == [tenant, other]
    assert {r["address"] for r in rows} == {"alice@example.com"}

    # ... and both rows draw from one quota: the worker keys buckets by the account.
    runner, limiters = daemon.runner, daemon.limiters
    assert runner is not None and limiters is not None
    [user] = [q for q in limiters.limits["gmail"].quotas if q.scope is QuotaScope.MAILBOX]
    first, second, stranger = (
        runner._gate("gmail", "alice@example.com"),
        runner._gate("gmail", "Alice@Example.COM"),
        runner._gate("gmail", "bob@x.test"),
    )
    assert isinstance(first, QuotaGate) and isinstance(second, QuotaGate)
    assert isinstance(stranger, QuotaGate)
    await first.acquire("unpriced", user.burst)  # the whole burst, at once
    assert first.waited_s == 0
    await stranger.acquire("unpriced", user.burst // 2)
    assert stranger.waited_s == 0
    await second.acquire("unpriced", user.burst // 2)
    assert second.waited_s > 0
    assert account_key("gmail", "A@B.test") == account_key("gmail", "a@b.test")
    assert account_key("gmail", "a@b.test") != account_key("graph", "a@b.test")
    assert "a@b.test" not in account_key("gmail", "a@b.test")

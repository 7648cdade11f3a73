"""The HTTP API on a running daemon: auth, registration, bad input named, status, metrics."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx

from tests.daemon.harness import API_TOKEN, MockServer, daemon_settings, running, wait_until

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def _fields(resp: httpx.Response) -> set[str]:
    return {".".join(str(p) for p in e["loc"][1:]) for e in resp.json()["detail"]}


async def test_api_end_to_end(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    await mock_server.reset({"quotas": {"scale": 10}})
    [creds] = await mock_server.populate(gmail=1, graph=0, seed=31)
    settings = daemon_settings(
        pg_dsn,
        redis_url,
        redis_prefix,
        mock_server.url,
        policy={"quota_scale": 10, "scheduler_interval_s": 60},
    )
    async with running(settings):
        base = f"http://127.0.0.1:{settings.api_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            assert (await api.get("/healthz")).json() == {"status": "ok"}
            assert (await api.get("/tenants")).status_code == 401
            bad = await api.get("/tenants", headers={"Authorization": "Bearer nope"})
            assert bad.status_code == 401

            r = await api.post("/tenants", json={}, headers=AUTH)
            assert r.status_code == 422 and _fields(r) == {"name"}
            r = await api.post(
                "/tenants", json={"name": "acme", "sync_interval_s": -5}, headers=AUTH
            )
            assert r.status_code == 422 and _fields(r) == {"sync_interval_s"}
            r = await api.post(
                "/tenants",
                content=b"{not json",
                headers={**AUTH, "content-type": "application/json"},
            )
            assert r.status_code == 422
            tenant = (await api.post("/tenants", json={"name": "acme"}, headers=AUTH)).json()
            assert (
                await api.post("/tenants", json={"name": "acme"}, headers=AUTH)
            ).status_code == 409

            url = f"/tenants/{tenant['id']}/mailboxes"
            r = await api.post(
                url, json={"provider": "yahoo", "address": "a@b.c", "credentials": {}}, headers=AUTH
            )
            assert r.status_code == 422 and "provider" in _fields(r)
            r = await api.post(
                url,
                json={
                    "provider": "gmail",
                    "address": "not-an-address",
                    "credentials": {"refresh_token": "x"},
                },
                headers=AUTH,
            )
            assert r.status_code == 422 and _fields(r) == {"address"}
            r = await api.post(
                url, json={"provider": "gmail", "address": "a@b.c", "credentials": {}}, headers=AUTH
            )
            assert r.status_code == 422 and "credentials.refresh_token" in r.text
            r = await api.post(
                url,
                json={
                    "provider": "imap",
                    "address": "a@b.c",
                    "credentials": {"password": "p"},
                    "config": {"port": 0},
                },
                headers=AUTH,
            )
            assert r.status_code == 422 and "host" in r.text and "port" in r.text
            graph = {"provider": "graph", "address": "g@b.c", "credentials": {"refresh_token": "x"}}
            for folders in ("inbox", [], ["inbox", ""], [3]):
                r = await api.post(
                    url, json={**graph, "config": {"folders": folders}}, headers=AUTH
                )
                assert r.status_code == 422 and "config.folders must be" in r.text, folders
            r = await api.post(
                "/tenants/999/mailboxes",
                json={
                    "provider": "gmail",
                    "address": "a@b.c",
                    "credentials": {"refresh_token": "x"},
                },
                headers=AUTH,
            )
            assert r.status_code == 404
            r = await api.get("/mailboxes", params={"limit": 0}, headers=AUTH)
            assert r.status_code == 422 and _fields(r) == {"limit"}

            body = {
                "provider": "gmail",
                "address": creds["address"],
                "credentials": {"refresh_token": creds["refresh_token"]},
            }
            mbx = (await api.post(url, json=body, headers=AUTH)).json()
            assert "credentials" not in mbx and mbx["state"] == "idle"
            stored = await db.fetchval("SELECT credentials FROM mailboxes WHERE id = $1", mbx["id"])
            assert creds["refresh_token"].encode() not in stored  # encrypted at rest

            r = await api.post(f"/mailboxes/{mbx['id']}/sync", headers=AUTH)
            assert r.status_code == 202 and r.json()["tier"] == "high" and r.json()["queued"]

            async def synced() -> bool:
                m = (await api.get(f"/mailboxes/{mbx['id']}", headers=AUTH)).json()
                return m["last_success_at"] is not None and m["state"] == "idle"

            await wait_until(synced, 30, "the sync-now to finish")
            runs = (await api.get(f"/mailboxes/{mbx['id']}/runs", headers=AUTH)).json()
            assert len(runs) == 1 and runs[0]["tier"] == "high" and runs[0]["kind"] == "full"

            status = (await api.get("/email-sync/status", headers=AUTH)).json()
            assert set(status["queues"]) == {"high", "normal", "low"}
            assert status["queues"]["high"]["completed"] >= 1
            assert status["throughput_per_min"]["1m"] >= 1
            assert status["sync_duration"]["full"]["count"] == 1
            assert status["error_rate_15m"] == 0
            assert status["db_pool"]["size"] >= 1 and status["redis"]["used_memory_bytes"] > 0

            metrics = (await api.get("/metrics", headers=AUTH)).text
            assert 'mailsync_mailbox_freshness_seconds_bucket{le="300"} 1.0' in metrics
            assert (
                'mailsync_syncs_total{error_kind="",kind="full",outcome="synced",tier="high"} 1.0'
                in metrics
            )
            assert 'mailsync_queue_jobs{state="completed",tier="high"}' in metrics

            r = await api.put(
                f"/mailboxes/{mbx['id']}/credentials", json={"credentials": {}}, headers=AUTH
            )
            assert r.status_code == 422 and _fields(r) == {"credentials"}
            assert (await api.delete(f"/mailboxes/{mbx['id']}", headers=AUTH)).status_code == 204
            assert (await api.get(f"/mailboxes/{mbx['id']}", headers=AUTH)).status_code == 404
            assert (await api.get("/openapi.json")).json()["info"]["title"] == "mailsync"
    assert time.time() > 0


async def test_bulk_registration_pause_resume_and_request_histogram(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    await mock_server.reset({"quotas": {"scale": 10}, "latency": {"mean_ms": 20}})
    creds = await mock_server.populate(gmail=2, graph=1, seed=32, median=5, max_size=10)
    settings = daemon_settings(
        pg_dsn, redis_url, redis_prefix, mock_server.url, policy={"quota_scale": 10}
    )
    async with running(settings):
        base = f"http://127.0.0.1:{settings.api_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30, headers=AUTH) as api:
            tenant = (await api.post("/tenants", json={"name": "bulk"})).json()
            url = f"/tenants/{tenant['id']}/mailboxes/bulk"
            mailboxes = [
                {
                    "provider": c["provider"],
                    "address": c["address"],
                    "credentials": {"refresh_token": c["refresh_token"]},
                    "sync_interval_s": 600,
                }
                for c in creds
            ]
            r = await api.post(url, json={"mailboxes": [*mailboxes, {"provider": "gmail"}]})
            assert r.status_code == 422 and "mailboxes.3.address" in {
                ".".join(str(p) for p in e["loc"][1:]) for e in r.json()["detail"]
            }
            r = await api.post(url, json={"mailboxes": mailboxes})
            assert r.status_code == 201, r.text
            created = r.json()["created"]
            assert [m["address"] for m in created] == [c["address"] for c in creds]
            again = (await api.post(url, json={"mailboxes": mailboxes[:1]})).json()
            assert again == {"created": [], "skipped": 1}
            assert (
                await api.post("/tenants/999/mailboxes/bulk", json={"mailboxes": mailboxes})
            ).status_code == 404
            ids = [m["id"] for m in created]
            assert {r["sync_interval_s"] for r in await db.fetch("SELECT * FROM mailboxes")} == {
                600
            }

            async def all_synced() -> bool:
                n = await db.fetchval(
                    "SELECT count(*) FROM mailboxes WHERE last_success_at IS NOT NULL"
                    " AND state = 'idle'"
                )
                return bool(n == 3)

            await wait_until(all_synced, 30, "the first syncs")
            paused = await api.post(f"/tenants/{tenant['id']}/pause")
            assert paused.json() == {"paused": 3}
            runs = await db.fetchval("SELECT count(*) FROM sync_runs")
            await db.execute("UPDATE mailboxes SET next_sync_at = now() - interval '1 hour'")
            await asyncio.sleep(1.5)  # several scheduler cycles: nothing is claimed
            assert await db.fetchval("SELECT count(*) FROM sync_runs") == runs
            assert (await api.get(f"/mailboxes/{ids[0]}")).json()["status"] == "paused"
            before = time.time()
            assert (await api.post(f"/tenants/{tenant['id']}/resume")).json() == {"resumed": 3}

            async def resynced() -> bool:
                n = await db.fetchval(
                    "SELECT count(*) FROM mailboxes WHERE last_success_at > to_timestamp($1)",
                    before,
                )
                return bool(n == 3)

            await wait_until(resynced, 30, "the syncs after resume")
            assert (await api.post("/tenants/999/pause")).status_code == 404

            metrics = (await api.get("/metrics")).text
            for provider, method in (
                ("gmail", "getProfile"),
                ("gmail", "messages.get"),
                ("gmail", "history.list"),
                ("graph", "messages.delta"),
            ):
                count = _sample(
                    metrics, "mailsync_provider_request_seconds_count", provider, method
                )
                total = _sample(metrics, "mailsync_provider_request_seconds_sum", provider, method)
                assert count >= 1, (provider, method)
                # The mock adds 20 ms to every request; loopback adds little.
                assert 0.019 < total / count < 0.2, (provider, method, total / count)


def _sample(text: str, name: str, provider: str, method: str) -> float:
    for line in text.splitlines():
        if line.startswith(f'{name}{{method="{method}",provider="{provider}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_onboarding_many_tenants_in_one_request(
    db: asyncpg.Pool, mock_server: MockServer, pg_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    settings = daemon_settings(
        pg_dsn,
        redis_url,
        redis_prefix,
        mock_server.url,
        workers_enabled=False,
        scheduler_enabled=False,
    )
    async with running(settings):
        base = f"http://127.0.0.1:{settings.api_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30, headers=AUTH) as api:

            def box(i: int) -> dict[str, object]:
                return {
                    "provider": "graph",
                    "address": f"u{i}@x.test",
                    "credentials": {"refresh_token": f"rt-{i}"},
                }

            body = {
                "tenants": [
                    {
                        "name": f"t{i}",
                        "sync_interval_s": 60,
                        "mailboxes": [box(2 * i), box(2 * i + 1)],
                    }
                    for i in range(3)
                ]
                + [{"name": "empty"}]
            }
            r = await api.post("/tenants/bulk", json=body)
            assert r.status_code == 201, r.text
            made = r.json()
            assert [t["name"] for t in made] == ["t0", "t1", "t2", "empty"]
            assert [len(t["mailboxes"]) for t in made] == [2, 2, 2, 0]
            rows = await db.fetch(
                "SELECT m.address, t.name, t.sync_interval_s FROM mailboxes m"
                " JOIN tenants t ON t.id = m.tenant_id ORDER BY m.id"
            )
            assert [(r["address"], r["name"]) for r in rows][:2] == [
                ("u0@x.test", "t0"),
                ("u1@x.test", "t0"),
            ]
            assert {r["sync_interval_s"] for r in rows} == {60}
            # A name that exists, a repeated name, a repeated mailbox: 409 and nothing created.
            for bad in (
                {"tenants": [{"name": "new"}, {"name": "t1"}]},
                {"tenants": [{"name": "a"}, {"name": "a"}]},
                {"tenants": [{"name": "b", "mailboxes": [box(9), box(9)]}]},
            ):
                r = await api.post("/tenants/bulk", json=bad)
                assert r.status_code == 409, r.text
            assert await db.fetchval("SELECT count(*) FROM tenants") == 4
            r = await api.post("/tenants/bulk", json={"tenants": []})
            assert r.status_code == 422

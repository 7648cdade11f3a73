"""The HTTP API on a running daemon: auth, registration, bad input named, status, metrics."""

from __future__ import annotations

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

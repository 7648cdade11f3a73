"""Sliding-window quotas, Gmail's two refusal styles and Graph's concurrency limit."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from daemon.policy import QuotaScope, get_quota_preset
from loadtest.mock_providers.app import create_app
from loadtest.mock_providers.config import LatencyConfig, MockConfig, QuotaConfig
from loadtest.mock_providers.quotas import QuotaBook, SlidingWindow, WindowLimit
from loadtest.mock_providers.testing import MockHarness as Mock

PROFILE = "/gmail/v1/users/me/profile"


def test_window_admits_up_to_the_limit_and_says_when_units_leave() -> None:
    limit = WindowLimit("q", QuotaScope.MAILBOX, limit=10, period_s=60)
    w = SlidingWindow()
    for t, cost in ((0.0, 4), (10.0, 4)):
        assert w.wait(t, limit, cost) == 0
        w.add(t, cost)
    # 8 used; 3 more would be 11: the 4 units of t=0 must leave first, at t=60.
    assert w.wait(20.0, limit, 3) == pytest.approx(40.0)
    assert w.wait(20.0, limit, 2) == 0
    # Needing both old events gone: wait for the second one (t=10 + 60).
    assert w.wait(30.0, limit, 9) == pytest.approx(40.0)
    assert w.wait(60.0, limit, 3) == 0  # the t=0 event has left exactly at t=60
    assert w.wait(0.0, limit, 11) == 60  # more than the limit can never fit


def test_limits_come_from_the_policy_presets() -> None:
    book = QuotaBook(QuotaConfig())
    documented = get_quota_preset("documented")
    gmail = {w.name: (w.limit, w.period_s) for w in book.limits()["gmail"]}
    assert gmail == {q.name: (q.limit, q.period_s) for q in documented["gmail"].quotas}
    assert book.cost("gmail", "messages.get") == documented["gmail"].cost("messages.get")
    legacy = QuotaBook(QuotaConfig(preset="documented-legacy", scale=0.5))
    user = next(w for w in legacy.limits()["gmail"] if w.name == "gmail.user")
    assert user.limit == get_quota_preset("documented-legacy")["gmail"].quotas[0].limit // 2


def test_refused_calls_are_not_charged() -> None:
    cfg = QuotaConfig.model_validate({"custom": {"gmail.user": {"limit": 2, "period_s": 1}}})
    book = QuotaBook(cfg)
    admits = [book.admit("gmail", "getProfile", "u", "app", 0.0) for _ in range(5)]
    assert [a is None for a in admits] == [True, True, False, False, False]
    assert admits[2] is not None and admits[2].retry_after_s == 1
    assert book.admit("gmail", "getProfile", "u", "app", 1.0) is None
    assert book.peaks["gmail.user"].ratio == 1.0


async def test_burst_over_a_tiny_limit_gets_429_and_succeeds_after_retry_after(mock: Mock) -> None:
    await mock.config({"quotas": {"custom": {"gmail.user": {"limit": 3, "period_s": 10}}}})
    creds = await mock.create("gmail")
    headers = await mock.login(creds)
    statuses = []
    for _ in range(5):
        r = await mock.client.get(PROFILE, headers=headers)
        statuses.append(r.status_code)
        mock.clock.advance(1)
    assert statuses == [200, 200, 200, 429, 429]
    body = r.json()["error"]
    assert body["code"] == 429 and body["status"] == "RESOURCE_EXHAUSTED"
    assert body["errors"][0] == {
        "message": body["message"], "domain": "usageLimits", "reason": "rateLimitExceeded"
    }  # fmt: skip
    # At t=4 the first call (t=0) leaves the window at t=10.
    retry_after = int(r.headers["Retry-After"])
    assert retry_after == 6
    mock.clock.advance(retry_after)
    assert (await mock.client.get(PROFILE, headers=headers)).status_code == 200
    stats = await mock.stats()
    assert stats["throttled"] == {"gmail.user": 2}
    assert stats["quota_peaks"]["gmail.user"]["peak_ratio"] == 1.0
    assert stats["quota_peaks"]["gmail.user"]["key"] == creds["address"]


async def test_quotas_are_per_mailbox_for_user_scope(mock: Mock) -> None:
    await mock.config({"quotas": {"custom": {"gmail.user": {"limit": 1, "period_s": 60}}}})
    a, b = await mock.create("gmail", seed=1), await mock.create("gmail", seed=2)
    ha, hb = await mock.login(a), await mock.login(b)
    assert (await mock.client.get(PROFILE, headers=ha)).status_code == 200
    assert (await mock.client.get(PROFILE, headers=ha)).status_code == 429
    assert (await mock.client.get(PROFILE, headers=hb)).status_code == 200


async def test_403_style_names_user_or_project_quota_without_retry_after(mock: Mock) -> None:
    await mock.config(
        {
            "quotas": {
                "gmail_style": "403",
                "custom": {
                    "gmail.user": {"limit": 1, "period_s": 60},
                    "gmail.project": {"limit": 2, "period_s": 60},
                },
            }
        }
    )
    a, b = await mock.create("gmail", seed=1), await mock.create("gmail", seed=2)
    ha, hb = await mock.login(a), await mock.login(b)
    assert (await mock.client.get(PROFILE, headers=ha)).status_code == 200
    r = await mock.client.get(PROFILE, headers=ha)
    assert r.status_code == 403 and "Retry-After" not in r.headers
    assert r.json()["error"]["errors"][0]["reason"] == "userRateLimitExceeded"
    assert r.json()["error"]["errors"][0]["domain"] == "usageLimits"
    assert (await mock.client.get(PROFILE, headers=hb)).status_code == 200
    r = await mock.client.get(PROFILE, headers=hb)
    assert r.json()["error"]["errors"][0]["reason"] in (
        "rateLimitExceeded",
        "userRateLimitExceeded",
    )
    c = await mock.create("gmail", seed=3)
    r = await mock.client.get(PROFILE, headers=await mock.login(c))
    assert r.status_code == 403
    assert r.json()["error"]["errors"][0]["reason"] == "rateLimitExceeded"


async def test_graph_throttle_shape(mock: Mock) -> None:
    await mock.config({"quotas": {"custom": {"graph.mailbox": {"limit": 1, "period_s": 600}}}})
    headers = await mock.login(await mock.create("graph"))
    assert (await mock.client.get("/v1.0/me/mailFolders", headers=headers)).status_code == 200
    r = await mock.client.get("/v1.0/me/mailFolders", headers=headers)
    assert r.status_code == 429 and r.headers["Retry-After"] == "600"
    assert r.json() == {
        "error": {"code": "TooManyRequests", "message": "Please retry again later."}
    }


async def test_disabled_quotas_admit_everything(mock: Mock) -> None:
    await mock.config(
        {"quotas": {"enabled": False, "custom": {"gmail.user": {"limit": 1, "period_s": 60}}}}
    )
    headers = await mock.login(await mock.create("gmail"))
    for _ in range(3):
        assert (await mock.client.get(PROFILE, headers=headers)).status_code == 200


async def test_graph_allows_four_requests_in_flight_per_mailbox() -> None:
    # Real sleeps here: the requests must overlap in time.
    app = create_app(MockConfig(latency=LatencyConfig(dist="constant", mean_ms=50)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock.test") as client:
        svc = app.state.mock
        mbx = svc.create_mailbox("graph", "c@test.example", 5, 1)
        other = svc.create_mailbox("graph", "d@test.example", 5, 2)
        tok = svc.registry.issue_access_token(mbx, svc.clock(), 3600)
        tok2 = svc.registry.issue_access_token(other, svc.clock(), 3600)
        h = {"Authorization": f"Bearer {tok}"}
        h2 = {"Authorization": f"Bearer {tok2}"}
        calls = [client.get("/v1.0/me/mailFolders", headers=h) for _ in range(6)]
        calls.append(client.get("/v1.0/me/mailFolders", headers=h2))
        results = await asyncio.gather(*calls)
    statuses = sorted(r.status_code for r in results[:6])
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert results[6].status_code == 200
    refused = next(r for r in results if r.status_code == 429)
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["message"] == "Application is over its MailboxConcurrency limit."
    report = svc.stats.report(svc.quotas.peaks)
    assert report["peak_in_flight_per_mailbox"] == 4
    assert report["throttled"] == {"graph.concurrency": 2}

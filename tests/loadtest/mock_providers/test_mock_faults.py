"""Latency distributions and injected faults, all from the seed."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from loadtest.mock_providers.config import FaultConfig, LatencyConfig
from loadtest.mock_providers.faults import draw, sample_latency_s
from loadtest.mock_providers.testing import MockHarness as Mock

PROFILE = "/gmail/v1/users/me/profile"


@pytest.mark.parametrize(
    ("cfg", "mean_s"),
    [
        (LatencyConfig(dist="constant", mean_ms=40), 0.040),
        (LatencyConfig(dist="exponential", mean_ms=40), 0.040),
        (LatencyConfig(dist="lognormal", mean_ms=180, sigma=0.6), 0.180),
        (LatencyConfig(dist="empirical", samples_ms=[10, 20, 30, 40]), 0.025),
    ],
)
def test_latency_distributions_have_their_mean_and_repeat_with_the_seed(
    cfg: LatencyConfig, mean_s: float
) -> None:
    a = [sample_latency_s(cfg, random.Random(5)) for _ in range(1)]
    rng = random.Random(5)
    samples = [sample_latency_s(cfg, rng) for _ in range(20_000)]
    assert samples[0] == a[0]
    assert statistics.fmean(samples) == pytest.approx(mean_s, rel=0.05)
    rng2 = random.Random(5)
    assert [sample_latency_s(cfg, rng2) for _ in range(100)] == samples[:100]


def test_lognormal_mean_ms_is_the_mean_not_the_median() -> None:
    cfg = LatencyConfig(dist="lognormal", mean_ms=100, sigma=1.0)
    rng = random.Random(1)
    samples = sorted(sample_latency_s(cfg, rng) for _ in range(40_000))
    assert statistics.fmean(samples) == pytest.approx(0.100, rel=0.06)
    # median = mean * exp(-sigma^2 / 2) ~ 60.7 ms
    assert samples[len(samples) // 2] == pytest.approx(0.0607, rel=0.05)


def test_fault_draws_follow_their_rates() -> None:
    faults = FaultConfig(error_rate=0.2, garbage_rate=0.1, slow_rate=0.05, slow_ms=1000)
    rng = random.Random(3)
    draws = [draw(LatencyConfig(), faults, rng) for _ in range(10_000)]
    errors = [d.error_status for d in draws if d.error_status]
    assert len(errors) / 10_000 == pytest.approx(0.2, abs=0.015)
    assert set(errors) == {500, 503}
    garbage = sum(d.garbage is not None for d in draws)
    # Garbage is drawn only for calls that got no error.
    assert garbage / 10_000 == pytest.approx(0.8 * 0.1, abs=0.01)
    slow = [d for d in draws if d.slow]
    assert len(slow) / 10_000 == pytest.approx(0.05, abs=0.01)
    assert all(d.delay_s == 1.0 for d in slow)


async def test_latency_is_applied_to_each_call(mock: Mock) -> None:
    await mock.config({"latency": {"dist": "exponential", "mean_ms": 30}})
    headers = await mock.login(await mock.create("gmail"))
    await mock.config({"seed": 7})  # restart the random sequence
    mock.sleep.delays.clear()
    for _ in range(50):
        assert (await mock.client.get(PROFILE, headers=headers)).status_code == 200
    assert len(mock.sleep.delays) == 50
    assert len(set(mock.sleep.delays)) == 50
    assert 0.010 < statistics.fmean(mock.sleep.delays) < 0.060
    # Same seed, same calls: the same delays.
    first = list(mock.sleep.delays)
    await mock.config({"seed": 7})
    mock.sleep.delays.clear()
    for _ in range(50):
        await mock.client.get(PROFILE, headers=headers)
    assert mock.sleep.delays == first


async def test_injected_5xx_and_garbage_rates_with_a_fixed_seed(mock: Mock) -> None:
    await mock.config({"faults": {"error_rate": 0.25, "garbage_rate": 0.2}})
    creds = await mock.create("graph")
    headers = await mock.login(creds)
    outcomes = {"ok": 0, "5xx": 0, "garbage": 0}
    for _ in range(400):
        r = await mock.client.get("/v1.0/me/mailFolders", headers=headers)
        if r.status_code >= 500:
            outcomes["5xx"] += 1
            assert r.json()["error"]["code"] in ("InternalServerError", "ServiceNotAvailable")
            continue
        assert r.status_code == 200
        try:
            body = r.json()
        except json.JSONDecodeError:
            outcomes["garbage"] += 1
            continue
        if "value" not in body:
            outcomes["garbage"] += 1
        else:
            outcomes["ok"] += 1
    assert 70 <= outcomes["5xx"] <= 130
    assert 40 <= outcomes["garbage"] <= 80
    stats = await mock.stats()
    assert stats["injected_5xx_total"] == outcomes["5xx"]
    assert stats["injected_garbage_total"] == outcomes["garbage"]


async def test_gmail_5xx_has_googles_error_body(mock: Mock) -> None:
    await mock.config({"faults": {"error_rate": 1.0}})
    headers = await mock.login(await mock.create("gmail"))
    r = await mock.client.get(PROFILE, headers=headers)
    assert r.status_code in (500, 503)
    err = r.json()["error"]
    assert err["code"] == r.status_code and err["errors"][0]["reason"] in (
        "backendError",
        "serviceUnavailable",
    )


async def test_token_endpoints_are_spared_unless_configured(mock: Mock) -> None:
    await mock.config({"faults": {"error_rate": 1.0}})
    creds = await mock.create("gmail")
    await mock.token(creds)  # would raise on a 5xx
    await mock.config({"faults": {"include_oauth": True}})
    form = {k: creds[k] for k in ("client_id", "client_secret", "refresh_token")}
    r = await mock.client.post("/token", data={**form, "grant_type": "refresh_token"})
    assert r.status_code in (500, 503)

"""The fast path models push syncs and the service-time distribution of batch waits (issue 9,
items 2 and 3)."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from simulator import closed_forms as cf
from simulator.distributions import Exponential
from simulator.loader import load_scenario
from simulator.runner import run_many
from simulator.validation import fast_for
from tests.simulator.builders import deterministic


def _drain_mc(b: int, c: int, draw: np.ndarray) -> float:
    """Mean wait of a batch of ``b`` released at once on ``c`` workers, brute force."""
    total = 0.0
    for s in draw:
        free = list(s[:c])
        heapq.heapify(free)
        w = 0.0
        for j in range(c, b):
            t = heapq.heappop(free)
            w += t
            heapq.heappush(free, t + s[j])
        total += w / b
    return total / len(draw)


@pytest.mark.parametrize(("b", "c"), [(40, 17), (60, 10), (33, 17)])
@pytest.mark.parametrize("kind", ["constant", "exponential", "lognormal"])
def test_batch_release_wait_follows_the_service_time_distribution(
    kind: str, b: int, c: int
) -> None:
    rng = np.random.default_rng(1)
    n = 1500
    if kind == "constant":
        draw, cs2 = np.ones((n, b)), 0.0
    elif kind == "exponential":
        draw, cs2 = rng.exponential(1.0, (n, b)), 1.0
    else:
        draw, cs2 = rng.lognormal(-0.5, 1.0, (n, b)), float(np.e - 1)
    want = _drain_mc(b, c, draw)
    got = float(cf.batch_release_wait(b / 10, c, 1.0, cs2, 10.0, 1))
    assert got == pytest.approx(want, rel=0.12)


def test_variable_sync_times_shorten_the_fast_paths_wait_as_in_the_event_model() -> None:
    # One process, 1,000 mailboxes every 300 s: batches of about 33 on 17 workers. The same
    # 2 s mean job, constant or exponential: a fixed service time in the drain formula gave
    # both the constant job's wait, 60 % too long for the exponential one.
    base = dict(
        population__tenants=1000,
        daemon__profile="plan-b",
        run__horizon_s=2400.0,
        run__warmup_s=600.0,
        run__replications=3,
    )
    const = deterministic(2.0, name="constant-2s", **base)
    expo = const.updated(
        {
            "name": "exponential-2s",
            "providers.gmail.sync_overhead_s": Exponential(mean=2.0),
            "providers.graph.sync_overhead_s": Exponential(mean=2.0),
        }
    )
    results = run_many([const, expo], progress=False)
    # Constant jobs within 10 %; exponential ones within 20 % (the fast path is 15 % short
    # there: it leaves out the long jobs a batch still runs when the next one arrives).
    for r, rel in zip(results, (0.10, 0.20), strict=True):
        e = r.metrics["wait_mean_high"]
        f = fast_for(r.scenario)["wait_mean"]
        assert f == pytest.approx(e.mean, rel=rel), r.scenario.name
    assert results[1].get("wait_mean_high") < 0.7 * results[0].get("wait_mean_high")


def test_push_syncs_enter_the_fast_path() -> None:
    # Every arrival notifies: busy mailboxes (30 mails an hour) sync at each push, far more
    # often than every 300 s. The fast path used to see only the schedule.
    s = load_scenario("plan-b-1000").updated(
        {
            "name": "push",
            "population.tenants": 500,
            "daemon.push_share": 1.0,
            "run.horizon_s": 2400.0,
            "run.warmup_s": 600.0,
            "run.replications": 2,
            "run.drain": False,
        }
    )
    r = run_many([s], progress=False)[0]
    f = fast_for(s)
    assert f["throughput_per_min"] == pytest.approx(r.get("throughput_per_min"), rel=0.05)
    assert f["push_per_min"] == pytest.approx(r.get("push_per_min"), rel=0.10)
    assert f["staleness_p50"] == pytest.approx(r.get("staleness_p50_all"), rel=0.05)
    assert f["staleness_p95"] == pytest.approx(r.get("staleness_p95_all"), rel=0.05)
    # Without push the same population syncs only on schedule.
    quiet = fast_for(s.updated({"daemon.push_share": 0.0}))
    assert quiet["push_per_min"] == 0
    assert f["throughput_per_min"] > 1.2 * quiet["throughput_per_min"]

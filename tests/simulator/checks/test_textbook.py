"""The simulation core run as a textbook queue, held against Erlang C and Cobham's formula."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.checks.textbook import run_queue
from simulator.fast.closed_forms import erlang_c, mmc_priority_waits, mmc_wait
from simulator.inputs.distributions import Constant, Exponential


@pytest.mark.parametrize(
    ("c", "rho", "customers", "reps"),
    [(1, 0.5, 100_000, 4), (2, 0.7, 100_000, 4), (5, 0.7, 100_000, 5), (10, 0.8, 200_000, 5)],
)
def test_mmc_matches_erlang_c_within_3_percent(
    c: int, rho: float, customers: int, reps: int
) -> None:
    runs = [
        run_queue(Exponential(mean=1 / (rho * c)), Exponential(mean=1.0), c, customers, seed)
        for seed in range(reps)
    ]
    wq = np.mean([r.waits[0] for r in runs])
    pw = np.mean([r.p_wait for r in runs])
    assert wq == pytest.approx(float(mmc_wait(c, rho * c, 1.0)), rel=0.03)
    assert pw == pytest.approx(float(erlang_c(c, rho * c)), rel=0.03)
    for r in runs:
        # Little's law on every run: time-average queue = arrival rate x mean wait.
        assert r.mean_queue == pytest.approx(r.little_lq, rel=0.01)
        assert r.utilisation == pytest.approx(rho, rel=0.02)


def test_three_priority_classes_match_cobham() -> None:
    c, rho, shares = 4, 0.75, (0.2, 0.5, 0.3)
    lam = rho * c
    runs = [
        run_queue(
            Exponential(mean=1 / lam), Exponential(mean=1.0), c, 150_000, seed, class_shares=shares
        )
        for seed in range(4)
    ]
    measured = np.mean([r.waits for r in runs], axis=0)
    expected = mmc_priority_waits(c, [lam * s for s in shares], 1.0)
    for m, e in zip(measured, expected, strict=True):
        assert m == pytest.approx(e, rel=0.05)


def test_batch_arrivals_drain_as_the_closed_form_says() -> None:
    # 20 jobs every 10 s on 5 servers of 2 s: jobs wait 0, 2, 4, 6 s in groups of 5.
    r = run_queue(
        Constant(value=10.0), Constant(value=2.0), 5, 20_000, 1, batch=20, warmup_share=0.0
    )
    assert r.waits[0] == pytest.approx(3.0)
    assert r.mean_queue == pytest.approx(r.little_lq, rel=0.01)

"""Closed forms against known values and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.fast import closed_forms as cf


def test_erlang_c_reproduces_the_pdq_bank_example() -> None:
    # PDQ's README: 4 tellers, 0.35 customers/min, 10 min each -> Wq = 14.7572 min.
    assert float(cf.mmc_wait(4, 0.35, 0.1)) == pytest.approx(14.7572, abs=1e-4)


def test_erlang_c_of_one_server_is_the_load() -> None:
    assert float(cf.erlang_c(1, 0.7)) == pytest.approx(0.7)
    assert float(cf.mmc_wait(1, 0.7, 1.0)) == pytest.approx(0.7 / 0.3)


def test_erlang_c_is_one_when_overloaded_and_vectorised() -> None:
    out = cf.erlang_c(np.array([2, 2, 10]), np.array([2.5, 1.0, 8.0]))
    assert out[0] == 1.0
    assert out[1] == pytest.approx(1 / 3)  # M/M/2 at a = 1: C = a^2 / (2 + 2a - ...)
    assert 0 < out[2] < 1


def test_priority_classes_average_to_the_fifo_wait() -> None:
    lams = [0.4, 1.0, 0.6]
    waits = cf.mmc_priority_waits(4, lams, 0.75)
    fifo = float(cf.mmc_wait(4, sum(lams), 0.75))
    # Work conservation: the arrival-weighted mean wait equals the FIFO wait.
    assert sum(w * lam for w, lam in zip(waits, lams, strict=True)) / sum(lams) == pytest.approx(
        fifo
    )
    assert waits[0] < waits[1] < waits[2]


@pytest.mark.parametrize(("b", "c"), [(1, 1), (7, 3), (20, 5), (50, 17), (200, 17), (3, 10)])
def test_batch_drain_matches_brute_force(b: int, c: int) -> None:
    s = 2.5
    waits = [(j // c) * s for j in range(b)]
    assert float(cf.batch_drain_mean(b, c, s)) == pytest.approx(sum(waits) / b)
    assert float(cf.batch_drain_max(b, c, s)) == pytest.approx(max(waits))


def test_harmonic_numbers() -> None:
    assert float(cf.harmonic(1)) == pytest.approx(1.0)
    assert float(cf.harmonic(4)) == pytest.approx(1 + 1 / 2 + 1 / 3 + 1 / 4)
    assert math.isnan(cf.t_quantile(1))
    assert cf.t_quantile(5) == pytest.approx(2.776, abs=1e-3)

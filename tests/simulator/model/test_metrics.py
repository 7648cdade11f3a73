"""The recorder's staleness bins: ``bin_index`` is ``searchsorted`` over the edges, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.model import EDGES, bin_index


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(0).uniform(-100.0, 1e4, 50_000),
        np.random.default_rng(1).exponential(300.0, 50_000),
        np.abs(np.random.default_rng(2).standard_cauchy(50_000)) * 1e3,
        EDGES,
        np.nextafter(EDGES, np.inf),
        np.nextafter(EDGES, -np.inf),
        np.array([-np.inf, -1.0, -0.0, 0.0, 1e-300, 0.5, 1.0, 1e7, 1e8, 1e300, np.inf, np.nan]),
    ],
)
def test_bin_index_is_searchsorted_right(values: np.ndarray) -> None:
    assert np.array_equal(bin_index(values), np.searchsorted(EDGES, values, side="right"))

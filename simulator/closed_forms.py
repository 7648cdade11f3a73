"""Closed forms the simulation is held against, vectorised over numpy arrays.

Erlang C (M/M/c), Cobham's non-preemptive priority formula, Allen-Cunneen for M/G/c, and
the batch drain of a scheduler that releases ``b`` jobs at once onto ``c`` workers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

Array = NDArray[np.float64]


def erlang_c(c: ArrayLike, a: ArrayLike) -> Array:
    """P(wait > 0) in M/M/c with offered load ``a = λ/μ``; 1 where a >= c."""
    c_arr = np.asarray(c, dtype=float)
    a_arr = np.asarray(a, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # Erlang B from the Poisson pmf over the upper tail: B = pmf(c; a) / P(N <= c).
        log_pmf = c_arr * np.log(np.maximum(a_arr, 1e-300)) - a_arr - special.gammaln(c_arr + 1)
        cdf = special.gammaincc(c_arr + 1, a_arr)
        b = np.exp(log_pmf) / cdf
        rho = a_arr / c_arr
        out = b / (1 - rho * (1 - b))
    return np.where(a_arr >= c_arr, 1.0, np.where(a_arr <= 0, 0.0, out))


def mmc_wait(c: ArrayLike, lam: ArrayLike, mu: ArrayLike) -> Array:
    """Mean queue wait Wq of M/M/c; inf when unstable."""
    c_arr, lam_arr, mu_arr = (np.asarray(x, dtype=float) for x in (c, lam, mu))
    with np.errstate(divide="ignore", invalid="ignore"):
        w = erlang_c(c_arr, lam_arr / mu_arr) / (c_arr * mu_arr - lam_arr)
    return np.where(lam_arr >= c_arr * mu_arr, np.inf, w)


def mmc_priority_waits(c: int, lams: list[float], mu: float) -> list[float]:
    """Mean waits of non-preemptive priority classes (first = highest), equal service rates.

    Cobham (1954): Wq_k = C(c, a) / (c μ (1 - σ_{k-1})(1 - σ_k)), σ_k = Σ_{i<=k} λ_i / (c μ).
    """
    total = sum(lams)
    cw = float(erlang_c(c, total / mu))
    out, sigma_prev = [], 0.0
    for lam in lams:
        sigma = sigma_prev + lam / (c * mu)
        out.append(cw / (c * mu * (1 - sigma_prev) * (1 - sigma)))
        sigma_prev = sigma
    return out


def allen_cunneen_wait(c: ArrayLike, lam: ArrayLike, s_mean: ArrayLike, s_m2: ArrayLike) -> Array:
    """Mean queue wait of M/G/c by Allen-Cunneen (exact for M/M/c)."""
    s = np.asarray(s_mean, dtype=float)
    m2 = np.asarray(s_m2, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        cs2 = np.where(s > 0, m2 / np.maximum(s, 1e-300) ** 2 - 1, 0.0)
        w = mmc_wait(c, lam, 1 / np.maximum(s, 1e-300))
    return np.asarray(w * (1 + cs2) / 2, dtype=float)


def batch_drain_mean(b: ArrayLike, c: ArrayLike, s: ArrayLike) -> Array:
    """Mean wait of ``b`` jobs released at once onto ``c`` idle workers, service ``s`` each.

    Job j starts after floor(j / c) services: mean = s (c q (q-1) / 2 + r q) / b with
    q = b // c, r = b % c; about s (b - c) / (2c) for large batches.
    """
    b_arr = np.maximum(np.asarray(b, dtype=float), 0.0)
    c_arr = np.maximum(np.asarray(c, dtype=float), 1.0)
    s_arr = np.asarray(s, dtype=float)
    # Fractional batches (a mean batch size) interpolate the same formula.
    q = np.floor(b_arr / c_arr)
    r = b_arr - q * c_arr
    with np.errstate(divide="ignore", invalid="ignore"):
        w = s_arr * (c_arr * q * (q - 1) / 2 + r * q) / b_arr
    return np.where(b_arr > 0, w, 0.0)


def batch_drain_max(b: ArrayLike, c: ArrayLike, s: ArrayLike) -> Array:
    """Longest wait in that batch: (ceil(b / c) - 1) services."""
    b_arr = np.asarray(b, dtype=float)
    c_arr = np.maximum(np.asarray(c, dtype=float), 1.0)
    return np.asarray(np.maximum(np.ceil(b_arr / c_arr) - 1, 0) * np.asarray(s), dtype=float)


def t_quantile(n: int, level: float = 0.95) -> float:
    """Two-sided Student t quantile for a CI from ``n`` replications."""
    from scipy import stats

    if n < 2:
        return float("nan")
    q: Any = stats.t.ppf(0.5 + level / 2, n - 1)
    return float(q)


def harmonic(k: ArrayLike) -> Array:
    """H_k, the expected largest of k uniform spacings times k (gap between scheduler phases)."""
    k_arr = np.asarray(k, dtype=float)
    return np.asarray(special.digamma(k_arr + 1) + np.euler_gamma, dtype=float)

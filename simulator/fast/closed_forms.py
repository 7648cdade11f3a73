"""Closed forms the simulation is held against, vectorised over numpy arrays.

Erlang C (M/M/c), Cobham's non-preemptive priority formula, Allen-Cunneen for M/G/c, and
the batch drain of a scheduler that releases ``b`` jobs at once onto ``c`` workers.
"""

from __future__ import annotations

from functools import lru_cache
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


def batch_release_wait(
    lam: ArrayLike, c: ArrayLike, s: ArrayLike, cs2: ArrayLike, period: float, k: ArrayLike
) -> Array:
    """Mean queue wait of jobs released in batches by ``k`` randomly phased schedulers.

    Each scheduler runs every ``period``; a cycle releases what fell due since the cycle
    before it (any scheduler's), so a batch is ``lam`` x the spacing ahead of it, a spacing
    of k uniform phases: ``period`` x Beta(1, k - 1). On ``c`` workers whose service times
    have mean ``s`` and squared coefficient of variation ``cs2``, c renewal streams complete
    about c (t / s + (cs2 - 1) / 2) jobs by t, so a batch of b leaves
    Q0 = b - a, a = c (1 + cs2) / 2, queued (the fluid approximation) and they wait
    s Q0² / (2c) in all. cs2 is capped at 1: past exponential variability the renewal
    asymptote needs more services than a batch's drain lasts (against brute-force drains
    of lognormal services with cs2 = 1.7 the uncapped offset halved the wait; capped, within
    15 %). Averaged over spacings (E[(lam T B - a)+²] = 2 A² U^(k-1) / (k (k+1))
    with A = lam T - a, U = A / (lam T)) and divided by the jobs of a batch (lam T / k):
    s A² U^(k-1) / (c (k + 1) lam T). Exact in the mean for constant service and one
    scheduler up to O(s / b); exponential service: s (b - c)² / (2 c b).
    """
    lam_arr = np.maximum(np.asarray(lam, dtype=float), 0.0)
    c_arr = np.maximum(np.asarray(c, dtype=float), 1.0)
    s_arr = np.asarray(s, dtype=float)
    k_arr = np.maximum(np.asarray(k, dtype=float), 1.0)
    big = lam_arr * period
    a = c_arr * (1 + np.clip(np.asarray(cs2, dtype=float), 0.0, 1.0)) / 2
    amt = np.maximum(big - a, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(big > 0, amt / big, 0.0)
        w = s_arr * amt**2 * u ** (k_arr - 1) / (c_arr * (k_arr + 1) * big)
    return np.asarray(np.where(amt > 0, w, 0.0), dtype=float)


def equal_batch_wait(
    lam: ArrayLike, c: ArrayLike, s: ArrayLike, cs2: ArrayLike, period: float, k: ArrayLike
) -> Array:
    """``batch_release_wait`` when the batches even out instead of following the phases.

    With a sync interval that is a whole number of scheduler periods, a mailbox falls due
    just before the cycle that claimed it last time unless its sync started late: the jobs
    that queue in a large batch fall to the next scheduler's cycle, until every batch is
    about lam T / k. The count stays random (Poisson: the mailboxes due in a cycle), so
    b ~ Normal(m, m) and E[(b - a)+²] = (μ² + σ²) Φ(μ/σ) + μ σ φ(μ/σ), μ = m - a, σ² = m.
    """
    lam_arr = np.maximum(np.asarray(lam, dtype=float), 0.0)
    c_arr = np.maximum(np.asarray(c, dtype=float), 1.0)
    s_arr = np.asarray(s, dtype=float)
    k_arr = np.maximum(np.asarray(k, dtype=float), 1.0)
    m = lam_arr * period / k_arr
    a = c_arr * (1 + np.clip(np.asarray(cs2, dtype=float), 0.0, 1.0)) / 2
    mu = m - a
    sd = np.sqrt(np.maximum(m, 1e-300))
    z = mu / sd
    pos2 = (mu**2 + sd**2) * special.ndtr(z) + mu * sd * np.exp(-(z**2) / 2) / np.sqrt(2 * np.pi)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = s_arr * np.maximum(pos2, 0.0) / (2 * c_arr * m)
    return np.asarray(np.where(m > 0, w, 0.0), dtype=float)


def spacing_moments(period: float, k: ArrayLike) -> tuple[Array, Array]:
    """E[spacing] and E[spacing²] / E[spacing] of k uniform phases on a cycle of ``period``
    (the mean batch, and the batch a job sits in: larger batches hold more jobs)."""
    k_arr = np.maximum(np.asarray(k, dtype=float), 1.0)
    return period / k_arr, 2 * period / (k_arr + 1)


@lru_cache(maxsize=256)
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

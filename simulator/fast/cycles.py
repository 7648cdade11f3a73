"""A mailbox's sync cycle in the fast path: claim waits, push-shortened cycles, staleness.

A mailbox falls due one interval after its sync started; a scheduler claims it at its next
cycle (``claim_wait``) unless a push enqueues it first (``push_cycle``); the age of its last
sync is then spread over that cycle (``age_quantile``).
"""

from __future__ import annotations

import numpy as np

Arr = np.ndarray


def push_cycle(rates: Arr, d_claim: Arr) -> tuple[Arr, Arr, Arr]:
    """A mailbox's sync cycle when pushes (Poisson, rate r) can cut it short.

    From a sync's start the next one is claimed at ``d_claim`` (interval + claim wait)
    unless a push comes first (X ~ Exp(r)): then it is enqueued at once. Either way it
    starts a dispatch and a queue wait later. With M = min(X, d_claim): returns
    E[M], E[M²] and P(push first) = 1 - exp(-r d_claim), broadcast over ``rates``' last axis.
    """
    r = np.asarray(rates, dtype=float)
    d = np.asarray(d_claim, dtype=float)[..., None]
    rd = r * d
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        e = np.exp(-rd)
        p_push = -np.expm1(-rd)
        m1 = np.where(r > 0, p_push / np.where(r > 0, r, 1.0), d)
        m2 = np.where(r > 0, 2 / np.where(r > 0, r, 1.0) ** 2 * (p_push - rd * e), d**2)
    return m1, m2, p_push


def age_quantile(q: float, rates: Arr, weights: Arr, span: Arr) -> Arr:
    """The ``q`` quantile of staleness over mailboxes whose syncs come every ``span`` seconds
    or at a push (rate r), whichever first: P(age > a) = (e^(-r a) - e^(-r L)) / (1 - e^(-r L))
    on [0, L] per group (uniform when r = 0), mixed with ``weights``. Bisection."""
    r = np.asarray(rates, dtype=float)
    w = np.asarray(weights, dtype=float)
    big = np.asarray(span, dtype=float)
    lo = np.zeros_like(big)
    hi = big.copy()

    def survival(a: Arr) -> Arr:
        rl = r * big[..., None]
        ra = r * a[..., None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            pushed = (np.exp(-ra) - np.exp(-rl)) / -np.expm1(-rl)
            flat = 1 - a[..., None] / big[..., None]
            sj = np.where(r > 0, pushed, flat)
        return np.asarray(np.sum(w * np.clip(sj, 0.0, 1.0), axis=-1), dtype=float)

    for _ in range(40):
        mid = (lo + hi) / 2
        above = survival(mid) > 1 - q
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    out: Arr = (lo + hi) / 2
    return out


def claim_wait(
    period: float, k: Arr, interval: Arr, dispatch: Arr, wait: Arr | float, overshoot: float = 0.0
) -> Arr:
    """Mean time from a mailbox falling due to a scheduler claiming it.

    A mailbox is due one interval after its sync started, a dispatch delay (plus any queue
    wait) ``c`` after the cycle that claimed it. When the interval is a whole number ``n``
    of scheduler periods, the cycle ``n`` periods later is late by the sum ``X`` of ``n``
    cycles' overshoots (each the event loop's lateness, exponential with mean
    ``overshoot``): if ``X >= c`` the mailbox is due before that cycle and waits ``X - c``;
    otherwise it just missed it and waits almost a whole cycle. So the mean wait is
    ``E[X] - c + P(X < c) × cycle``, a K-th of the cycle with K schedulers taken in phase
    order. Otherwise due instants fall anywhere in the cycle and the wait to the next of K
    randomly phased cycles is ``period / (K + 1)`` on average.
    """
    from scipy.special import gammainc

    k_arr = np.asarray(k, dtype=float)
    i = np.asarray(interval, dtype=float)
    frac = np.mod(i, period) / period
    locked = (frac < 1e-6) | (frac > 1 - 1e-6)
    cycle = (period + overshoot) / k_arr
    n = np.maximum(np.rint(i / period), 1.0)
    c = np.asarray(dispatch, dtype=float) + np.asarray(wait, dtype=float)
    if overshoot > 0:
        missed = gammainc(n, np.maximum(c, 0.0) / overshoot)
    else:
        missed = np.where(c > 0, 1.0, 0.0)
    after = n * overshoot - c + missed * cycle
    out: Arr = np.where(locked, np.clip(after, 0.0, cycle), period / (k_arr + 1))
    return out

"""RAM's jobs in flight in the fast path: the peak a run of the event model samples.

The event model sizes RSS on the largest number of jobs in flight among its samples. They
come every ``sample_interval_s`` (30 s), a multiple of the scheduler's period (10 s), so
all of a run's samples fall at one phase of each scheduler's cycle, drawn per run: right
after a release every worker may be busy, late in the cycle hardly any. The mean in flight
(throughput x job time) is far below that peak when batches drain fast.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from simulator.inputs.scenario import Scenario

Arr = np.ndarray

# Instants of the scheduler's cycle at which jobs in flight are read.
PHASES = 16


def in_service(durations: Arr, period: float) -> Arr:
    """Per job released each cycle, the jobs still in service at ``PHASES`` instants u of
    the cycle after their release, this cycle's and earlier ones': E[ceil((S - u) / T)+]
    over the sampled job times S."""
    phase = (np.arange(PHASES) + 0.5) * period / PHASES
    d = np.asarray(durations, dtype=float)
    out: Arr = np.maximum(np.ceil((d[:, None] - phase[None, :]) / period), 0.0).mean(axis=0)
    return out


def peak(
    s: Scenario,
    running: tuple[float, ...],
    lam_batch: Arr,
    busy_other: Arr,
    s_inc: Arr,
    cs2: Arr,
    c_tier: Arr,
    k: Arr,
    mean: Arr,
) -> Arr:
    """Jobs in flight per process at the peak a run samples (what RSS is sized on).

    The event model samples every ``sample_interval_s``, a multiple of the scheduler's
    period, so all of a run's samples fall at one phase u of each scheduler's cycle (drawn
    per run). In flight at u grows with the batch b released at the cycle's start, so the
    largest of a run's M samples comes with about the M/(M+1) quantile of b (Poisson with
    mean m = λT/K; normal with its skew, Cornish-Fisher). Of a batch of b on c workers,
    b - D(u) are not done at u, D(u) = c (u/s + (cs² - 1)/2) (the renewal count of
    ``closed_forms.batch_release_wait``), and at most c of them run; once it has drained,
    those still running are about b K(u) (``running``, from ``in_service``: each job's
    chance to run past u, earlier cycles' long jobs included). Plus the long and random
    jobs (full syncs' chunks, pushes: ``busy_other``, their mean), and the other processes
    at their mean (their phases are their own). Averaged over phases. The phase is not
    quite fixed: each cycle starts late by the event loop's overshoot, so over the window
    the samples move back by δ = overshoot x cycles (half a second with 1 ms in 90
    minutes) and the peak comes at the start of that range, u - δ.
    """
    if not running:
        return mean
    period = s.profile().scheduler_interval_s
    samples = max((s.run.horizon_s - s.run.warmup_s) / s.run.sample_interval_s, 1.0)
    z = float(special.ndtri(samples / (samples + 1)))
    kk = np.asarray(k, dtype=float)
    ct = np.asarray(c_tier, dtype=float)[..., None]
    m = np.asarray(lam_batch, dtype=float)[..., None] * period / kk[..., None]
    b = np.where(m > 0, m + z * np.sqrt(m) + (z * z - 1) / 6, 0.0)
    drift = s.resources.scheduler_overshoot_ms / 1000 * (s.run.horizon_s - s.run.warmup_s) / period
    u = np.maximum((np.arange(PHASES) + 0.5) * period / PHASES - drift, 0.0)
    si = np.maximum(np.asarray(s_inc, dtype=float)[..., None], 1e-9)
    offset = (np.clip(np.asarray(cs2, dtype=float), 0.0, 1.0)[..., None] - 1) / 2
    left = b - ct * np.maximum(u / si + offset, 0.0)
    own = np.minimum(np.maximum(left, b * np.asarray(running)), ct).mean(axis=-1)
    mean_arr = np.asarray(mean, dtype=float)
    total = own + np.asarray(busy_other, dtype=float) / kk + (kk - 1) * mean_arr
    out: Arr = np.maximum(total / kk, mean_arr)
    return out

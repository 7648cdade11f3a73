"""The simulation core run as a textbook queue: open arrivals onto one ``Station``.

Used to hold the core against closed forms (Erlang C, priority classes, batch drain) with
the same calendar (SimPy) and station code as the daemon model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from simulator.inputs.distributions import Distribution
from simulator.model.sampler import Sampler
from simulator.model.station import Station


@dataclass(frozen=True)
class QueueStats:
    """Measured figures of one textbook run (after warm-up)."""

    waits: list[float]  # mean queue wait per class
    p_wait: float  # share of customers that waited
    customers: int
    lam: float  # measured arrival rate
    mean_queue: float  # time-average number waiting
    utilisation: float
    little_lq: float  # λ · Wq, to compare with mean_queue


def run_queue(
    arrival: Distribution,
    service: Distribution,
    servers: int,
    customers: int,
    seed: int,
    class_shares: tuple[float, ...] = (1.0,),
    warmup_share: float = 0.05,
    batch: int = 1,
) -> QueueStats:
    """Simulate ``customers`` arrivals (``batch`` at a time) and measure waits per class."""
    rng = np.random.default_rng(seed)
    env = simpy.Environment()
    inter = Sampler(arrival, rng)
    svc = Sampler(service, rng)
    classes = len(class_shares)
    cum = np.cumsum(class_shares) / sum(class_shares)
    class_of = np.searchsorted(cum, rng.random(customers + batch), side="right").tolist()
    warm = int(customers * warmup_share)
    sums = [0.0] * classes
    counts = [0] * classes
    waited = [0]
    arrived = [0]
    t_warm = [0.0]

    def finish(ev: Any) -> None:
        st.depart(env.now)

    def on_start(item: int, now: float, wait: float, cls: int) -> None:
        if item >= warm:
            sums[cls] += wait
            counts[cls] += 1
            if wait > 0:
                waited[0] += 1
        ev = env.timeout(svc())
        ev.callbacks.append(finish)

    st = Station(servers, on_start, classes)

    def arrive(ev: Any) -> None:
        for _ in range(batch):
            i = arrived[0]
            if i >= customers:
                return
            if i == warm:
                t_warm[0] = env.now
                st.reset_stats(env.now)
            arrived[0] = i + 1
            st.arrive(i, env.now, min(class_of[i], classes - 1))
        nxt = env.timeout(inter())
        nxt.callbacks.append(arrive)

    first = env.timeout(0)
    first.callbacks.append(arrive)
    env.run()
    # The run ends when the last customer leaves; the window is [warm-up, last arrival].
    st.close(env.now)
    n = sum(counts)
    span = env.now - t_warm[0]
    lam = st.arrivals / span if span > 0 else 0.0
    wq = sum(sums) / n if n else 0.0
    return QueueStats(
        waits=[s / c if c else 0.0 for s, c in zip(sums, counts, strict=True)],
        p_wait=waited[0] / n if n else 0.0,
        customers=n,
        lam=lam,
        mean_queue=st.area_queue / span if span > 0 else 0.0,
        utilisation=st.area_busy / (span * servers) if span > 0 and servers else 0.0,
        little_lq=lam * wq,
    )

"""Per-call latency and injected faults, drawn from a seeded random source.

``draw`` always consumes the same number of random values per call, so the sequence of
outcomes for a given seed does not shift when rates change.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from loadtest.mock_providers.config import FaultConfig, LatencyDist


def sample_latency_s(cfg: LatencyDist, rng: random.Random) -> float:
    """One service time in seconds from the configured distribution (two draws always)."""
    u, v = rng.random(), rng.random()
    if cfg.dist == "empirical":
        return cfg.samples_ms[int(u * len(cfg.samples_ms))] / 1000.0
    if cfg.dist == "constant" or cfg.mean_ms <= 0:
        return cfg.mean_ms / 1000.0
    if cfg.dist == "exponential":
        return -math.log(1.0 - u) * cfg.mean_ms / 1000.0
    # Lognormal with mu chosen so that the mean (not the median) is mean_ms; Box-Muller z.
    mu = math.log(cfg.mean_ms) - cfg.sigma**2 / 2
    z = math.sqrt(-2.0 * math.log(1.0 - u)) * math.cos(2.0 * math.pi * v)
    return math.exp(mu + cfg.sigma * z) / 1000.0


@dataclass(frozen=True, slots=True)
class Draw:
    """What happens to one call: extra delay, an injected status, a garbage variant."""

    delay_s: float
    slow: bool
    error_status: int | None
    garbage: int | None


GARBAGE_VARIANTS = 3


def draw(
    latency: LatencyDist, faults: FaultConfig, rng: random.Random, extra_s: float = 0.0
) -> Draw:
    """Latency (plus a fixed ``extra_s``) and the fault outcome of one call."""
    delay = sample_latency_s(latency, rng) + extra_s
    u_slow, u_err, u_status, u_garbage, u_variant = (rng.random() for _ in range(5))
    slow = u_slow < faults.slow_rate
    if slow:
        delay += faults.slow_ms / 1000.0
    status = (500 if u_status < 0.5 else 503) if u_err < faults.error_rate else None
    garbage = (
        int(u_variant * GARBAGE_VARIANTS)
        if status is None and u_garbage < faults.garbage_rate
        else None
    )
    return Draw(delay, slow, status, garbage)


def garbage_body(variant: int) -> tuple[bytes, str]:
    """A 200 body the client cannot use, and its content type."""
    if variant == 0:
        return b'{"messages": [{"id": "18f', "application/json; charset=UTF-8"
    if variant == 1:
        return (
            b"<html><body><h1>Bad Gateway</h1>upstream returned garbage</body></html>",
            "text/html; charset=UTF-8",
        )
    # Valid JSON, but none of the fields any endpoint promises.
    return b'{"kind": "unexpected", "items": null}', "application/json; charset=UTF-8"

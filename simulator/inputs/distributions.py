"""Probability distributions of the scenario model, their moments and block draws.

A scenario names a distribution as a small mapping (``{kind: lognormal, mean: 0.15,
sigma: 0.5}``); the simulator draws from it through ``simulator.model.sampler.Sampler``,
which fills numpy blocks, because one numpy call per scalar draw would dominate the event
loop.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Dist(BaseModel):
    # No infinities or NaN: every figure must be a finite number.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Constant(_Dist):
    """Always ``value``: deterministic service, the D in M/D/c."""

    kind: Literal["constant"] = "constant"
    value: float = Field(ge=0)


class Exponential(_Dist):
    """Memoryless with the given mean: the M in M/M/c."""

    kind: Literal["exponential"] = "exponential"
    mean: float = Field(gt=0)


class Lognormal(_Dist):
    """Lognormal given its arithmetic ``mean`` and the standard deviation ``sigma`` of its log."""

    kind: Literal["lognormal"] = "lognormal"
    mean: float = Field(gt=0)
    sigma: float = Field(ge=0, le=5)


class Uniform(_Dist):
    """Uniform on [low, high]."""

    kind: Literal["uniform"] = "uniform"
    low: float = Field(ge=0)
    high: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError("high must be >= low")
        return self


class Empirical(_Dist):
    """Resampling of a measured sample (bootstrap): each draw is one of ``samples``."""

    kind: Literal["empirical"] = "empirical"
    samples: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _non_negative(self) -> Empirical:
        if min(self.samples) < 0:
            raise ValueError("samples must be >= 0")
        return self


Distribution = Annotated[
    Constant | Exponential | Lognormal | Uniform | Empirical, Field(discriminator="kind")
]


def mean(d: Distribution) -> float:
    """Expected value."""
    if isinstance(d, Constant):
        return d.value
    if isinstance(d, Exponential | Lognormal):
        return d.mean
    if isinstance(d, Uniform):
        return (d.low + d.high) / 2
    return float(np.mean(d.samples))


def upper(d: Distribution) -> float:
    """The largest value ``d`` can draw (inf for exponential and lognormal)."""
    if isinstance(d, Constant):
        return d.value
    if isinstance(d, Uniform):
        return d.high
    if isinstance(d, Empirical):
        return max(d.samples)
    return math.inf


def second_moment(d: Distribution) -> float:
    """E[X^2], for Pollaczek-Khinchine style approximations."""
    if isinstance(d, Constant):
        return d.value**2
    if isinstance(d, Exponential):
        return 2 * d.mean**2
    if isinstance(d, Lognormal):
        return d.mean**2 * math.exp(d.sigma**2)
    if isinstance(d, Uniform):
        return (d.low**2 + d.low * d.high + d.high**2) / 3
    return float(np.mean(np.square(d.samples)))


def draw(d: Distribution, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` independent draws as a float64 array."""
    if isinstance(d, Constant):
        return np.full(n, d.value)
    if isinstance(d, Exponential):
        return rng.exponential(d.mean, n)
    if isinstance(d, Lognormal):
        if d.sigma == 0:
            return np.full(n, d.mean)
        mu = math.log(d.mean) - d.sigma**2 / 2
        return rng.lognormal(mu, d.sigma, n)
    if isinstance(d, Uniform):
        return rng.uniform(d.low, d.high, n)
    return rng.choice(np.asarray(d.samples, dtype=float), n)

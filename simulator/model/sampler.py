"""Scalar draws from a scenario's distribution, served from pre-drawn numpy blocks.

One numpy call per scalar draw would dominate the event loop; a block of 8,192 draws made
at once costs about a tenth as much per draw. Part of the event model (compiled with it when
``python -m simulator.compiled`` builds it), apart from the distributions' pydantic models.
"""

from __future__ import annotations

import numpy as np

from simulator.inputs.distributions import Constant, Distribution, draw, mean


class Sampler:
    """Scalar draws served from pre-drawn numpy blocks (about 10x cheaper than per-call numpy)."""

    __slots__ = ("_block", "_buf", "_dist", "_i", "_rng", "constant")

    def __init__(self, dist: Distribution, rng: np.random.Generator, block: int = 8192) -> None:
        self._dist = dist
        self._rng = rng
        self._block = block
        self._buf: list[float] = []
        self._i = 0
        # Constant draws skip the buffer entirely.
        self.constant: float | None = dist.value if isinstance(dist, Constant) else None

    def __call__(self) -> float:
        if self.constant is not None:
            return self.constant
        i = self._i
        if i >= len(self._buf):
            self._buf = draw(self._dist, self._rng, self._block).tolist()
            i = 0
        self._i = i + 1
        return self._buf[i]

    @property
    def mean(self) -> float:
        """Expected value of the underlying distribution."""
        return mean(self._dist)

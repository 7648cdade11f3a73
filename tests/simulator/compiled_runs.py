"""Seeded runs of the event model reduced to digests, the same whether the model's modules
are compiled (``python -m simulator.compiled``) or not: ``test_compiled`` runs them both ways.

    python -m tests.simulator.compiled_runs   # prints the digests as JSON
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from simulator.compiled import is_compiled
from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario
from simulator.model.engine import Mode, Simulation
from tests.simulator.builders import TIGHTER_REAL_GMAIL, deterministic

SHORT = {"run.horizon_s": 1200.0, "run.warmup_s": 120.0}


def _small(name: str, **changes: Any) -> Scenario:
    return load_scenario(name).updated({"population.tenants": 300, **SHORT, **changes})


def cases() -> dict[str, tuple[Scenario, Mode]]:
    """The model's paths: the plain job and the general walk, every provider, failures,
    throttling, push, work conserving, several processes, steady and drain."""
    return {
        "plan-b steady": (_small("plan-b-1000"), "steady"),
        "plan-b drain": (_small("plan-b-1000"), "drain"),
        "three processes": (_small("plan-b-1500", **{"daemon.processes": 3}), "steady"),
        "imap mix": (_small("mixed-imap"), "steady"),
        "work conserving": (_small("plan-b-1000-wc"), "steady"),
        "graph 429s": (
            deterministic(
                0.1,
                **{
                    "providers.graph.rate_429": 0.3,
                    "providers.graph.retry_after_s": {"kind": "constant", "value": 1},
                    "population.providers": {"graph": 1.0},
                    **SHORT,
                },
            ),
            "steady",
        ),
        "real gmail window": (deterministic(0.1, **{**TIGHTER_REAL_GMAIL, **SHORT}), "steady"),
        "push": (deterministic(0.2, **{"daemon.push_share": 1.0, **SHORT}), "steady"),
    }


def digest(scenario: Scenario, mode: Mode, seed: int = 7) -> str:
    """SHA-256 of every figure of one seeded run and of its per-job trace."""
    sim = Simulation(scenario, seed=seed, mode=mode)
    sim.trace = []
    r = sim.run()
    h = hashlib.sha256()
    for k in sorted(r.scalars):
        h.update(f"{k}={r.scalars[k]!r};".encode())
    h.update(np.ascontiguousarray(r.staleness_hist).tobytes())
    for k in sorted(r.series):
        h.update(k.encode() + np.ascontiguousarray(r.series[k]).tobytes())
    for t in sim.trace:
        h.update(repr(tuple(t)).encode())
    return h.hexdigest()


def digests() -> dict[str, str]:
    """The digest of every case, by name."""
    return {name: digest(s, mode) for name, (s, mode) in cases().items()}


if __name__ == "__main__":
    print(json.dumps({"compiled": is_compiled(), "digests": digests()}))

"""Checks of the model: textbook queues, the fast path against the event model, and
decision parity with the daemon.

``textbook`` (the core run as M/M/c and priority queues), ``validation`` (fast path against
event simulation on the same scenarios) and ``parity`` (the simulator's scheduler and pools
replayed over a workload, for the daemon's parity test).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.exports import lazy

if TYPE_CHECKING:
    from simulator.checks.parity import (
        Arrival,
        Start,
        SyncOutcome,
        dispatch_decisions,
        scheduler_decisions,
    )
    from simulator.checks.textbook import QueueStats, run_queue
    from simulator.checks.validation import CHECKS, Agreement, compare, expected_gap, fast_for

# Where each public name lives; imported on first use (``simulator.exports``).
_WHERE = {
    "Agreement": "validation",
    "Arrival": "parity",
    "CHECKS": "validation",
    "QueueStats": "textbook",
    "Start": "parity",
    "SyncOutcome": "parity",
    "compare": "validation",
    "dispatch_decisions": "parity",
    "expected_gap": "validation",
    "fast_for": "validation",
    "run_queue": "textbook",
    "scheduler_decisions": "parity",
}

__all__ = [
    "CHECKS",
    "Agreement",
    "Arrival",
    "QueueStats",
    "Start",
    "SyncOutcome",
    "compare",
    "dispatch_decisions",
    "expected_gap",
    "fast_for",
    "run_queue",
    "scheduler_decisions",
]

__getattr__ = lazy(__name__, _WHERE)

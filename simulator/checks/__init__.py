"""Checks of the model: textbook queues, the fast path against the event model, and
decision parity with the daemon.

``textbook`` (the core run as M/M/c and priority queues), ``validation`` (fast path against
event simulation on the same scenarios), ``cycles`` (what the scheduler's releases meet in
the event model, recorded around it), ``cycle_map`` (the release cycle reduced to what the
fast path's drain needs, simulated), ``phased_map`` (several schedulers' releases over drawn
phases) and ``parity`` (the simulator's scheduler and pools replayed over a workload, for
the daemon's parity test).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.exports import lazy

if TYPE_CHECKING:
    from simulator.checks.cycle_map import (
        CycleFigures,
        CycleInputs,
        cycle_inputs,
        drain_wait,
        simulate_cycles,
    )
    from simulator.checks.cycles import JOB_KINDS, Cycles, record_cycles
    from simulator.checks.parity import (
        Arrival,
        Start,
        SyncOutcome,
        dispatch_decisions,
        scheduler_decisions,
    )
    from simulator.checks.phased_map import (
        PhasedFigures,
        PhasedInputs,
        phased_inputs,
        simulate_phased,
    )
    from simulator.checks.textbook import QueueStats, run_queue
    from simulator.checks.validation import CHECKS, Agreement, compare, expected_gap, fast_for

# Where each public name lives; imported on first use (``simulator.exports``).
_WHERE = {
    "CycleFigures": "cycle_map",
    "CycleInputs": "cycle_map",
    "cycle_inputs": "cycle_map",
    "drain_wait": "cycle_map",
    "mean_wait": "cycle_map",
    "simulate_cycles": "cycle_map",
    "PhasedFigures": "phased_map",
    "PhasedInputs": "phased_map",
    "phased_inputs": "phased_map",
    "simulate_phased": "phased_map",
    "JOB_KINDS": "cycles",
    "Cycles": "cycles",
    "record_cycles": "cycles",
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
    "JOB_KINDS",
    "Agreement",
    "Arrival",
    "CycleFigures",
    "CycleInputs",
    "Cycles",
    "PhasedFigures",
    "PhasedInputs",
    "QueueStats",
    "Start",
    "SyncOutcome",
    "compare",
    "cycle_inputs",
    "dispatch_decisions",
    "drain_wait",
    "expected_gap",
    "fast_for",
    "mean_wait",
    "phased_inputs",
    "record_cycles",
    "run_queue",
    "scheduler_decisions",
    "simulate_cycles",
    "simulate_phased",
]

__getattr__ = lazy(__name__, _WHERE)

"""Checks of the model: textbook queues, the fast path against the event model, and
decision parity with the daemon.

``textbook`` (the core run as M/M/c and priority queues), ``validation`` (fast path against
event simulation on the same scenarios) and ``parity`` (the simulator's scheduler and pools
replayed over a workload, for the daemon's parity test).
"""

from simulator.checks.parity import Arrival, Start, SyncOutcome, dispatch_decisions, scheduler_decisions
from simulator.checks.textbook import QueueStats, run_queue
from simulator.checks.validation import Agreement, CHECKS, compare, expected_gap, fast_for

__all__ = ["Agreement", "Arrival", "CHECKS", "QueueStats", "Start", "SyncOutcome", "compare", "dispatch_decisions", "expected_gap", "fast_for", "run_queue", "scheduler_decisions"]

"""Running the models: replications in parallel, confidence intervals, sweeps, tables.

``runner`` (replications in worker processes), ``sequential`` (replications until the
intervals are narrow), ``results`` (means, intervals, verdicts, the bottleneck), ``sweep``
(tenants x concurrency x processes), ``frames`` (results as pandas DataFrames) and
``run_cost`` (what an event simulation will cost before it starts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.exports import lazy

if TYPE_CHECKING:
    from simulator.runs.frames import capacity_frame, column, fast_frame, records, tidy
    from simulator.runs.results import REL_TOL, Estimate, ScenarioResult, estimate, results_frame
    from simulator.runs.runner import run_many, run_raw, seeds
    from simulator.runs.sequential import TARGET
    from simulator.runs.sweep import (
        capacity_table,
        cheapest,
        evaluate_grid,
        event_grid,
        grid,
        scenario_for,
        to_frame,
        verification,
        verified,
    )

# Where each public name lives; imported on first use (``simulator.exports``).
_WHERE = {
    "seeds": "runner",
    "Estimate": "results",
    "REL_TOL": "results",
    "ScenarioResult": "results",
    "TARGET": "sequential",
    "capacity_frame": "frames",
    "capacity_table": "sweep",
    "cheapest": "sweep",
    "column": "frames",
    "estimate": "results",
    "evaluate_grid": "sweep",
    "event_grid": "sweep",
    "fast_frame": "frames",
    "grid": "sweep",
    "records": "frames",
    "results_frame": "results",
    "run_many": "runner",
    "run_raw": "runner",
    "scenario_for": "sweep",
    "tidy": "frames",
    "to_frame": "sweep",
    "verification": "sweep",
    "verified": "sweep",
}

__all__ = [
    "REL_TOL",
    "TARGET",
    "Estimate",
    "ScenarioResult",
    "capacity_frame",
    "capacity_table",
    "cheapest",
    "column",
    "estimate",
    "evaluate_grid",
    "event_grid",
    "fast_frame",
    "grid",
    "records",
    "results_frame",
    "run_many",
    "run_raw",
    "scenario_for",
    "seeds",
    "tidy",
    "to_frame",
    "verification",
    "verified",
]

__getattr__ = lazy(__name__, _WHERE)

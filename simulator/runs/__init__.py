"""Running the models: replications in parallel, confidence intervals, sweeps, tables.

``runner`` (replications in worker processes), ``sequential`` (replications until the
intervals are narrow), ``results`` (means, intervals, verdicts, the bottleneck), ``sweep``
(tenants x concurrency x processes), ``frames`` (results as pandas DataFrames) and
``run_cost`` (what an event simulation will cost before it starts).
"""

from simulator.runs.frames import capacity_frame, column, fast_frame, records, tidy
from simulator.runs.results import Estimate, REL_TOL, ScenarioResult, estimate, results_frame
from simulator.runs.runner import run_many, run_raw
from simulator.runs.sequential import TARGET
from simulator.runs.sweep import capacity_table, cheapest, evaluate_grid, event_grid, grid, scenario_for, to_frame, verification, verified

__all__ = ["Estimate", "REL_TOL", "ScenarioResult", "TARGET", "capacity_frame", "capacity_table", "cheapest", "column", "estimate", "evaluate_grid", "event_grid", "fast_frame", "grid", "records", "results_frame", "run_many", "run_raw", "scenario_for", "tidy", "to_frame", "verification", "verified"]

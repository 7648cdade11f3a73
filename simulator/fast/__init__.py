"""The fast path: the daemon's steady state in closed form, vectorised over configurations.

``analytic`` (``evaluate``: a configuration's steady state, step by step over ``config``'s
grid; ``settle``: the rates and waits it rests on), ``sampling`` (``job_profile``: a
scenario's syncs sampled once, into a ``job_profile.JobProfile``), ``drain`` (a released
batch drained by the sampled sync times), ``cycle_map`` and ``phased_map`` (the release
cycle simulated where the drain's closed forms miss it, for a run's own configuration: one
scheduler, several), ``cycles`` (claim waits, push-shortened cycles, staleness),
``resources`` (resources, cost and verdict per configuration), ``closed_forms`` (queueing
formulas), ``profiles`` (job profiles memoised per process) and ``in_flight`` (the peak of
jobs in flight). It reuses the event model's per-provider arithmetic (``model.gate``) so
that both price a sync the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.exports import lazy

if TYPE_CHECKING:
    from simulator.fast.analytic import (
        RATIO_NAMES,
        JobProfile,
        evaluate,
        job_profile,
        largest_interval,
        mean_interval,
        settle,
    )
    from simulator.fast.closed_forms import (
        batch_drain_mean,
        erlang_c,
        mmc_priority_waits,
        mmc_wait,
        t_quantile,
    )
    from simulator.fast.cycle_map import (
        CycleFigures,
        CycleInputs,
        cycle_inputs_at,
        in_regime,
        simulate_cycles,
    )
    from simulator.fast.phased_map import (
        PhasedFigures,
        PhasedInputs,
        phased_inputs_at,
        simulate_phased,
    )

# Where each public name lives; imported on first use (``simulator.exports``).
_WHERE = {
    "settle": "analytic",
    "JobProfile": "analytic",
    "RATIO_NAMES": "analytic",
    "batch_drain_mean": "closed_forms",
    "CycleFigures": "cycle_map",
    "CycleInputs": "cycle_map",
    "cycle_inputs_at": "cycle_map",
    "in_regime": "cycle_map",
    "simulate_cycles": "cycle_map",
    "PhasedFigures": "phased_map",
    "PhasedInputs": "phased_map",
    "phased_inputs_at": "phased_map",
    "simulate_phased": "phased_map",
    "erlang_c": "closed_forms",
    "evaluate": "analytic",
    "job_profile": "analytic",
    "largest_interval": "analytic",
    "mean_interval": "analytic",
    "mmc_priority_waits": "closed_forms",
    "mmc_wait": "closed_forms",
    "t_quantile": "closed_forms",
}

__all__ = [
    "RATIO_NAMES",
    "CycleFigures",
    "CycleInputs",
    "JobProfile",
    "PhasedFigures",
    "PhasedInputs",
    "batch_drain_mean",
    "cycle_inputs_at",
    "erlang_c",
    "evaluate",
    "in_regime",
    "job_profile",
    "largest_interval",
    "mean_interval",
    "mmc_priority_waits",
    "mmc_wait",
    "phased_inputs_at",
    "settle",
    "simulate_cycles",
    "simulate_phased",
    "t_quantile",
]

__getattr__ = lazy(__name__, _WHERE)

"""The fast path: the daemon's steady state in closed form, vectorised over configurations.

``analytic`` (``evaluate``: a configuration's steady state, step by step over ``config``'s
grid), ``sampling`` (``job_profile``: a scenario's syncs sampled once), ``drain`` (a released
batch drained by the sampled sync times), ``cycles`` (claim waits, push-shortened cycles,
staleness), ``resources`` (resources, cost and verdict per configuration), ``closed_forms``
(queueing formulas), ``profiles`` (job profiles memoised per process) and ``in_flight`` (the
peak of jobs in flight). It reuses the event model's per-provider arithmetic (``model.gate``)
so that both price a sync the same way.
"""

from simulator.fast.analytic import JobProfile, RATIO_NAMES, evaluate, job_profile, largest_interval, mean_interval
from simulator.fast.closed_forms import batch_drain_mean, erlang_c, mmc_priority_waits, mmc_wait, t_quantile

__all__ = ["JobProfile", "RATIO_NAMES", "batch_drain_mean", "erlang_c", "evaluate", "job_profile", "largest_interval", "mean_interval", "mmc_priority_waits", "mmc_wait", "t_quantile"]

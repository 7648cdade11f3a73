"""The simulator's results as pandas DataFrames: one tidy table per kind of result.

The hot paths (the event model, the fast path's numpy grids) never see pandas; these
functions turn their finished results into tables whose column names carry their units
(``throughput_per_min``, ``staleness_p95_s``, ``cost_usd_per_month``), for notebooks and for
the report's CSV files, which are written from these frames.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.fast.analytic import RATIO_NAMES, mean_interval
from simulator.inputs.catalogue import load_catalogue
from simulator.inputs.scenario import Scenario

# Names whose unit is not written in the simulator's own key.
_RENAMED = {
    "cost_month": "cost_usd_per_month",
    "cost_per_tenant": "cost_usd_per_tenant_month",
    "cost_hosts": "cost_hosts_usd_per_month",
    "cost_redis": "cost_redis_usd_per_month",
    "cost_postgres": "cost_postgres_usd_per_month",
    "event_cost_month": "event_cost_usd_per_month",
    "staleness_q": "staleness_q_s",
    "cpu_core_per_process": "cpu_cores_per_process",
    "interval": "interval_s",
}
# Time statistics in seconds: ``<figure>_<statistic>[_<qualifier>]``; "all" is the default
# qualifier and is dropped (``staleness_p95_all`` -> ``staleness_p95_s``).
_SECONDS = re.compile(
    r"^(staleness|wait|lag|msg_lag|duration|api_time)_(mean|p50|p95|max)(?:_(\w+))?$"
)


def column(key: str) -> str:
    """The column name, with its unit, of one of the simulator's figure keys."""
    if key in _RENAMED:
        return _RENAMED[key]
    m = _SECONDS.match(key)
    if m is not None:
        figure, stat, rest = m.groups()
        return f"{figure}_{stat}_s" + (f"_{rest}" if rest and rest != "all" else "")
    # Quota names hold a dot ("gmail.user"); a column name is friendlier without.
    return key.replace(".", "_")


def _num(x: Any) -> Any:
    """Infinities (an unstable queue's wait) become missing values in a table."""
    if isinstance(x, float | np.floating) and not math.isfinite(float(x)):
        return math.nan
    return x


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every figure column named by ``column``."""
    return frame.rename(columns={c: column(str(c)) for c in frame.columns})


def records(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A table of records as they are (columns in the order they first appear)."""
    rows = list(rows)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    return pd.DataFrame.from_records([dict(r) for r in rows], columns=keys)


def capacity_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A capacity table (``sweep.capacity_table``, ``sweep.event_grid``): one row per tenant
    count or grid point, missing values where a row has no feasible configuration."""
    return tidy(records({k: _num(v) for k, v in r.items()} for r in rows))


def fast_frame(
    s: Scenario,
    out: Mapping[str, np.ndarray],
    tenants: np.ndarray | Sequence[float],
    processes: np.ndarray | Sequence[float],
    hosts: np.ndarray | Sequence[float] | None = None,
    conc_scale: np.ndarray | float = 1.0,
    interval: np.ndarray | float | None = None,
    instance: np.ndarray | None = None,
) -> pd.DataFrame:
    """The fast path's result (``analytic.evaluate(s, p, tenants, processes, ...)`` with the
    same arguments) as one row per configuration: the configuration, then every figure;
    catalogue indices become names and the bottleneck its name."""
    cat = load_catalogue(s.costs.catalogue)
    names = list(cat.instances)
    k = np.asarray(processes, dtype=float)
    # Without an explicit interval the fast path syncs at the scenario's (mean) interval.
    iv = mean_interval(s) if interval is None else interval
    inst = np.asarray(names.index(s.daemon.instance) if instance is None else instance)
    shape = np.broadcast_shapes(np.shape(tenants), k.shape, np.shape(out["throughput_per_min"]))

    def col(x: Any) -> np.ndarray:
        return np.broadcast_to(np.asarray(x), shape).ravel()

    data: dict[str, Any] = {
        "tenants": col(tenants).astype(int),
        "processes": col(k).astype(int),
        "hosts": col(k if hosts is None else hosts).astype(int),
        "instance": np.array(names)[col(inst).astype(int)],
        "conc_scale": col(conc_scale).astype(float),
        "interval_s": col(iv).astype(float),
    }
    tiers = {"redis_tier": list(cat.redis), "postgres_tier": list(cat.postgres)}
    for key, values in out.items():
        v = col(values)
        if key == "bottleneck":
            data[key] = np.array(RATIO_NAMES)[v.astype(int)]
        elif key in tiers:
            data[key.removesuffix("_tier")] = np.array(tiers[key])[v.astype(int)]
        elif v.dtype.kind == "f":
            data[column(key)] = np.where(np.isfinite(v), v, np.nan)
        else:
            data[column(key)] = v
    return pd.DataFrame(data)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """A table as CSV at full precision (missing values as empty fields)."""
    frame.to_csv(path, index=False)

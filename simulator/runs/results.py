"""Replications combined: means with confidence intervals, pass/fail verdicts, the bottleneck."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.fast.closed_forms import t_quantile
from simulator.inputs.catalogue import load_catalogue
from simulator.inputs.scenario import Scenario
from simulator.model.metrics import RunMetrics
from simulator.model.resources import derive, tiers_for_runs

if TYPE_CHECKING:
    import pandas as pd


# Relative precision the figures are quoted to: sequential stopping narrows confidence
# intervals to it, and the fast path is held to agree with the event model within it.
REL_TOL = 0.05


@dataclass(frozen=True)
class Estimate:
    """Mean over replications with the half-width of its 95 % confidence interval."""

    mean: float
    half: float
    n: int

    def text(self, fmt: str = ".3g") -> str:
        """``mean ± half`` (or just the mean for one replication)."""
        if math.isnan(self.mean):
            return "n/a"
        if self.n < 2 or math.isnan(self.half):
            return format(self.mean, fmt)
        return f"{format(self.mean, fmt)} ± {format(self.half, fmt)}"


def estimate(values: list[float]) -> Estimate:
    """CI by Student t over independent replications (NaN runs are skipped)."""
    v = np.array([x for x in values if not math.isnan(x)], dtype=float)
    if v.size == 0:
        return Estimate(float("nan"), float("nan"), 0)
    if v.size == 1 or not np.all(np.isfinite(v)):
        return Estimate(float(v.mean()), float("nan"), int(v.size))
    half = t_quantile(int(v.size)) * float(v.std(ddof=1)) / math.sqrt(v.size)
    return Estimate(float(v.mean()), half, int(v.size))


@dataclass(frozen=True)
class Verdict:
    """One success criterion: measured value, limit, pass or fail."""

    name: str
    passed: bool
    value: Estimate
    limit: float
    text: str


BOTTLENECK_NAMES = {
    "ratio_workers_high": "workers (high tier)",
    "ratio_workers_normal": "workers (normal tier)",
    "ratio_workers_low": "workers (low tier)",
    "ratio_scheduler": "scheduler batch (claim rate)",
    "ratio_cpu": "CPU",
    "ratio_ram": "RAM",
    "ratio_database": "database",
    "ratio_redis": "Redis",
    "ratio_imap_connections": "IMAP connections per account",
}


def bottleneck_name(key: str) -> str:
    """Readable name of a headroom ratio key."""
    if key.startswith("ratio_quota_"):
        return "provider quota " + key.removeprefix("ratio_quota_")
    return BOTTLENECK_NAMES.get(key, key)


@dataclass
class ScenarioResult:
    """Everything known about one scenario after its replications."""

    scenario: Scenario
    metrics: dict[str, Estimate]
    verdicts: list[Verdict]
    bottleneck: str
    ratios: dict[str, float]
    staleness_hist: np.ndarray
    series: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """All criteria met."""
        return all(v.passed for v in self.verdicts)

    def get(self, key: str) -> float:
        """Mean of a metric (NaN when absent)."""
        e = self.metrics.get(key)
        return e.mean if e is not None else float("nan")

    def deployment(self) -> dict[str, Any]:
        """What is paid for: hosts, instance and the managed tiers (one per scenario)."""
        cat = load_catalogue(self.scenario.costs.catalogue)
        tiers = {}
        for kind, names in (("redis", list(cat.redis)), ("postgres", list(cat.postgres))):
            idx = self.get(f"{kind}_tier")
            tiers[kind] = names[int(idx)] if not math.isnan(idx) else ""
        d = self.scenario.daemon
        return {"processes": d.processes, "hosts": d.hosts, "instance": d.instance, **tiers}

    def to_frame(self) -> pd.DataFrame:
        """This result as a one-row table (``results_frame``): figures with
        units in their names, each with its 95 % CI half-width."""
        # pandas stays out of the worker processes that import this module for the hot path.
        return results_frame([self])

    def row(self) -> dict[str, Any]:
        """A flat record for CSV/JSON: name, means, CI half-widths, verdicts."""
        out: dict[str, Any] = {"scenario": self.scenario.name, **self.deployment()}
        for k, e in sorted(self.metrics.items()):
            out[k] = e.mean
            out[f"{k}_ci"] = e.half
        for v in self.verdicts:
            out[f"pass_{v.name}"] = v.passed
        out["pass_all"] = self.passed
        out["bottleneck"] = self.bottleneck
        return out


def _verdicts(s: Scenario, m: dict[str, Estimate]) -> list[Verdict]:
    c = s.criteria
    nan = Estimate(float("nan"), float("nan"), 0)

    def get(k: str) -> Estimate:
        return m.get(k, nan)

    cap = get("capacity_per_min")
    if cap.n == 0:
        cap = get("throughput_per_min")
    q = c.fresh_quantile
    fresh_name = "all mailboxes" if q >= 1 else f"{q:.1%} of mailbox samples"
    out = [
        Verdict(
            "throughput",
            cap.mean >= c.throughput_per_min,
            cap,
            c.throughput_per_min,
            f"capacity ≥ {c.throughput_per_min:g} mailboxes/min (drain test)",
        ),
        Verdict(
            "cpu",
            get("cpu_pct_host").mean < c.cpu_pct_max,
            get("cpu_pct_host"),
            c.cpu_pct_max,
            f"host CPU < {c.cpu_pct_max:g} %",
        ),
        Verdict(
            "ram",
            get("ram_gb_host").mean < c.ram_gb_max,
            get("ram_gb_host"),
            c.ram_gb_max,
            f"host RAM < {c.ram_gb_max:g} GB",
        ),
        Verdict(
            "errors",
            get("error_rate").mean < c.error_rate_max,
            get("error_rate"),
            c.error_rate_max,
            f"failed syncs < {c.error_rate_max:.0%}",
        ),
        Verdict(
            "freshness",
            get("staleness_q").mean <= c.fresh_within_s,
            get("staleness_q"),
            c.fresh_within_s,
            f"{fresh_name} synced within {c.fresh_within_s:g} s (sampled staleness)",
        ),
    ]
    return out


def combine(s: Scenario, runs: list[RunMetrics], drains: list[RunMetrics]) -> ScenarioResult:
    """Aggregate replications of the steady run and of the drain run."""
    # One Redis and one PostgreSQL tier for every replication: a deployment has one price.
    tiers = tiers_for_runs(s, [r.scalars for r in runs]) if runs else None
    per_run = [{**r.scalars, **derive(s, r.scalars, tiers)} for r in runs]
    keys = sorted({k for r in per_run for k in r})
    metrics = {k: estimate([r.get(k, float("nan")) for r in per_run]) for k in keys}
    drained = ("drain_s", "drain95_s", "capacity_per_min", "partial_runs")
    onboard = {k for d in drains for k in d.scalars if k.startswith("onboard_")}
    for k in (*drained, *sorted(onboard)):
        vals = [d.scalars[k] for d in drains if k in d.scalars]
        if vals:
            metrics[k] = estimate(vals)
    # Per-mailbox quotas slow single syncs (full syncs) but do not cap the deployment.
    mailbox_scoped = {
        f"ratio_quota_{q.name}"
        for lim in s.limits().values()
        for q in lim.quotas
        if q.scope == "mailbox"
    }
    ratios = {
        k: v.mean for k, v in metrics.items() if k.startswith("ratio_") and k not in mailbox_scoped
    }
    finite = {k: v for k, v in ratios.items() if not math.isnan(v)}
    key = max(finite, key=lambda k: finite[k]) if finite else ""
    bottleneck = bottleneck_name(key) if key else "none"
    # When nothing is loaded, the sync interval itself is what bounds freshness.
    if finite and finite[key] < 0.5:
        bottleneck = "none (sync interval bounds freshness)"
    hist = np.sum([r.staleness_hist for r in runs], axis=0) if runs else np.zeros(0)
    return ScenarioResult(
        s, metrics, _verdicts(s, metrics), bottleneck, ratios, hist, runs[0].series if runs else {}
    )


def results_frame(results: Sequence[ScenarioResult]) -> pd.DataFrame:
    """One row per scenario: its deployment, the mean of every figure over the replications
    with the half-width of its 95 % confidence interval (``<figure>_ci95``), the number of
    replications, each criterion's verdict and the bottleneck."""
    # pandas only when a table is asked for: the replications' processes never load it.
    from simulator.runs.frames import column, records

    rows: list[dict[str, Any]] = []
    for r in results:
        row: dict[str, Any] = {"scenario": r.scenario.name, **r.deployment()}
        row["tenants"] = r.scenario.population.tenants
        row["replications"] = max((e.n for e in r.metrics.values()), default=0)
        for k, e in sorted(r.metrics.items()):
            row[column(k)] = e.mean
            row[f"{column(k)}_ci95"] = e.half
        for v in r.verdicts:
            row[f"pass_{v.name}"] = v.passed
        row["pass_all"] = r.passed
        row["bottleneck"] = r.bottleneck
        rows.append(row)
    return records(rows)

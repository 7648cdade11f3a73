"""Measured beside predicted: relative errors per figure and level, and the Plan B verdicts
judged on both sides."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from simulator.inputs.scenario import Criteria

# Figures whose agreement after calibration is required, and the bound on |relative error|.
BOUNDS: Mapping[str, float] = {
    "throughput_per_min": 0.15,
    "msg_lag_p50": 0.15,
    "cpu_core_per_process": 0.20,
    "rss_mb_process": 0.20,
}

# (key, label, unit) in the order the report shows them.
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("throughput_per_min", "throughput", "syncs/min"),
    ("msg_lag_p50", "sync lag (delivered → stored) p50", "s"),
    ("msg_lag_p95", "sync lag p95", "s"),
    ("lag_p50_high", "due → synced p50, high tier", "s"),
    ("lag_p95_high", "due → synced p95, high tier", "s"),
    ("lag_p50_normal", "due → synced p50, normal tier", "s"),
    ("lag_p50_low", "due → synced p50, low tier", "s"),
    ("staleness_p50_all", "staleness p50", "s"),
    ("staleness_p95_all", "staleness p95", "s"),
    ("staleness_max_all", "staleness max", "s"),
    ("wait_mean_high", "queue wait mean, high tier", "s"),
    ("duration_mean_incremental", "incremental sync duration, mean", "s"),
    ("cpu_core_per_process", "CPU per daemon process", "cores"),
    ("cpu_pct_host", "daemon CPU of the host", "%"),
    ("rss_mb_process", "RSS per daemon process", "MB"),
    ("ram_gb_host", "daemon RAM of the host", "GB"),
    ("requests_per_min_gmail", "Gmail requests", "/min"),
    ("calls_per_min_gmail", "Gmail calls", "/min"),
    ("throttled_gmail", "Gmail 429s", "count"),
    ("requests_per_min_graph", "Graph requests", "/min"),
    ("throttled_graph", "Graph 429s", "count"),
    ("requests_per_min_imap", "IMAP round trips", "/min"),
    ("calls_per_min_imap", "IMAP commands", "/min"),
    ("imap_conn_process_peak", "IMAP connections per process, peak", "count"),
    ("error_rate", "error rate", "share"),
)


@dataclass(frozen=True)
class Row:
    """One figure of one level."""

    level: str
    key: str
    label: str
    unit: str
    measured: float
    predicted: float
    half: float
    bound: float | None

    @property
    def rel_error(self) -> float:
        """(predicted - measured) / measured; NaN when either side is missing or zero."""
        if not (math.isfinite(self.measured) and math.isfinite(self.predicted)):
            return math.nan
        if self.measured == 0:
            return 0.0 if self.predicted == 0 else math.nan
        return (self.predicted - self.measured) / abs(self.measured)

    @property
    def ok(self) -> bool | None:
        """Within its bound (None when the figure has none)."""
        if self.bound is None:
            return None
        e = self.rel_error
        return math.isfinite(e) and abs(e) <= self.bound


def compare(
    measured: Mapping[str, Mapping[str, float]],
    predicted: Mapping[str, Mapping[str, tuple[float, float]]],
    levels: Sequence[str],
    bounds: Mapping[str, float] = BOUNDS,
) -> list[Row]:
    """Rows for every figure present on at least one side, level by level."""
    out = []
    for lv in levels:
        m, p = measured[lv], predicted[lv]
        for key, label, unit in FIGURES:
            if key not in m and key not in p:
                continue
            mean, half = p.get(key, (math.nan, math.nan))
            out.append(Row(lv, key, label, unit, m.get(key, math.nan), mean, half, bounds.get(key)))
    return out


@dataclass(frozen=True)
class Verdict:
    """One Plan B criterion at one level, judged on the measurement and on the model."""

    level: str
    criterion: str
    limit: str
    measured: float
    predicted: float
    measured_ok: bool
    predicted_ok: bool

    @property
    def agree(self) -> bool:
        """Both sides reach the same verdict."""
        return self.measured_ok == self.predicted_ok


def verdicts(
    measured: Mapping[str, Mapping[str, float]],
    predicted: Mapping[str, Mapping[str, tuple[float, float]]],
    levels: Sequence[str],
    c: Criteria,
    started_clean: bool,
) -> list[Verdict]:
    """Plan B's success criteria per level (``starts clean`` is judged on the run)."""
    checks = (
        (
            "throughput",
            f"≥ {c.throughput_per_min:g} mailboxes/min",
            "throughput_per_min",
            lambda v: v >= c.throughput_per_min,
        ),
        ("CPU", f"< {c.cpu_pct_max:g} % of the host", "cpu_pct_host", lambda v: v < c.cpu_pct_max),
        ("RAM", f"< {c.ram_gb_max:g} GB", "ram_gb_host", lambda v: v < c.ram_gb_max),
        (
            "errors",
            f"< {c.error_rate_max:.0%} of syncs",
            "error_rate",
            lambda v: v < c.error_rate_max,
        ),
        (
            "freshness",
            f"every mailbox synced within {c.fresh_within_s:g} s",
            "staleness_q",
            lambda v: v <= c.fresh_within_s,
        ),
    )
    out = []
    for lv in levels:
        m, p = measured[lv], predicted[lv]
        out.append(
            Verdict(lv, "starts without errors", "no error at start", 0, 0, started_clean, True)
        )
        for name, limit, key, passes in checks:
            mv, pv = m.get(key, math.nan), p.get(key, (math.nan, math.nan))[0]
            out.append(
                Verdict(
                    lv,
                    name,
                    limit,
                    mv,
                    pv,
                    math.isfinite(mv) and passes(mv),
                    math.isfinite(pv) and passes(pv),
                )
            )
    return out


def bounded_errors(rows: Sequence[Row]) -> dict[str, dict[str, float]]:
    """level -> figure -> relative error, for the figures with a bound."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        if r.bound is not None:
            out.setdefault(r.level, {})[r.key] = r.rel_error
    return out


# Column order of comparison.csv: one row per calibration state, level and figure.
COMPARISON_COLUMNS = (
    "calibrated",
    "level",
    "figure",
    "label",
    "unit",
    "measured",
    "predicted",
    "predicted_ci95",
    "rel_error",
    "bound",
    "within_bound",
)


def comparison_frame(before: Sequence[Row], after: Sequence[Row]) -> pd.DataFrame:
    """Measured against predicted, before (``calibrated`` "no") and after ("yes") calibration:
    a tidy table, the figure's unit in the ``unit`` column (figures of one table have many)."""
    rows = [
        {
            "calibrated": tag,
            "level": r.level,
            "figure": r.key,
            "label": r.label,
            "unit": r.unit,
            "measured": r.measured,
            "predicted": r.predicted,
            "predicted_ci95": r.half,
            "rel_error": r.rel_error,
            "bound": r.bound,
            "within_bound": r.ok,
        }
        for tag, rs in (("no", before), ("yes", after))
        for r in rs
    ]
    return pd.DataFrame.from_records(rows, columns=list(COMPARISON_COLUMNS))


def verdicts_frame(before: Sequence[Verdict], after: Sequence[Verdict]) -> pd.DataFrame:
    """The Plan B criteria judged on the measurement and on the model, before and after
    calibration."""
    rows = [
        {
            "calibrated": tag,
            "level": v.level,
            "criterion": v.criterion,
            "limit": v.limit,
            "measured": v.measured,
            "predicted": v.predicted,
            "measured_pass": v.measured_ok,
            "predicted_pass": v.predicted_ok,
            "agree": v.agree,
        }
        for tag, vs in (("no", before), ("yes", after))
        for v in vs
    ]
    return pd.DataFrame.from_records(rows)


def read_comparison(report_dir: str | Path) -> pd.DataFrame:
    """The measured-against-predicted table of a load-test report folder
    (``mailsync loadtest run``'s comparison.csv), with its levels in run order."""
    frame = pd.read_csv(Path(report_dir) / "comparison.csv")
    order = list(dict.fromkeys(frame["level"]))
    frame["level"] = pd.Categorical(frame["level"], categories=order, ordered=True)
    return frame

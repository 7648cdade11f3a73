"""The results as DataFrames: units in the column names, the same numbers as the results,
and the CSV files written from them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulator.fast.analytic import RATIO_NAMES, evaluate, job_profile
from simulator.inputs.loader import load_scenario
from simulator.report.plan_b import write_csv
from simulator.runs.frames import column, fast_frame
from simulator.runs.runner import run_many
from simulator.runs.sweep import capacity_table, evaluate_grid, grid, to_frame


def test_column_names_carry_units() -> None:
    assert column("throughput_per_min") == "throughput_per_min"
    assert column("staleness_p95_all") == "staleness_p95_s"
    assert column("staleness_p95_high") == "staleness_p95_s_high"
    assert column("wait_mean") == "wait_mean_s"
    assert column("msg_lag_p50_gmail_high") == "msg_lag_p50_s_gmail_high"
    assert column("msg_lag_n_gmail_high") == "msg_lag_n_gmail_high"  # a count, no unit
    assert column("duration_mean_full") == "duration_mean_s_full"
    assert column("cost_month") == "cost_usd_per_month"
    assert column("cost_per_tenant") == "cost_usd_per_tenant_month"
    assert column("staleness_q") == "staleness_q_s"
    assert column("quota_util_gmail.user") == "quota_util_gmail_user"
    assert column("cpu_pct_host") == "cpu_pct_host"


def test_replications_frame_holds_means_and_confidence_intervals() -> None:
    s = load_scenario("plan-b-1000").updated(
        {
            "name": "frame-200",
            "population.tenants": 200,
            "run.horizon_s": 1200.0,
            "run.warmup_s": 300.0,
            "run.replications": 2,
        }
    )
    (r,) = run_many([s], jobs=1, progress=False)
    f = r.to_frame()
    assert f.shape[0] == 1
    row = f.iloc[0]
    assert row["scenario"] == "frame-200"
    assert row["tenants"] == 200
    assert row["replications"] == 2
    assert row["instance"] == s.daemon.instance
    # 200 mailboxes at a 5-minute interval: about 40 syncs a minute.
    assert 30 < row["throughput_per_min"] < 50
    assert row["throughput_per_min"] == r.metrics["throughput_per_min"].mean
    assert row["throughput_per_min_ci95"] == r.metrics["throughput_per_min"].half
    assert row["throughput_per_min_ci95"] > 0
    assert row["staleness_p95_s"] == r.get("staleness_p95_all")
    assert row["staleness_p95_s_high"] == r.get("staleness_p95_high")
    assert 200 < row["staleness_p95_s"] < 330
    assert row["cost_usd_per_month"] == r.get("cost_month") > 0
    assert row["ram_gb_host"] == r.get("ram_gb_host")
    assert row["pass_all"] == r.passed
    assert row["bottleneck"] == r.bottleneck
    assert not any("." in c for c in f.columns)


def test_fast_path_frame_is_one_row_per_configuration() -> None:
    s = load_scenario("plan-b-1000")
    p = job_profile(s)
    tenants = np.array([100.0, 1000.0, 20_000.0])
    procs = np.array([1.0, 1.0, 1.0])
    out = evaluate(s, p, tenants, procs)
    f = fast_frame(s, out, tenants, procs)
    assert list(f["tenants"]) == [100, 1000, 20_000]
    assert list(f["processes"]) == [1, 1, 1]
    assert (f["instance"] == s.daemon.instance).all()
    assert (f["interval_s"] == 300.0).all()
    np.testing.assert_array_equal(f["throughput_per_min"], out["throughput_per_min"])
    np.testing.assert_array_equal(f["cost_usd_per_month"], out["cost_month"])
    assert list(f["bottleneck"]) == [RATIO_NAMES[int(i)] for i in out["bottleneck"]]
    # 20,000 tenants overload one process: its queue never settles, the wait is missing
    # (not infinite) in the table.
    assert not f["stable"].iloc[2] and not np.isfinite(out["wait_mean"][2])
    assert math.isnan(f["wait_mean_s"].iloc[2])
    assert f["wait_mean_s"].iloc[0] == out["wait_mean"][0]
    # Plan B claims 200 mailboxes every 10 s (1,200/min): at 20,000 tenants that binds before
    # its 34 workers, which Graph's batched delta pages keep below saturation.
    assert f["bottleneck"].iloc[2] == "scheduler batch (claim rate)"
    # The interval column is the one the fast path used: the scenario's own when not given.
    s240 = s.updated({"population.sync_interval_s": {"kind": "constant", "value": 240.0}})
    f240 = fast_frame(s240, evaluate(s240, job_profile(s240), tenants, procs), tenants, procs)
    assert (f240["interval_s"] == 240.0).all()
    assert (f240["demand_per_min"] > f["demand_per_min"]).all()


def test_sweep_grid_and_capacity_table_frames(tmp_path: Path) -> None:
    s = load_scenario("plan-b-1000").updated({"criteria.fresh_quantile": 0.99})
    g = grid(s, (300, 20_000), (1.0,), (1, 2), (240.0,))
    out = evaluate_grid(s, g)
    f = g.to_frame(s, out)
    assert len(f) == g.size
    np.testing.assert_array_equal(f["tenants"], g.tenants.astype(int))
    q = out["staleness_q"]
    # 20,000 tenants are past plan-b's claims (1,200/min per process): infinite staleness,
    # missing in the table.
    assert np.isinf(q).any() and np.isfinite(q).any()
    np.testing.assert_array_equal(f["staleness_q_s"], np.where(np.isfinite(q), q, np.nan))
    rows, n = capacity_table(s, (300, 3000, 200_000), (1.0,), (1, 2), (240.0,), verify=False)
    table = to_frame(rows)
    assert list(table["tenants"]) == [300, 3000, 200_000]
    assert list(table["feasible"]) == [True, True, False]
    first = rows[0]
    assert table["cost_usd_per_month"].iloc[0] == first["cost_month"]
    assert table["staleness_q_s"].iloc[0] == first["staleness_q_s"]
    assert table["cost_usd_per_tenant_month"].iloc[0] == pytest.approx(first["cost_month"] / 300)
    assert math.isnan(table["cost_usd_per_month"].iloc[2])
    # The CSV is the frame: read back, the same columns and numbers.
    write_csv(tmp_path / "capacity.csv", table)
    back = pd.read_csv(tmp_path / "capacity.csv")
    assert list(back.columns) == list(table.columns)
    assert back["cost_usd_per_month"].iloc[0] == first["cost_month"]
    assert n == g.size // 2 * 3  # three tenant counts where the grid had two

"""The Typer commands (``simulator.cli``)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from simulator.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    # The CLI configures structlog for stderr; leave the process as we found it.
    yield
    structlog.reset_defaults()


def test_simulate_prints_json_with_confidence_intervals() -> None:
    res = runner.invoke(
        app,
        [
            "simulate",
            "plan-b-300-original",
            "--json",
            "--replications",
            "2",
            "--set",
            "run.horizon_s=900",
            "--set",
            "run.warmup_s=100",
            "--jobs",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output[res.output.index("{") :])
    assert doc["scenario"] == "plan-b-300-original"
    assert doc["metrics"]["throughput_per_min"]["n"] == 2
    assert set(doc["verdicts"]) == {"throughput", "cpu", "ram", "errors", "freshness"}


def test_bad_input_exits_2_with_the_field_named(tmp_path: Path) -> None:
    res = runner.invoke(app, ["simulate", "plan-b-1000", "--set", "daemon.processes=0"])
    assert res.exit_code == 2
    assert "daemon.processes" in res.output


def test_sweep_writes_the_capacity_csv(tmp_path: Path) -> None:
    out = tmp_path / "cap.csv"
    res = runner.invoke(
        app,
        [
            "sweep",
            "--tenants",
            "300,3000",
            "--concurrency",
            "1",
            "--processes",
            "1,2",
            "--intervals",
            "240",
            "--no-verify",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("tenants,feasible")
    assert len(lines) == 3


def test_simulate_runs_the_shipped_imap_scenario() -> None:
    res = runner.invoke(
        app,
        [
            "simulate",
            "mixed-imap",
            "--json",
            "--replications",
            "1",
            "--set",
            "run.horizon_s=900",
            "--set",
            "run.warmup_s=300",
            "--jobs",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.output[res.output.index("{") :])["metrics"]
    for provider in ("gmail", "graph", "imap"):
        assert metrics[f"requests_per_min_{provider}"]["mean"] > 0
        assert metrics[f"api_time_mean_{provider}"]["mean"] > 0
    assert metrics["units_per_min_imap"]["mean"] == 0
    assert 1 <= metrics["imap_conn_account_peak"]["mean"] <= 2
    assert (
        metrics["rss_mb_process"]["mean"]
        > 80 + 300 * metrics["imap_conn_process_peak"]["mean"] / 1024
    )


def test_sweep_compares_profiles_on_one_grid(tmp_path: Path) -> None:
    out = tmp_path / "cap.csv"
    # Half plan-b's workers, so that workers (not the claim rate) bind plan-b.
    args = ["sweep", "--tenants", "1500,5000", "--concurrency", "0.5", "--processes", "1,2,4"]
    args += ["--intervals", "240", "--no-verify", "--out", str(out)]
    res = runner.invoke(app, [*args, "--profiles", "plan-b,plan-b-wc"])
    assert res.exit_code == 0, res.output
    assert "profile plan-b:" in res.output and "profile plan-b-wc:" in res.output
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["profile"], r["tenants"]) for r in rows] == [
        ("plan-b", "1500"),
        ("plan-b", "5000"),
        ("plan-b-wc", "1500"),
        ("plan-b-wc", "5000"),
    ]
    # Twice the workers on the high queue: never a dearer cheapest configuration nor more
    # processes, and fewer where plan-b's workers bind.
    got = {(r["profile"], r["tenants"]): r for r in rows}
    fewer = 0
    for t in ("1500", "5000"):
        pb, wc = got[("plan-b", t)], got[("plan-b-wc", t)]
        assert pb["feasible"] == wc["feasible"] == "True"
        assert pb["bottleneck"] == "workers"
        assert float(wc["cost_usd_per_month"]) <= float(pb["cost_usd_per_month"])
        assert float(wc["processes"]) <= float(pb["processes"])
        fewer += float(wc["processes"]) < float(pb["processes"])
    assert fewer >= 1
    bad = runner.invoke(app, [*args, "--profiles", "plan-b,plan-z"])
    assert bad.exit_code == 2 and "plan-z" in bad.output

"""Calibration files replace the defaults and are validated like scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.errors import ConfigError
from simulator.inputs.calibration import apply, load_calibration
from simulator.inputs.distributions import Empirical
from simulator.inputs.loader import load_scenario
from simulator.model.engine import Simulation


def test_calibration_replaces_latency_and_resource_defaults(tmp_path: Path) -> None:
    p = tmp_path / "cal.yaml"
    p.write_text(
        "source: load test 1\n"
        "latency_s:\n  gmail: {default: [0.3, 0.5], messages.get: [0.9]}\n"
        "  graph: {default: [0.2]}\n"
        "cpu_ms_per_call: 2.5\nrss_base_mb: 120\ndb_commit_ms: 3\n",
        encoding="utf-8",
    )
    s = apply(load_scenario("plan-b-300-original"), load_calibration(p), p.name)
    assert s.calibrated_from == "load test 1"
    assert s.providers["gmail"].latency_s == Empirical(samples=[0.3, 0.5])
    assert s.providers["gmail"].latency_by_method["messages.get"] == Empirical(samples=[0.9])
    assert (s.resources.cpu_ms_per_call, s.resources.rss_base_mb) == (2.5, 120)
    assert s.resources.cpu_ms_per_message == 0.05  # not in the file: default kept
    r = Simulation(s.updated({"run.horizon_s": 900.0, "run.warmup_s": 100.0}), 1).run()
    # Graph syncs are two requests of exactly 0.2 s plus CPU and the commit.
    assert r.scalars["duration_mean_incremental"] > 0.3


def test_json_calibration_and_errors(tmp_path: Path) -> None:
    ok = tmp_path / "cal.json"
    ok.write_text(json.dumps({"rss_per_job_mb": 0.7}), encoding="utf-8")
    assert load_calibration(ok).rss_per_job_mb == 0.7
    bad = tmp_path / "bad.yaml"
    bad.write_text("cpu_ms_per_call: -1\nlatency_s: {pop3: {default: [1]}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.yaml: line 1: cpu_ms_per_call"):
        load_calibration(bad)
    bad.write_text("latency_s: {pop3: {default: [1]}}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="latency_s.pop3: unknown provider"):
        load_calibration(bad)


def test_imap_round_trips_and_connection_memory_calibrate(tmp_path: Path) -> None:
    p = tmp_path / "cal.yaml"
    p.write_text(
        "latency_s:\n  imap: {default: [0.04], imap.fetch: [0.09]}\n"
        "rss_per_imap_connection_kb: 310\n",
        encoding="utf-8",
    )
    s = apply(load_scenario("mixed-imap"), load_calibration(p), p.name)
    assert s.providers.imap.latency_s == Empirical(samples=[0.04])
    assert s.providers.imap.latency_by_method == {"imap.fetch": Empirical(samples=[0.09])}
    assert s.resources.rss_per_imap_connection_kb == 310


def test_the_shipped_load_test_calibration_names_its_source() -> None:
    from simulator.report.sections import summary_section

    path = Path(__file__).parents[3] / "simulator" / "calibrations" / "loadtest-mixed.yaml"
    cal = load_calibration(path)
    # Scenario, profile, machine, date and commit of the measuring run.
    assert cal.source is not None
    for part in ("mixed", "plan-b", "2 cores", "2026-", "commit"):
        assert part in cal.source
    # Every provider of the scenario has measured request latencies.
    assert set(cal.latency_s) == {"gmail", "graph", "imap"}
    s = apply(load_scenario("plan-b-1000"), cal, path.name)
    assert s.resources.rss_base_mb == cal.rss_base_mb
    page = summary_section([s], quick=True, seconds=1.0)
    assert "Uncalibrated defaults" not in page and "Calibrated from: load test of mixed" in page

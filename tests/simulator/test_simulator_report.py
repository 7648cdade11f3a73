"""``mailsync report`` smoke tests (quick mode, into a temporary folder)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from simulator.report import Options, plan_b_report, scenario_report


def test_plan_b_report_quick(tmp_path: Path) -> None:
    index = plan_b_report(Options(out=tmp_path, quick=True, progress=False))
    assert index == tmp_path / "plan-b-capacity" / "index.html"
    page = index.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") >= 10
    for section in (
        "The plan's claims",
        "Capacity table",
        "Dynamics the plan missed",
        "Fast path against the event simulation",
        "Uncalibrated defaults",
    ):
        assert section in page
    doc = json.loads((index.parent / "report.json").read_text(encoding="utf-8"))
    assert {r["scenario"] for r in doc["scenarios"]} >= {"plan-b-1000@model", "plan-c-5000@plan"}
    with (index.parent / "claims.csv").open() as f:
        claims = list(csv.DictReader(f))
    assert any("1,000 mailboxes in 2 minutes" in c["claim"] for c in claims)


def test_scenario_report(tmp_path: Path) -> None:
    p = tmp_path / "tiny.yaml"
    p.write_text(
        "extends: plan-b-300-original\nname: tiny\nrun: {horizon_s: 900, warmup_s: 100, "
        "replications: 1}\n",
        encoding="utf-8",
    )
    index = scenario_report([str(p)], Options(name="tiny", out=tmp_path, progress=False))
    assert "tiny" in index.read_text(encoding="utf-8")
    assert (index.parent / "scenarios.csv").exists()


def test_fast_report_needs_no_event_simulation(tmp_path: Path) -> None:
    from simulator.fast_report import fast_report

    index = fast_report(["plan-b-1000"], Options(name="fast", out=tmp_path, progress=False))
    page = index.read_text(encoding="utf-8")
    assert "fast path only" in page
    with (index.parent / "scenarios.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["scenario"] == "plan-b-1000"
    assert float(row["throughput_per_min"]) > 150

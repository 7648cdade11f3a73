"""The report's summary (``simulator.report.summary``) from hand-made capacity rows and claim checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.inputs.calibration import apply, load_calibration
from simulator.inputs.loader import load_scenario
from simulator.report.claims import Check
from simulator.report.summary import capacity_rows, claims_sentences, provenance_html, summary_html

NB = "\u00a0"

ROW: dict[str, Any] = {
    "tenants": 1000,
    "feasible": True,
    "processes": 2,
    "hosts": 1,
    "instance": "gp-2",
    "concurrency": "17/10/7",
    "conc_scale": 1.0,
    "interval_s": 270.0,
    "cost_month": 145.0,
    "cost_per_tenant": 0.145,
    "capacity_per_min": 447.87,
    "staleness_q_s": 282.25,
    "cpu_pct_host": 1.83,
    "ram_gb_host": 0.082,
    "bottleneck": "workers",
    "bottleneck_ratio": 0.5975,
    "event_pass": True,
    "event_failed": "",
}


def test_capacity_rows_read_like_the_table_they_summarise() -> None:
    base = load_scenario("plan-b-1000")
    table = [
        ROW,
        {**ROW, "tenants": 20_000, "event_pass": False, "event_failed": "freshness"},
        {"tenants": 50_000, "feasible": False},
    ]
    rows, cls = capacity_rows(base, table)
    assert rows[0] == [
        "1,000",
        "✓ passes (simulated)",
        "plan-b, workers 17/10/7",
        "2",
        "1 × gp-2",
        f"4.5{NB}min",
        f"145{NB}USD/month",
        f"0.145{NB}USD/month",
        f"40{NB}%",
        f"workers, 60{NB}% busy",
    ]
    assert rows[1][:2] == ["20,000", "✗ simulated: fails freshness"]
    assert rows[2][:2] == ["50,000", "✗ nothing in the grid passes"]
    assert cls == ["pass", "fail", "fail"]


def test_claims_one_sentence_per_assumption() -> None:
    checks = [
        Check(
            "throughput 500 mailboxes/min (plan-b)",
            "500/min",
            "the plan's 10 s per job",
            "100/min",
            False,
        ),
        Check("capacity 1530 tenants (plan-b)", "1530", "the plan's 10 s per job", "490", False),
        Check(
            "throughput 500 mailboxes/min (plan-b)",
            "500/min",
            "the model's latency defaults",
            "915/min",
            True,
        ),
    ]
    text = claims_sentences(checks)
    assert text.count("<li>") == 2
    assert (
        "Under <b>the plan&#x27;s 10 s per job</b>, 0 of 2 of the plan's claims hold; not: "
        "capacity 1530 tenants (plan-b), throughput 500 mailboxes/min (plan-b).</li>"
    ) in text
    assert "latency defaults</b>, 1 of 1 of the plan's claims hold.</li>" in text


def test_provenance_names_measured_figures_and_placeholders() -> None:
    s = load_scenario("plan-b-1000")
    plain = provenance_html([s], None)
    assert "Uncalibrated defaults" in plain
    # Values come from the scenario, with their units.
    assert f"<code>cpu_ms_per_call</code> {s.resources.cpu_ms_per_call:g}{NB}ms" in plain
    assert f"gmail 0.15{NB}s" in plain
    path = Path(__file__).parents[3] / "simulator" / "calibrations" / "loadtest-mixed.yaml"
    cal = load_calibration(path)
    measured = provenance_html([apply(s, cal, path.name)], cal)
    assert measured.startswith("<p>Calibrated from: ")
    head, _, rest = measured.partition("Still placeholders:")
    assert "gmail latency" in head and "graph latency" in head
    assert "<code>rss_base_mb</code>" in head and "<code>rss_base_mb</code>" not in rest


def test_more_than_one_sweep_gets_one_sentence_each() -> None:
    base = load_scenario("plan-b-1000")
    failed = {"tenants": 5000, "feasible": False}
    dearer = {**ROW, "tenants": 3000, "processes": 4, "hosts": 2, "cost_month": 290.0}
    sweeps = [
        (base, "the model's latency defaults", [ROW], 3200),
        (base, "the plan's 10 s per job", [ROW, {**ROW, "tenants": 1500}, failed], 3200),
        (base, "a third assumption", [ROW, dearer], 3200),
    ]
    page = summary_html(sweeps, [], [], [base], None)
    assert page.count('id="summary-table"') == 1
    assert (
        f"Under the plan&#x27;s 10 s per job, the cheapest passing configurations all cost "
        f"145{NB}USD/month; processes per tenant count: 1,000: 2, 1,500: 2. Nothing passes "
        "for 5,000 tenants.</p>"
    ) in page
    assert (
        f"Under a third assumption, the cheapest passing configurations are 1,000: 2 on "
        f"1 × gp-2, 145{NB}USD/month; 3,000: 4 on 2 × gp-2, 290{NB}USD/month.</p>"
    ) in page

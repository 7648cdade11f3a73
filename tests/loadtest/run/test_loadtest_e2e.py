"""The whole load test, short: every service started and stopped again, Locust's and our
report written, nothing lost, and the model within 30 % of the light level."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import psycopg
import redis

from loadtest.run.orchestrate import RunOptions, run_load_test
from tests.conftest import PG_ADMIN, REDIS_URL


def test_short_run_of_all_three_providers(tmp_path: Path) -> None:
    said: list[str] = []
    before = _run_databases()
    # Other tests' servers (a session's Dovecot) may be running already.
    me = psutil.Process(os.getpid())
    already = {p.pid for p in me.children(recursive=True)}
    started = time.monotonic()
    result = run_load_test(
        RunOptions(
            scenario="ci",
            # The light level is the one checked: it gets the longest measured window.
            duration_s=(35.0, 20.0, 20.0),
            settle_s=12.0,
            out=tmp_path,
            name="ci",
            replications=2,
            idle_s=3.0,
            progress=False,
            admin_dsn=PG_ADMIN,
            redis_url=REDIS_URL,
        ),
        said.append,
    )
    elapsed = time.monotonic() - started
    out = tmp_path / "ci"
    for name in (
        "index.html", "locust_report.html", "locust_stats.csv", "locust_stats_history.csv",
        "locust_failures.csv", "comparison.csv", "verdicts.csv", "calibration.yaml",
        "report.json", "plan.json", "raw/samples.json.gz",
    ):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    assert {p for p in result.plan.providers()} == {"gmail", "graph", "imap"}
    # Lag events per provider and tier in Locust's own statistics.
    stats = json.loads((out / "locust_stats.json").read_text())
    names = {e["name"] for e in stats["entries"]}
    assert {"lag gmail/high", "lag graph/high", "lag imap/high"} <= names
    assert "light" in {e["type"] for e in stats["entries"]}
    # Every delivered message stored, once; the store equals the providers.
    assert result.integrity.ok, result.integrity
    assert result.integrity.stored > 1000
    # Clean shutdown: no child left, the run's database and Redis keys gone.
    left = [p for p in me.children(recursive=True) if p.pid not in already]
    assert left == [], left
    raw = json.loads((out / "raw" / "run.json").read_text())
    assert raw["record"]["started_clean"]
    assert _run_databases() == before
    prefix = raw["record"]["prefix"]
    assert not list(redis.Redis.from_url(REDIS_URL).scan_iter(match=f"{prefix}*"))
    # The light level: the scenario's own prediction within 30 % of the measurement.
    light = {r.key: r for r in result.before if r.level == "light"}
    for key in ("throughput_per_min", "msg_lag_p50", "staleness_p50_all"):
        assert abs(light[key].rel_error) <= 0.30, (key, light[key])
    after = {r.key: r for r in result.after if r.level == "light"}
    for key in ("cpu_core_per_process", "rss_mb_process"):
        assert abs(after[key].rel_error) <= 0.30, (key, after[key])
    # A guard against a hang, not a speed target (the machine's load varies by ±30 %).
    assert elapsed < 400, f"the short run took {elapsed:.0f} s"


def _run_databases() -> set[str]:
    with psycopg.connect(PG_ADMIN) as db:
        rows = db.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'mailsync_loadtest_%'"
        ).fetchall()
    return {r[0] for r in rows}

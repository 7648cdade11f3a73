"""The analysis side of a load test: settings derived from the scenario, the timeline, the
histogram turned into samples, the comparison and its verdicts (pure)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from daemon.metrics import REQUEST_BUCKETS
from loadtest.mock_providers.config import MockConfig
from loadtest.run.calibrate import histogram_samples, rss_fit
from loadtest.run.compare import (
    COMPARISON_COLUMNS,
    compare,
    comparison_frame,
    read_comparison,
    verdicts,
    verdicts_frame,
)
from loadtest.run.loadgen.config import LevelSpec, label_at, level_at
from loadtest.run.measure import Counters, Window
from loadtest.run.sampler import Samples, parse_metrics
from loadtest.run.settings import (
    imap_folders,
    latency_dist,
    mock_config,
    policy_env,
    proxy_delay,
    warmup_estimate_s,
)
from simulator.inputs.distributions import Constant, Empirical, Lognormal
from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Criteria


def test_the_scenario_becomes_daemon_and_mock_settings() -> None:
    s = load_scenario("mixed-imap").updated(
        {
            "daemon.overrides": {"concurrency.high": 25, "retry": {"cap_s": 60}},
            "providers.gmail.latency_by_method": {
                "messages.get": {"kind": "constant", "value": 0.2}
            },
            "providers.imap.folders": 3,
        }
    )
    env = policy_env(s)
    assert env["MAILSYNC_POLICY__PROFILE"] == "plan-b"
    assert env["MAILSYNC_POLICY__CONCURRENCY__HIGH"] == "25"
    assert env["MAILSYNC_POLICY__RETRY__CAP_S"] == "60"
    cfg = mock_config(s, seed=4)
    MockConfig.model_validate(cfg)  # the mock accepts it
    assert cfg["latency"]["providers"]["gmail"] == {
        "dist": "lognormal", "mean_ms": 150.0, "sigma": 0.5
    }  # fmt: skip
    assert cfg["latency"]["methods"]["gmail:messages.get"] == {
        "dist": "constant", "mean_ms": 200.0
    }  # fmt: skip
    assert cfg["quotas"]["preset"] == "documented"
    assert mock_config(s, 4, latency=False)["latency"]["providers"] == {}
    assert latency_dist(Empirical(samples=[0.1, 0.3]))["dist"] == "empirical"
    # Lognormal mean 80 ms, sigma 0.5: the proxy takes the median.
    assert proxy_delay(s) == f"lognormal:{80 * math.exp(-0.125):.3f}ms:0.5"
    assert proxy_delay(s.updated({"providers.imap.latency_s": Constant(value=0.05)})) == (
        "50.000ms"
    )
    assert imap_folders(s) == ["INBOX", "Archive", "Projects"]


def test_a_long_warm_up_is_foreseen() -> None:
    s = load_scenario("plan-b-1000")
    assert warmup_estimate_s(s, 100, 1_000) < 60
    # 10,000 Gmail-heavy mailboxes of 200 messages: quota-bound for many minutes.
    assert warmup_estimate_s(s, 10_000, 2_000_000) > 600


def test_timeline_labels() -> None:
    levels = (
        LevelSpec("light", 10, 0, 60, 20, 20),
        LevelSpec("overload", 30, 60, 60, 20, 20),
    )
    assert label_at(levels, -1) == "warm-up"
    assert label_at(levels, 5) == "settling light"
    assert label_at(levels, 25) == "light"
    assert label_at(levels, 70) == "settling overload"
    assert label_at(levels, 130) == "drain"
    assert level_at(levels, 61) is levels[1] and level_at(levels, 200) is None


def test_histogram_samples_keep_the_mean_and_the_shape() -> None:
    rng = random.Random(1)
    values = [rng.lognormvariate(math.log(0.1), 0.5) for _ in range(20_000)]
    cum = [sum(v <= b for v in values) for b in REQUEST_BUCKETS]
    got = histogram_samples(REQUEST_BUCKETS, cum, sum(values), 400)
    assert len(got) == 400
    assert np.mean(got) == pytest.approx(np.mean(values), rel=1e-6)
    for q in (50, 90, 99):
        assert np.percentile(got, q) == pytest.approx(np.percentile(values, q), rel=0.06)
    assert histogram_samples(REQUEST_BUCKETS, [0] * len(REQUEST_BUCKETS), 0.0) == []


def test_counter_increases_survive_a_restarted_process() -> None:
    text = '# TYPE mailsync_api_calls counter\nmailsync_api_calls_total{provider="gmail"} {v}\n'
    s = Samples()
    for t, d, v in [(0, 0, 10), (5, 0, 30), (10, 0, 5), (15, 0, 25), (0, 1, 100), (15, 1, 160)]:
        s.metrics.append((float(t), d, parse_metrics(text.replace("{v}", str(v)))))
    c = Counters(s)
    w = Window("all", 0, 15)
    # Process 0: +20, restart (counts 5 from zero), +20; process 1: +60.
    assert c.delta(w, "mailsync_api_calls_total", provider="gmail") == 105
    assert c.delta(w, "mailsync_api_calls_total", provider="graph") == 0


def test_comparison_rows_and_verdicts() -> None:
    measured = {"light": {"throughput_per_min": 100.0, "cpu_pct_host": 90.0, "error_rate": 0.0}}
    predicted = {
        "light": {
            "throughput_per_min": (110.0, 2.0),
            "cpu_pct_host": (70.0, 1.0),
            "error_rate": (0.0, 0.0),
            "staleness_q": (250.0, 5.0),
        }
    }
    rows = {r.key: r for r in compare(measured, predicted, ["light"])}
    assert rows["throughput_per_min"].rel_error == pytest.approx(0.10)
    assert rows["throughput_per_min"].ok is True
    assert rows["cpu_pct_host"].ok is None  # no bound
    assert rows["error_rate"].rel_error == 0.0
    v = {x.criterion: x for x in verdicts(measured, predicted, ["light"], Criteria(), True)}
    assert v["CPU"].measured_ok is False and v["CPU"].predicted_ok is True and not v["CPU"].agree
    assert v["throughput"].agree and v["errors"].agree
    # Freshness was not measured: it fails there, and the sides disagree.
    assert not v["freshness"].measured_ok and v["freshness"].predicted_ok


def test_comparison_frame_is_the_csv_and_reads_back(tmp_path: Path) -> None:
    measured = {
        "light": {"throughput_per_min": 100.0, "msg_lag_p50": 4.0},
        "overload": {"throughput_per_min": 300.0, "msg_lag_p50": 40.0},
    }
    before = {
        "light": {"throughput_per_min": (120.0, 3.0), "msg_lag_p50": (5.0, 0.5)},
        "overload": {"throughput_per_min": (330.0, 6.0), "msg_lag_p50": (30.0, 2.0)},
    }
    after = {
        "light": {"throughput_per_min": (104.0, 3.0), "msg_lag_p50": (4.2, 0.5)},
        "overload": {"throughput_per_min": (310.0, 6.0), "msg_lag_p50": (38.0, 2.0)},
    }
    levels = ["overload", "light"]  # run order need not be alphabetical
    f = comparison_frame(compare(measured, before, levels), compare(measured, after, levels))
    assert list(f.columns) == list(COMPARISON_COLUMNS)
    assert len(f) == 8
    row = f[(f.calibrated == "no") & (f.level == "light") & (f.figure == "throughput_per_min")]
    assert row["rel_error"].item() == pytest.approx(0.20)
    assert row["predicted_ci95"].item() == 3.0
    assert row["unit"].item() == "syncs/min" and row["within_bound"].item() is False
    lag = f[(f.calibrated == "yes") & (f.level == "overload") & (f.figure == "msg_lag_p50")]
    assert lag["rel_error"].item() == pytest.approx(-0.05)
    assert lag["within_bound"].item() is True
    f.to_csv(tmp_path / "comparison.csv", index=False)
    back = read_comparison(tmp_path)
    assert list(back["level"].cat.categories) == ["overload", "light"]
    assert back["rel_error"].tolist() == pytest.approx(f["rel_error"].tolist())
    v = verdicts_frame(
        verdicts(measured, before, levels, Criteria(), True),
        verdicts(measured, after, levels, Criteria(), True),
    )
    thr = v[(v.calibrated == "yes") & (v.level == "light") & (v.criterion == "throughput")]
    assert thr["measured"].item() == 100.0 and thr["predicted"].item() == 104.0


def test_lognormal_latency_reaches_the_mock_as_its_mean() -> None:
    assert latency_dist(Lognormal(mean=0.15, sigma=0.5)) == {
        "dist": "lognormal", "mean_ms": 150.0, "sigma": 0.5
    }  # fmt: skip


def test_memory_per_imap_connection_is_told_apart_from_memory_per_mailbox() -> None:
    # A daemon of 100 MB + 0.4 MB per job + 3.5 KB per mailbox + 500 KB per IMAP session.
    def rss(jobs: float, mailboxes: float, conns: float) -> float:
        return 100 + 0.4 * jobs + (3.5 * mailboxes + 500 * conns) / 1024

    # Levels: sessions grow with the mailboxes (a fifth on IMAP, 90 % of them pooled).
    levels = [(rss(j, m, 0.18 * m), j, m, 0.18 * m) for j, m in ((20, 720), (60, 2160), (90, 3120))]
    # The warm-up, provider after provider: mailboxes, no session yet, then the IMAP ones.
    warm = [
        (rss(j, m, c), j, m, c) for j, m, c in ((150, 1400, 0), (150, 2500, 0), (80, 3120, 600))
    ]
    fit = rss_fit(100, levels + warm, 300)
    assert fit["rss_per_job_mb"] == pytest.approx(0.4, rel=1e-6)
    assert fit["rss_per_mailbox_kb"] == pytest.approx(3.5, rel=1e-6)
    assert fit["rss_per_imap_connection_kb"] == pytest.approx(500, rel=1e-6)
    # From the levels alone the two cannot be told apart: the session's memory is the given
    # constant and the rest is put on the mailboxes.
    only = rss_fit(100, levels, 300)
    assert "rss_per_imap_connection_kb" not in only
    assert only["rss_per_mailbox_kb"] > 3.5

"""Entry point of the load generator process: ``local``, ``master`` or ``worker``.

``local`` runs every user here; ``master`` drives K ``worker`` processes (Locust's
distributed mode, for load beyond one core) and keeps the statistics; both write Locust's
CSV files, its HTML report and a JSON of the final statistics into ``<out>/locust/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import ssl
import sys
import time
from pathlib import Path

import gevent
import httpx
import locust  # noqa: F401  # first: Locust patches the standard library with gevent
import redis
from locust.env import Environment
from locust.html import get_html_report
from locust.runners import STATE_STOPPED, Runner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV, StatsCSVFileWriter, stats_history

from loadtest.run.loadgen.config import LoadgenConfig
from loadtest.run.loadgen.lag import LagTracker
from loadtest.run.loadgen.shape import LevelShape
from loadtest.run.loadgen.users import Context, TenantUser


def _context(cfg: LoadgenConfig, env: Environment, name: str) -> Context:
    ctx_ssl = None
    if cfg.imap_ca_file:
        ctx_ssl = ssl.create_default_context(cafile=cfg.imap_ca_file)
    lag = LagTracker(
        cfg.database_url,
        env.events.request.fire,
        cfg.levels,
        cfg.t0,
        Path(cfg.out) / "lag" / name,
        cfg.lag_timeout_s,
        cfg.poll_s,
    )
    http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=200))
    return Context(cfg, http, redis.Redis.from_url(cfg.redis_url), lag, ctx_ssl)


def _write_reports(env: Environment, out: Path) -> None:
    base = out / "locust"
    stats = StatsCSV(env, PERCENTILES_TO_REPORT)
    for suffix, method in (
        ("stats", stats.requests_csv),
        ("failures", stats.failures_csv),
        ("exceptions", stats.exceptions_csv),
    ):
        with (base.parent / f"{base.name}_{suffix}.csv").open("w", newline="") as f:
            method(csv.writer(f))
    (base.parent / "locust_report.html").write_text(get_html_report(env, show_download_link=False))
    rows = []
    for entry in env.stats.entries.values():
        rows.append(
            {
                "type": entry.method,
                "name": entry.name,
                "requests": entry.num_requests,
                "failures": entry.num_failures,
                "median_ms": entry.median_response_time,
                "p95_ms": entry.get_response_time_percentile(0.95),
                "avg_ms": entry.avg_response_time,
                "max_ms": entry.max_response_time,
            }
        )
    failures = [
        {"type": e.method, "name": e.name, "error": str(e.error), "count": e.occurrences}
        for e in env.stats.errors.values()
    ]
    (base.parent / "locust_stats.json").write_text(
        json.dumps({"entries": rows, "failures": failures}, indent=1)
    )


def _run_master(cfg: LoadgenConfig, env: Environment, runner: Runner, out: Path) -> None:
    # Locust's files go beside the run's report, the lag records stay under ``out``.
    writer = StatsCSVFileWriter(
        env, PERCENTILES_TO_REPORT, str(out.parent / "locust"), full_history=True
    )
    gevent.spawn(writer)
    gevent.spawn(stats_history, runner)
    if cfg.workers:
        deadline = time.time() + 60
        while runner.worker_count < cfg.workers:  # type: ignore[attr-defined]  # MasterRunner
            if time.time() > deadline:
                raise SystemExit(f"only {runner.worker_count} of {cfg.workers} workers connected")  # type: ignore[attr-defined]
            gevent.sleep(0.2)
    gevent.sleep(max(0.0, cfg.t0 - time.time()))
    runner.start_shape()
    _note("levels started")
    gevent.sleep(1.0)
    while runner.state != STATE_STOPPED:
        gevent.sleep(0.5)
    _note("levels done, users stopped")
    # Users have stopped; lag trackers go on until the last deliveries are stored.
    gevent.sleep(cfg.drain_s)
    writer.stats_history_flush()
    writer.close_files()
    _write_reports(env, out.parent)
    _note("reports written")
    runner.quit()


def _note(what: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """``local|master|worker CONFIG``."""
    ap = argparse.ArgumentParser(prog="python -m loadtest.run.loadgen")
    ap.add_argument("mode", choices=["local", "master", "worker"])
    ap.add_argument("config", type=Path)
    ap.add_argument("--name", default="local")
    args = ap.parse_args(argv)
    cfg = LoadgenConfig.load(args.config)
    out = Path(cfg.out)
    (out / "locust").parent.mkdir(parents=True, exist_ok=True)
    env = Environment(
        user_classes=[TenantUser],
        shape_class=LevelShape(cfg.levels) if args.mode != "worker" else None,
    )
    ctx = _context(cfg, env, args.name)
    TenantUser.shared = ctx
    if args.mode == "worker":
        runner: Runner = env.create_worker_runner("127.0.0.1", cfg.master_port)
    elif args.mode == "master":
        runner = env.create_master_runner("127.0.0.1", cfg.master_port)
    else:
        runner = env.create_local_runner()
    if args.mode != "master":
        ctx.lag.start()
    try:
        if args.mode == "worker":
            runner.greenlet.join()
        else:
            _run_master(cfg, env, runner, out)
    finally:
        ctx.lag.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

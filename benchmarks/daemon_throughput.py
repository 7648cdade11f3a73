"""One daemon process's sustained incremental syncs/min and CPU ms per sync, against the mock.

Starts the mock providers and one ``mailsync daemon run`` as separate processes, registers
N mailboxes (half Gmail, half Graph), lets the daemon do their first full sync, then keeps
every mailbox due (interval 1 s, large batches) so the workers are saturated with incremental
syncs, and measures over a window: finished syncs per minute, the daemon process's CPU per
sync and its RSS. Right after each window, with the daemon still busy, it measures the CPU of
a no-op job through the daemon's own queue wrapper (``TierQueues``/``TierWorkers``) and prints
CPU per sync as a multiple of it, so the drift of a shared machine cancels out. The no-op job
lives as a sync's job does: added in batches of the profile's claim size (the scheduler's
``addBulk``, part of every sync's CPU), run, and kept or trimmed as the daemon's settings say;
"no-op ms" is adding and running it, "run only" running it alone (the yardstick before
the add was counted), each with the ratio to it. Then, optionally, the
memory check: 10,000 mailboxes registered and 500 jobs in flight (slow provider calls, 500
workers).

    python benchmarks/daemon_throughput.py                       # zero latency and 100 ms
    python benchmarks/daemon_throughput.py --latency-ms 0 --window 60 --skip-memory
    python benchmarks/daemon_throughput.py --latency-ms 100 --factor 1 --factor 4 --factor 8
    python benchmarks/daemon_throughput.py --latency-ms 0 --skip-memory --profile profile.txt
    python benchmarks/daemon_throughput.py --memory-only

``--factor`` multiplies the profile's worker counts (every tier) and prints each run's
syncs/min as a multiple of the first factor's. ``--profile`` samples the daemon with py-spy
during the window and prints where its CPU goes, per sync (needs py-spy and ptrace rights).

Needs PostgreSQL and Redis on 127.0.0.1 (creates and drops its own database).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import psutil
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))

from daemon_profile import profile_table, start_profile  # noqa: E402
from queue_engine import run as queue_run  # noqa: E402

from daemon.app import run_loop  # noqa: E402
from daemon.crypto import CredentialCipher, new_key  # noqa: E402
from daemon.policy import PLAN_B  # noqa: E402
from daemon.providers.base import Credentials  # noqa: E402
from daemon.settings import Settings  # noqa: E402
from daemon.store.db import create_pool, migrate  # noqa: E402
from daemon.store.mailboxes import MailboxStore  # noqa: E402

PG_ADMIN = os.environ.get("MAILSYNC_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("MAILSYNC_BENCH_REDIS", "redis://127.0.0.1:6379/0")
# The completed and failed jobs the daemon keeps by default (bullmq trims past them).
KEEP = (
    Settings.model_fields["keep_completed_jobs"].default,
    Settings.model_fields["keep_failed_jobs"].default,
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bench:
    """Mock, database and one daemon process for one measurement."""

    def __init__(self, mailboxes: int, latency: dict[str, Any], env: dict[str, str]) -> None:
        self.n = mailboxes
        self.latency = latency
        self.extra_env = env
        self.db_name = f"mailsync_bench_{uuid.uuid4().hex[:8]}"
        # The admin URL with this database's name (a Unix socket as ``?host=/run/...`` kept).
        self.dsn = urlsplit(PG_ADMIN)._replace(path="/" + self.db_name).geturl()
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.key = new_key()
        self.port = _free_port()
        self.mock_url = f"http://127.0.0.1:{self.port}"
        self.mock: subprocess.Popen[bytes] | None = None
        self.daemon: subprocess.Popen[bytes] | None = None
        self.pool: asyncpg.Pool | None = None

    async def __aenter__(self) -> Bench:
        # Popen returns at once; the benchmark waits for readiness over HTTP below.
        self.mock = subprocess.Popen(  # noqa: ASYNC220
            [
                sys.executable,
                "-m",
                "loadtest.mock_providers.cli",
                "run",
                "--port",
                str(self.port),
                "--seed",
                "1",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        async with httpx.AsyncClient(base_url=self.mock_url, timeout=120) as ctl:
            for _ in range(200):
                try:
                    await ctl.get("/_mock/stats")
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            await ctl.put("/_mock/config", json={"latency": self.latency, "quotas": {"scale": 100}})
            creds = (
                await ctl.post(
                    "/_mock/populate",
                    json={
                        "gmail": self.n // 2,
                        "graph": self.n - self.n // 2,
                        "seed": 1,
                        "size": {"dist": "lognormal", "median": 10, "sigma": 0.5, "max": 40},
                    },
                )
            ).json()
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{self.db_name}"')
        await admin.close()
        await asyncio.to_thread(migrate, self.dsn)
        self.pool = await create_pool(self.dsn, 1, 4)
        store = MailboxStore(self.pool)
        tenant = await store.create_tenant("bench", sync_interval_s=1)
        cipher = CredentialCipher(self.key)
        rows = [
            (
                tenant["id"],
                c["provider"],
                c["address"],
                cipher.encrypt(Credentials({"refresh_token": c["refresh_token"]})),
                {},
            )
            for c in creds
        ]
        for i in range(0, len(rows), 2000):
            await store.create_mailboxes_bulk(rows[i : i + 2000], time.time())
        return self

    def start_daemon(self, env: dict[str, str]) -> psutil.Process:
        """Start ``mailsync daemon run`` with the benchmark's settings."""
        full = {k: v for k, v in os.environ.items() if not k.startswith("MAILSYNC_")}
        u = self.mock_url
        full.update(
            {
                "MAILSYNC_DATABASE_URL": self.dsn,
                "MAILSYNC_REDIS_URL": REDIS,
                "MAILSYNC_REDIS_PREFIX": self.prefix,
                "MAILSYNC_ENCRYPTION_KEY": self.key,
                "MAILSYNC_API_ENABLED": "false",
                "MAILSYNC_LOG_LEVEL": "error",
                "MAILSYNC_GMAIL__BASE_URL": u,
                "MAILSYNC_GMAIL__TOKEN_URL": f"{u}/token",
                "MAILSYNC_GMAIL__CLIENT_ID": "mock-gmail-client",
                "MAILSYNC_GMAIL__CLIENT_SECRET": "mock-gmail-secret",
                "MAILSYNC_GRAPH__BASE_URL": f"{u}/v1.0",
                "MAILSYNC_GRAPH__TOKEN_URL": f"{u}/common/oauth2/v2.0/token",
                "MAILSYNC_GRAPH__CLIENT_ID": "mock-graph-client",
                "MAILSYNC_GRAPH__CLIENT_SECRET": "mock-graph-secret",
                "MAILSYNC_POLICY__QUOTA_SCALE": "100",
                "MAILSYNC_POLICY__SCHEDULER_INTERVAL_S": "0.25",
                "MAILSYNC_POLICY__BATCH_SIZE": "500",
                # Every mailbox is kept due, so on a slow machine jobs wait in the queue longer
                # than the default 120 s, and the repair would check each of them with a Redis
                # call every cycle: a cost of the forced backlog, not of a sync.
                "MAILSYNC_REQUEUE_AFTER_S": "900",
            }
        )
        full.update(self.extra_env)
        full.update(env)
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "mailsync", "daemon", "run"],
            cwd=ROOT,
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return psutil.Process(self.daemon.pid)

    async def count(self, sql: str, *args: Any) -> int:
        """One integer from the database."""
        assert self.pool is not None
        return int(await self.pool.fetchval(sql, *args))

    async def __aexit__(self, *exc: object) -> None:
        for proc in (self.daemon, self.mock):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if self.pool is not None:
            await self.pool.close()
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        await admin.close()
        import redis

        r = redis.Redis.from_url(REDIS)
        for key in r.scan_iter(match=f"{self.prefix}*", count=1000):
            r.delete(key)


async def throughput(
    mailboxes: int,
    latency_ms: float,
    window_s: float,
    factor: float,
    profile: str | None,
    noop_jobs: int,
) -> dict[str, float]:
    """Sustained incremental syncs/min of one daemon process with the profile's worker counts
    times ``factor``."""
    latency = (
        {"dist": "constant", "mean_ms": 0}
        if latency_ms == 0
        else {"dist": "lognormal", "mean_ms": latency_ms, "sigma": 0.5}
    )
    base = PLAN_B.concurrency
    workers = [max(1, round(c * factor)) for c in (base.high, base.normal, base.low)]
    env = {
        f"MAILSYNC_POLICY__CONCURRENCY__{tier}": str(n)
        for tier, n in zip(("HIGH", "NORMAL", "LOW"), workers, strict=True)
    }
    async with Bench(mailboxes, latency, env) as b:
        proc = b.start_daemon({})
        with tqdm(total=mailboxes, desc="first (full) sync", unit="mbx") as bar:
            done = 0
            while done < mailboxes:
                await asyncio.sleep(0.5)
                now_done = await b.count(
                    "SELECT count(*) FROM mailboxes WHERE last_success_at IS NOT NULL"
                )
                bar.update(now_done - done)
                done = now_done
        # Warm-up, then the measured window of incremental syncs.
        await asyncio.sleep(5)
        runs0 = await b.count("SELECT count(*) FROM sync_runs WHERE kind = 'incremental'")
        spy = start_profile(proc.pid, window_s, profile) if profile else None
        cpu0 = sum(proc.cpu_times()[:2])
        t0 = time.monotonic()
        rss_peak = 0
        with tqdm(
            total=int(window_s), desc=f"measuring (latency {latency_ms} ms)", unit="s"
        ) as bar:
            while time.monotonic() - t0 < window_s:
                await asyncio.sleep(1)
                rss_peak = max(rss_peak, proc.memory_info().rss)
                bar.update(1)
        wall = time.monotonic() - t0
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        runs = await b.count("SELECT count(*) FROM sync_runs WHERE kind = 'incremental'") - runs0
        errors = await b.count("SELECT count(*) FROM sync_runs WHERE error IS NOT NULL")
        if spy is not None:
            await asyncio.to_thread(spy.wait)
        # The yardstick, under the same conditions: a no-op job through the daemon's queue
        # wrapper in this process, while the daemon is still busy beside it.
        # Its whole life as a sync job has it: added in a claim's batch (the scheduler's
        # cost), run, and kept or trimmed as the daemon's settings say.
        noop = await queue_run(
            noop_jobs, PLAN_B.concurrency.total, 0.0, REDIS, KEEP, PLAN_B.batch_size
        )
        return {
            "noop_ms": (noop["add_cpu_ms_per_1000"] + noop["cpu_ms_per_1000"]) / 1000,
            "noop_run_ms": noop["cpu_ms_per_1000"] / 1000,
            "workers": sum(workers),
            "syncs": runs,
            "syncs_per_min": runs / wall * 60,
            "cpu_ms_per_sync": cpu * 1000 / max(runs, 1),
            "cpu_share": cpu / wall,
            "rss_mb": rss_peak / 2**20,
            "errors": errors,
        }


async def memory(mailboxes: int, in_flight: int, call_s: float) -> dict[str, float]:
    """RSS with many mailboxes registered and many jobs in flight."""
    latency = {"dist": "constant", "mean_ms": call_s * 1000}
    env = {
        "MAILSYNC_POLICY__CONCURRENCY__HIGH": str(in_flight),
        "MAILSYNC_POLICY__CONCURRENCY__NORMAL": "0",
        "MAILSYNC_POLICY__CONCURRENCY__LOW": "0",
        # Every mailbox on the high queue: synced recently, so the rule says high.
        "MAILSYNC_POLICY__LOW_AFTER_H": "1000000",
        "MAILSYNC_POLICY__NORMAL_AFTER_H": "999999",
        "MAILSYNC_POLICY__BATCH_SIZE": "2000",
        "MAILSYNC_DB_POOL_MAX": "60",
    }
    async with Bench(mailboxes, latency, env) as b:
        assert b.pool is not None
        await b.pool.execute("UPDATE mailboxes SET last_success_at = now()")
        proc = b.start_daemon({})
        peak_rss, peak_running = 0, 0
        with tqdm(total=60, desc=f"{mailboxes} mailboxes, {in_flight} workers", unit="s") as bar:
            for _ in range(60):
                await asyncio.sleep(1)
                peak_rss = max(peak_rss, proc.memory_info().rss)
                peak_running = max(
                    peak_running,
                    await b.count("SELECT count(*) FROM mailboxes WHERE state = 'running'"),
                )
                bar.update(1)
        return {
            "rss_mb": peak_rss / 2**20,
            "jobs_in_flight": peak_running,
            "registered": await b.count("SELECT count(*) FROM mailboxes"),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mailboxes", type=int, default=2000)
    ap.add_argument(
        "--latency-ms",
        type=float,
        action="append",
        help="provider latency per call (repeatable); default 0 and 100",
    )
    ap.add_argument("--window", type=float, default=60.0, help="measured seconds")
    ap.add_argument(
        "--factor",
        type=float,
        action="append",
        help="multiply plan-b's workers per tier (repeatable); default 1",
    )
    ap.add_argument("--noop-jobs", type=int, default=10000, help="jobs of the no-op yardstick")
    ap.add_argument("--profile", default=None, help="py-spy output file (first run only)")
    ap.add_argument("--memory-only", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    if not args.memory_only:
        print(
            f"{'latency ms':>10} {'workers':>8} {'syncs/min':>10} {'× first':>8} "
            f"{'CPU ms/sync':>12} {'no-op ms':>9} {'× no-op':>8} {'run only':>9} "
            f"{'× run':>6} {'CPU share':>10} {'RSS MB':>8} {'errors':>7}"
        )
        profile = args.profile
        for lat in args.latency_ms or [0.0, 100.0]:
            first: float | None = None
            for factor in args.factor or [1.0]:
                r = run_loop(
                    throughput(args.mailboxes, lat, args.window, factor, profile, args.noop_jobs)
                )
                first = first or r["syncs_per_min"]
                print(
                    f"{lat:>10.0f} {r['workers']:>8.0f} {r['syncs_per_min']:>10,.0f} "
                    f"{r['syncs_per_min'] / first:>8.2f} {r['cpu_ms_per_sync']:>12.2f} "
                    f"{r['noop_ms']:>9.3f} {r['cpu_ms_per_sync'] / r['noop_ms']:>8.2f} "
                    f"{r['noop_run_ms']:>9.3f} {r['cpu_ms_per_sync'] / r['noop_run_ms']:>6.2f} "
                    f"{r['cpu_share']:>10.2f} {r['rss_mb']:>8.0f} {r['errors']:>7.0f}",
                    flush=True,
                )
                if profile:
                    print(profile_table(profile, r["cpu_ms_per_sync"]), flush=True)
                    profile = None
    if not args.skip_memory:
        r = run_loop(memory(10_000, 500, 4.0))
        print(
            f"memory: {r['registered']:.0f} mailboxes registered, peak {r['jobs_in_flight']:.0f} "
            f"jobs in flight, peak RSS {r['rss_mb']:.0f} MB (target < 150 MB)"
        )


if __name__ == "__main__":
    main()

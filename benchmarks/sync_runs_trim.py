"""How fast the trim deletes expired ``sync_runs`` rows, against how fast one process writes
them (docs/daemon.md, "Outages and background loops").

Creates a scratch database, inserts N expired run records, runs ``Scheduler.trim`` once and
prints rows deleted per second and the ratio to the write rate of one daemon process at its
measured peak (16,000 syncs/min, one row per sync): the trim keeps up when the ratio is far
above 1.

    python benchmarks/sync_runs_trim.py [--rows 500000]

Needs PostgreSQL on 127.0.0.1 (creates and drops its own database).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.metrics import Metrics  # noqa: E402
from daemon.policy import PLAN_B  # noqa: E402
from daemon.scheduler import Scheduler  # noqa: E402
from daemon.store.db import create_pool, migrate  # noqa: E402
from daemon.store.mailboxes import MailboxStore  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PEAK_SYNCS_PER_MIN = 16_000


async def measure(rows: int) -> float:
    """Seconds one trim takes to delete ``rows`` expired records."""
    name = f"mailsync_trim_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        await asyncio.to_thread(migrate, dsn)
        pool = await create_pool(dsn, 1, 4)
        store = MailboxStore(pool)
        tenant = await store.create_tenant("bench")
        mailbox = await pool.fetchval(
            """INSERT INTO mailboxes (tenant_id, provider, address, credentials)
               VALUES ($1, 'gmail', 'bench@example.com', '\\x00') RETURNING id""",
            tenant["id"],
        )
        await pool.execute(
            """INSERT INTO sync_runs (mailbox_id, run_seq, kind, tier, worker, started_at,
                                      finished_at)
               SELECT $1, g, 'incremental', 'high', 'bench', now() - interval '10 days',
                      now() - interval '10 days'
               FROM generate_series(1, $2) g""",
            mailbox,
            rows,
        )
        # Only the trim step is used: it needs the store, the clock and the retention.
        scheduler = Scheduler(store, None, None, PLAN_B, time.time, Metrics(), 120, 3600, 3)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        deleted = await scheduler.trim()
        elapsed = time.perf_counter() - t0
        assert deleted == rows, deleted
        await pool.close()
        return elapsed
    finally:
        admin = await asyncpg.connect(ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=500_000)
    args = ap.parse_args()
    elapsed = asyncio.run(measure(args.rows))
    rate = args.rows / elapsed
    written = PEAK_SYNCS_PER_MIN / 60
    print(f"trim: {args.rows:,} expired rows in {elapsed:.2f} s = {rate:,.0f} rows/s")
    print(
        f"one process at {PEAK_SYNCS_PER_MIN:,} syncs/min writes {written:,.0f} rows/s: "
        f"trim/write ratio {rate / written:,.0f}x "
        f"({60 * written / rate:.2f} s of trimming per minute of writes)"
    )


if __name__ == "__main__":
    main()

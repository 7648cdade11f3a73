"""Confirms the queue engine's figures inside the daemon's own queue wrapper.

Enqueues N jobs on the high tier through ``TierQueues`` and drains them with ``TierWorkers``
at the given concurrency, for a no-op job and a job that sleeps (simulated I/O). Prints
jobs/s and worker CPU ms per 1,000 jobs. Needs Redis on 127.0.0.1:6379.

    python benchmarks/queue_engine.py --jobs 20000 --concurrency 34
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import uuid
from typing import Any

from tqdm import tqdm

from daemon.policy import PLAN_B, SyncKind, Tier, with_overrides
from daemon.queues import TierQueues, TierWorkers
from daemon.store.records import Claimed


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(
    jobs: int,
    concurrency: int,
    sleep_s: float,
    redis_url: str,
    keep: tuple[int, int] = (0, 0),
    batch: int = 1000,
) -> dict[str, float]:
    """Add ``jobs`` jobs in batches of ``batch`` (one ``addBulk`` each, as the scheduler
    adds a claim), then drain them; ``keep``: completed and failed jobs bullmq keeps.

    Returns jobs/s while draining, and this process's CPU per 1,000 jobs for adding them
    (``add_cpu_ms_per_1000``) and for running them (``cpu_ms_per_1000``).
    """
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    queues = TierQueues(redis_url, prefix, keep_completed=keep[0], keep_failed=keep[1])
    done = 0
    finished = asyncio.Event()
    bar = tqdm(total=jobs, desc=f"c={concurrency} sleep={sleep_s}s", unit="job", leave=False)

    async def processor(job: Any, token: str) -> None:
        nonlocal done
        if sleep_s:
            await asyncio.sleep(sleep_s)
        done += 1
        bar.update()
        if done == jobs:
            finished.set()

    add0 = _cpu()
    for start in range(0, jobs, batch):
        await queues.enqueue(
            Claimed(i, 1, Tier.HIGH, SyncKind.INCREMENTAL)
            for i in range(start, min(jobs, start + batch))
        )
    add = _cpu() - add0
    profile = with_overrides(PLAN_B, {"concurrency": {"high": concurrency, "normal": 0, "low": 0}})
    cpu0, t0 = _cpu(), time.perf_counter()
    workers = TierWorkers(redis_url, prefix, profile, processor, 30, 30, "bench")
    await finished.wait()
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    await workers.close(10)
    await queues.obliterate()
    await queues.close()
    bar.close()
    return {
        "jobs_per_s": jobs / wall,
        "cpu_ms_per_1000": cpu * 1e6 / jobs,
        "add_cpu_ms_per_1000": add * 1e6 / jobs,
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=34)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    print(f"{'job':>12} {'c':>5} {'jobs/s':>10} {'ideal':>8} {'worker CPU ms/1000 jobs':>24}")
    for sleep_s, c, n in (
        (0.0, args.concurrency, args.jobs),
        (0.05, args.concurrency, max(2000, args.jobs // 10)),
        (0.05, 500, args.jobs),
    ):
        r = asyncio.run(run(n, c, sleep_s, args.redis))
        ideal = f"{c / sleep_s:.0f}" if sleep_s else "-"
        label = "no-op" if not sleep_s else f"{int(sleep_s * 1000)} ms"
        print(
            f"{label:>12} {c:>5} {r['jobs_per_s']:>10.0f} {ideal:>8} {r['cpu_ms_per_1000']:>24.0f}"
        )


if __name__ == "__main__":
    main()

"""The load itself: the plan's levels driven through the daemon's API by Locust (in
processes of its own), with optional chaos (a daemon killed and restarted now and then) and
a progress line every ten seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil
import redis

from loadtest.run import settings
from loadtest.run.loadgen.config import LevelSpec, LoadgenConfig, MailboxSpec, TenantSpec
from loadtest.run.plan import LoadPlan
from loadtest.run.sampler import Sampler
from loadtest.run.services import (
    Child,
    ServiceError,
    free_port,
    postgres_processes,
    python,
    redis_processes,
)
from loadtest.run.stack import Stack

Say = Callable[[str], None]


def process_groups(
    stack: Stack, loadgen: Sequence[Child]
) -> Callable[[], dict[str, list[psutil.Process]]]:
    """The sampler's process groups (PostgreSQL, Redis, the mock providers, Dovecot and the
    load generator), looked up again on each call."""
    rd = redis_processes()
    # PostgreSQL starts a process per connection: look again every few seconds.
    pg: list[psutil.Process] = []
    seen = [0.0]

    def children(c: Child | None) -> list[psutil.Process]:
        if c is None or (p := c.psutil()) is None:
            return []
        try:
            return [p, *p.children(recursive=True)]
        except psutil.Error:
            return [p]

    def groups() -> dict[str, list[psutil.Process]]:
        if time.monotonic() - seen[0] > 5:
            seen[0] = time.monotonic()
            pg[:] = postgres_processes()
        out = {"postgres": list(pg), "redis": rd, "mock": children(stack.mock)}
        if stack.dovecot is not None and stack.dovecot.pid is not None:
            with_proxy = children(stack.proxy)
            try:
                dv = psutil.Process(stack.dovecot.pid)
                out["dovecot"] = [dv, *dv.children(recursive=True), *with_proxy]
            except psutil.Error:
                out["dovecot"] = with_proxy
        out["loadgen"] = [p for c in loadgen for p in children(c)]
        return out

    return groups


def _loadgen_config(
    plan: LoadPlan, stack: Stack, out: Path, workers: int, t0: float
) -> LoadgenConfig:
    s = plan.scenario
    by_index = {m.index: m for m in plan.mailboxes}
    folders = settings.imap_folders(s)
    tenants = []
    for t in plan.tenants:
        boxes = []
        for i in t.mailboxes:
            m = by_index[i]
            boxes.append(
                MailboxSpec(
                    stack.roster.mailbox_ids[i],
                    m.provider,
                    m.address,
                    m.username,
                    m.password,
                    m.arrivals_per_s,
                    float(m.interval_s),
                    -(-m.size // len(folders)),
                )
            )
        tenants.append(TenantSpec(t.index, stack.roster.tenant_ids[t.index], tuple(boxes)))
    interval = plan.interval_s
    levels = tuple(
        LevelSpec(
            lv.name,
            lv.tenants,
            lv.start_s,
            lv.duration_s,
            lv.settle_s,
            min(interval, lv.settle_s * 0.8),
        )
        for lv in plan.levels
    )
    return LoadgenConfig(
        t0=t0,
        levels=levels,
        tenants=tuple(tenants),
        mock_url=stack.mock_url,
        api_urls=tuple(f"http://127.0.0.1:{p}" for p in stack.api_ports),
        api_token=stack.token,
        database_url=stack.database_url,
        redis_url=stack.opts.redis_url,
        pool_key=f"{stack.prefix}:loadtest:tenants",
        out=str(out / "loadgen"),
        seed=plan.seed,
        changes_per_arrival=s.population.changes_per_arrival,
        deletes_per_arrival=s.population.deletes_per_arrival,
        push_share=s.daemon.push_share,
        cursor_expiry_per_sync=s.daemon.cursor_expiry_per_sync,
        imap_port=stack.dovecot.port if stack.dovecot is not None else None,
        imap_ca_file=str(stack.dovecot.cert_path) if stack.dovecot is not None else None,
        imap_folder=folders[0],
        lag_timeout_s=max(600.0, 4 * interval),
        drain_s=min(interval, 300),
        workers=workers,
        master_port=free_port() if workers else 0,
    )


def _start_loadgen(cfg_path: Path, cfg: LoadgenConfig, logs: Path) -> list[Child]:
    mod = "loadtest.run.loadgen"
    if not cfg.workers:
        return [
            Child("load generator", python("-m", mod, "local", str(cfg_path)), logs / "loadgen.log")
        ]
    out = [
        Child(
            "load generator (master)",
            python("-m", mod, "master", str(cfg_path), "--name", "master"),
            logs / "loadgen-master.log",
        )
    ]
    for i in range(cfg.workers):
        out.append(
            Child(
                f"load generator worker {i}",
                python("-m", mod, "worker", str(cfg_path), "--name", f"worker-{i}"),
                logs / f"loadgen-worker-{i}.log",
            )
        )
    return out


def _recent_cpu(sampler: Sampler, processes: int, span: float = 10.0) -> float:
    """Cores the daemon processes used over the last ``span`` seconds."""
    total = 0.0
    for i in range(processes):
        for series in sampler.data.procs.get(f"daemon-{i}", {}).values():
            tail = [x for x in series[-int(span) - 2 :] if x.t >= series[-1].t - span]
            if len(tail) >= 2 and tail[-1].t > tail[0].t:
                total += (tail[-1].cpu_s - tail[0].cpu_s) / (tail[-1].t - tail[0].t)
    return total


def _progress(stack: Stack, plan: LoadPlan, t0: float, sampler: Sampler, say: Say) -> None:
    with stack.db() as db:
        row = db.execute(
            "SELECT count(*) FROM sync_runs WHERE finished_at > now() - interval '60 seconds'"
        ).fetchone()
        active = db.execute("SELECT count(*) FROM mailboxes WHERE status = 'active'").fetchone()
    t = time.time() - t0
    lv = next((x for x in plan.levels if x.start_s <= t < x.start_s + x.duration_s), None)
    where = f"{lv.name} {t - lv.start_s:4.0f}/{lv.duration_s:.0f} s" if lv else "draining"
    cpu = _recent_cpu(sampler, len(stack.daemons)) * 100
    say(
        f"[{where}] active mailboxes {int(active[0]) if active else 0:,}  "
        f"syncs in the last minute {int(row[0]) if row else 0:,}  daemon CPU {cpu:.0f} %"
    )


def run_levels(
    stack: Stack,
    plan: LoadPlan,
    sampler: Sampler,
    say: Say,
    *,
    workers: int,
    redis_url: str,
    chaos_every_s: float | None,
    progress: bool,
) -> tuple[float, list[Child]]:
    """Run the levels under Locust; returns the load's start (epoch) and the load children."""
    out = stack.out
    # Locust starts in about two seconds; the first level begins at a set instant.
    t0 = time.time() + 4
    cfg = _loadgen_config(plan, stack, out, workers, t0)
    cfg_path = out / "loadgen.json"
    cfg.save(cfg_path)
    r = redis.Redis.from_url(redis_url)
    r.delete(cfg.pool_key)
    r.rpush(cfg.pool_key, *[t.index for t in cfg.tenants])
    children = _start_loadgen(cfg_path, cfg, stack.logs)
    sampler.groups = process_groups(stack, children)
    last_note = kill_at = 0.0
    victim = 0
    if chaos_every_s:
        kill_at = t0 + chaos_every_s
    while children[0].alive():
        stack.check_alive()
        for c in children:
            # A worker ends when the master tells it to: only a failing one is an error.
            done_ok = c is not children[0] and c.proc is not None and c.proc.poll() == 0
            if not done_ok and (why := c.died()):
                raise ServiceError(why)
        now = time.time()
        if chaos_every_s and kill_at and now >= kill_at and now < t0 + plan.total_s:
            i = victim % len(stack.daemons)
            say(f"chaos: killing daemon {i} (kill -9) and starting it again")
            sampler.mark(f"daemon {i} killed")
            stack.daemons[i].kill()
            stack.restart_daemon(i)
            victim += 1
            kill_at = now + chaos_every_s
        if progress and now - last_note >= 10 and now >= t0:
            last_note = now
            _progress(stack, plan, t0, sampler, say)
        time.sleep(0.5)
    code = children[0].proc.returncode if children[0].proc else None
    if code not in (0, None):
        raise ServiceError(f"the load generator failed (exit {code}):\n{children[0].log_tail()}")
    return t0, children


__all__ = ["process_groups", "run_levels"]

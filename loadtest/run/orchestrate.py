"""One whole run: plan, services, warm-up, levels under Locust, verification, prediction,
calibration, comparison and the report. The main thread owns every child process (so a
killed run takes them along) and reports progress; a sampler thread records what happens.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import redis

from daemon.errors import ConfigError
from loadtest.run import archive, calibrate, compare, predict, report, settings, verify
from loadtest.run.loadgen.config import LevelSpec, LoadgenConfig, MailboxSpec, TenantSpec
from loadtest.run.measure import Counters, RunData, Window, measure, process_cpu
from loadtest.run.plan import (
    DEFAULT_MAX_MAILBOXES,
    DEFAULT_SHARES,
    DEFAULT_SIZE_SCALE,
    LoadPlan,
    build_plan,
    predicted_capacity,
    prepare,
)
from loadtest.run.sampler import Sampler, Samples
from loadtest.run.services import (
    Child,
    ServiceError,
    free_port,
    postgres_processes,
    python,
    redis_processes,
)
from loadtest.run.stack import Stack, StackOptions
from simulator.calibration import Calibration, apply, load_calibration
from simulator.loader import load_scenario

Say = Callable[[str], None]
# A warm-up expected to take longer than this on the scenario's own settings is boosted.
WARMUP_BOOST_AFTER_S = 60.0


@dataclass(frozen=True)
class RunOptions:
    """Everything ``mailsync loadtest run`` can be told."""

    scenario: str
    overrides: dict[str, Any] = field(default_factory=dict)
    processes: int | None = None
    shares: tuple[float, ...] = DEFAULT_SHARES
    tenants: tuple[int, ...] | None = None
    duration_s: float | tuple[float, ...] | None = None
    settle_s: float | None = None
    out: Path = Path("reports")
    name: str | None = None
    workers: int = 0
    size_scale: float = DEFAULT_SIZE_SCALE
    seed: int = 1
    keep: bool = False
    chaos_every_s: float | None = None
    calibration: Path | None = None
    replications: int = 3
    max_mailboxes: int = DEFAULT_MAX_MAILBOXES
    admin_dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"
    idle_s: float = 10.0
    progress: bool = True


@dataclass
class RunResult:
    """What a run produced (the report folder holds the rest)."""

    out: Path
    plan: LoadPlan
    measured: dict[str, dict[str, float]]
    before: list[compare.Row]
    after: list[compare.Row]
    verdicts_after: list[compare.Verdict]
    integrity: verify.Integrity
    calibration: Calibration | None
    cross: bool = False

    def errors(self, calibrated: bool = True) -> dict[str, dict[str, float]]:
        """level -> bounded figure -> relative error."""
        return compare.bounded_errors(self.after if calibrated else self.before)


def _clean(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _groups(
    stack: Stack, loadgen: Sequence[Child]
) -> Callable[[], dict[str, list[psutil.Process]]]:
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


def _started_clean(logs: Path) -> bool:
    """No daemon logged an error while starting (the first lines of each run log)."""
    for f in logs.glob("daemon-*-run.log"):
        head = f.read_text(errors="replace").splitlines()[:50]
        if any(re.search(r'"level":\s*"(error|critical)"', line) for line in head):
            return False
    return True


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


def _load(
    stack: Stack, plan: LoadPlan, opts: RunOptions, sampler: Sampler, say: Say
) -> tuple[float, list[Child]]:
    """Run the levels under Locust; returns the load's start (epoch) and the load children."""
    out = stack.out
    # Locust starts in about two seconds; the first level begins at a set instant.
    t0 = time.time() + 4
    cfg = _loadgen_config(plan, stack, out, opts.workers, t0)
    cfg_path = out / "loadgen.json"
    cfg.save(cfg_path)
    r = redis.Redis.from_url(opts.redis_url)
    r.delete(cfg.pool_key)
    r.rpush(cfg.pool_key, *[t.index for t in cfg.tenants])
    children = _start_loadgen(cfg_path, cfg, stack.logs)
    sampler.groups = _groups(stack, children)
    last_note = kill_at = 0.0
    victim = 0
    if opts.chaos_every_s:
        kill_at = t0 + opts.chaos_every_s
    while children[0].alive():
        stack.check_alive()
        for c in children:
            # A worker ends when the master tells it to: only a failing one is an error.
            done_ok = c is not children[0] and c.proc is not None and c.proc.poll() == 0
            if not done_ok and (why := c.died()):
                raise ServiceError(why)
        now = time.time()
        if opts.chaos_every_s and kill_at and now >= kill_at and now < t0 + plan.total_s:
            i = victim % len(stack.daemons)
            say(f"chaos: killing daemon {i} (kill -9) and starting it again")
            sampler.mark(f"daemon {i} killed")
            stack.daemons[i].kill()
            stack.restart_daemon(i)
            victim += 1
            kill_at = now + opts.chaos_every_s
        if opts.progress and now - last_note >= 10 and now >= t0:
            last_note = now
            _progress(stack, plan, t0, sampler, say)
        time.sleep(0.5)
    code = children[0].proc.returncode if children[0].proc else None
    if code not in (0, None):
        raise ServiceError(f"the load generator failed (exit {code}):\n{children[0].log_tail()}")
    return t0, children


RssPoint = tuple[float, float, float, float]


def _peak(series: Sequence[tuple[float, int, float]], proc: int, w: Window) -> float:
    got = [v for t, d, v in series if d == proc and w.start <= t <= w.end]
    return float(max(got)) if got else 0.0


def _inflight(samples: Samples, w: Window) -> list[tuple[float, int, float]]:
    return [
        (t, i, v)
        for t, i, parsed in samples.metrics
        if w.start <= t <= w.end
        for (n, _lab), v in parsed.items()
        if n == "mailsync_jobs_in_flight"
    ]


def _rss_points(
    plan: LoadPlan, samples: Samples, windows: list[Window], measured: dict[str, dict[str, float]]
) -> list[RssPoint]:
    """(peak RSS, peak jobs in flight, active mailboxes, peak IMAP connections) per daemon
    process and level."""
    out = []
    for w in windows:
        m = measured[w.name]
        inflight = m.get("max_inflight_process", 0.0)
        for i in range(plan.scenario.daemon.processes):
            _c, rss = process_cpu(samples, f"daemon-{i}", w)
            conns = _peak(samples.imap_connections, i, w)
            jobs = inflight if math.isfinite(inflight) else 0.0
            out.append((rss, jobs, m.get("mailboxes", 0.0), conns))
    return out


def _warmup_rss_points(plan: LoadPlan, samples: Samples, warm: list[Window]) -> list[RssPoint]:
    """The same per warm-up window: the mailboxes synced so far, provider after provider."""
    out = []
    synced = 0
    for w, provider in zip(warm, plan.providers(), strict=False):
        synced += sum(1 for m in plan.mailboxes if m.provider == provider)
        inflight = _inflight(samples, w)
        for i in range(plan.scenario.daemon.processes):
            _c, rss = process_cpu(samples, f"daemon-{i}", w)
            if rss > 0:
                conns = _peak(samples.imap_connections, i, w)
                out.append((rss, _peak(inflight, i, w), float(synced), conns))
    return out


def _windows(plan: LoadPlan, t0: float) -> list[Window]:
    return [Window(lv.name, t0 + lv.window[0], t0 + lv.window[1]) for lv in plan.levels]


SHIPPED = Path(__file__).resolve().parents[1] / "scenarios"


def resolve_scenario(ref: str) -> str:
    """A file path, a load-test scenario name (``loadtest/scenarios``) or a simulator one."""
    if Path(ref).is_file():
        return ref
    for name in (ref, f"{ref}.yaml"):
        if (SHIPPED / name).is_file():
            return str(SHIPPED / name)
    return ref


def run_load_test(opts: RunOptions, say: Say) -> RunResult:
    """The whole run; raises ``ConfigError``/``ServiceError`` with a clear message."""
    base = load_scenario(resolve_scenario(opts.scenario), opts.overrides)
    out = opts.out / (opts.name or f"loadtest-{base.name}")
    out.mkdir(parents=True, exist_ok=True)
    catalogue = predict.write_catalogue(out / "catalogue.yaml")
    prepared, notes = prepare(
        base,
        processes=opts.processes,
        size_scale=opts.size_scale,
        catalogue=catalogue,
        instance=predict.MACHINE,
    )
    cal_in = load_calibration(opts.calibration) if opts.calibration else None
    sizing = apply(prepared, cal_in, str(opts.calibration)) if cal_in else prepared
    capacity = predicted_capacity(sizing)
    plan = build_plan(
        prepared,
        opts.scenario,
        capacity,
        shares=opts.shares,
        duration_s=opts.duration_s,
        settle_s=opts.settle_s,
        tenants=opts.tenants,
        seed=opts.seed,
        max_mailboxes=opts.max_mailboxes,
        notes=notes,
    )
    (out / "plan.json").write_text(json.dumps(_clean(plan.to_json())))
    say(
        f"{plan.scenario.name}: predicted capacity {capacity:,.0f} syncs/min; levels "
        + ", ".join(f"{lv.name} {lv.tenants:,} tenants" for lv in plan.levels)
        + f"; {len(plan.mailboxes):,} mailboxes, {plan.total_s / 60:.0f} min of load"
    )
    stack = Stack(plan, StackOptions(opts.admin_dsn, opts.redis_url, opts.keep), out, say)
    sampler: Sampler | None = None
    load_children: list[Child] = []
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        say("starting PostgreSQL/Redis checks, the mock providers and Dovecot")
        stack.start_infrastructure()
        stack.start_mock()
        stack.start_imap()
        # A long warm-up runs on wider pools and relaxed quotas, then the daemons restart on
        # the scenario's settings; a short one runs on those settings from the start.
        boost = (
            settings.warmup_estimate_s(
                prepared, len(plan.mailboxes), sum(m.size for m in plan.mailboxes)
            )
            > WARMUP_BOOST_AFTER_S
        )
        if boost:
            stack.start_daemons(
                settings.warmup_env(prepared, stack.opts.warmup_quota_scale), "warmup"
            )
        else:
            stack.mock_config(settings.mock_config(prepared, plan.seed, latency=False))
            stack.start_daemons(settings.policy_env(prepared), "run")
        sampler = Sampler(
            _groups(stack, []),
            lambda: [
                (i, d.psutil(), f"http://127.0.0.1:{stack.api_ports[i]}")
                for i, d in enumerate(stack.daemons)
            ],
            stack.database_url,
            stack.token,
            stack.mock_url,
            stack.proxy_port or None,
            resumes=out / "loadgen" / "lag",
        )
        sampler.start()
        say(f"registering {len(plan.tenants):,} tenants and {len(plan.mailboxes):,} mailboxes")
        # One provider after another: the warm-up's CPU then tells the providers apart.
        warm: list[Window] = []
        for provider in plan.providers():
            stack.register(provider)
            start = time.time()
            warm_s = stack.warm_up()
            warm.append(Window(f"warm-up {provider}", start, time.time()))
            say(f"warm-up: {provider} mailboxes synced once in {warm_s:.0f} s")
        stack.set_tenants("pause")
        if boost:
            stack.stop_daemons()
        stack.mock_config(settings.mock_config(prepared, plan.seed))
        if boost:
            stack.start_daemons(settings.policy_env(prepared), "run")
        idle_start = time.time()
        time.sleep(max(opts.idle_s, 3.0))
        idle = Window("idle", idle_start + 1, time.time())
        clean = _started_clean(stack.logs)
        t0, load_children = _load(stack, plan, opts, sampler, say)
        end = t0 + plan.total_s
        say("load done; waiting until every mailbox has synced after the last delivery")
        synced, behind = verify.wait_synced_after(
            stack.database_url, end + 1, max(3 * plan.interval_s, 120.0), stack.check_alive
        )
        integrity = verify.compare_store(
            stack.database_url,
            [
                verify.MailboxRef(
                    stack.roster.mailbox_ids[m.index],
                    m.provider,
                    m.address,
                    m.username,
                    m.password,
                    tuple(settings.imap_folders(prepared)),
                )
                for m in plan.mailboxes
            ],
            stack.mock_url,
            stack.dovecot.port if stack.dovecot else None,
            str(stack.dovecot.cert_path) if stack.dovecot else None,
        )
        say(
            f"store compared with the providers: {integrity.stored:,} messages, "
            f"{integrity.missing + integrity.extra:,} differences; stopping the daemons"
        )
        stack.stop_daemons()
        samples = sampler.stop()
        data = RunData.load(stack.database_url, out / "loadgen", since=t0)
        record = archive.RunRecord(
            t0, idle, warm, clean, integrity, synced, behind,
            str(opts.calibration) if opts.calibration else None, stack.prefix,
            calibrate.provenance(plan.scenario, plan.source),
        )  # fmt: skip
        archive.save(out, data, samples, record)
    except KeyboardInterrupt:
        say("interrupted: stopping everything")
        raise
    finally:
        for c in load_children:
            c.stop(30)
        if sampler is not None:
            sampler.stop()
        stack.close()
        signal.signal(signal.SIGTERM, previous)
    return analyse(plan, out, data, samples, record, opts.replications, opts.workers, say,
                   opts.progress)  # fmt: skip


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM is handled like Ctrl-C: the same orderly teardown.
    raise KeyboardInterrupt


def _never_stored(out: Path) -> int:
    try:
        doc = json.loads((out / "locust_stats.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(f["count"] for f in doc["failures"] if "never stored" in f["name"])


def analyse(
    plan: LoadPlan,
    out: Path,
    data: RunData,
    samples: Samples,
    rec: archive.RunRecord,
    replications: int,
    workers: int,
    say: Say,
    progress: bool = True,
) -> RunResult:
    """Measured per level, predicted before and after calibration, compared, reported."""
    t0, idle, warm, clean = rec.t0, rec.idle, rec.warm, rec.started_clean
    integrity, synced, behind = rec.integrity, rec.synced, rec.behind
    cal_in = load_calibration(rec.calibration) if rec.calibration else None
    s = plan.scenario
    windows = _windows(plan, t0)
    counters = Counters(samples)
    providers = plan.providers()
    vcpu = os.cpu_count() or 1
    measured = {
        w.name: measure(
            w,
            data,
            samples,
            counters,
            s.daemon.processes,
            vcpu,
            providers,
            s.criteria.fresh_within_s,
            s.providers.imap.connect_round_trips,
        )
        for w in windows
    }
    say("predicting the levels with the model")
    before = predict.predict(plan, replications, cal_in, rec.calibration or "", progress=progress)
    levels = [lv.name for lv in plan.levels]
    full = [Window(lv.name, t0 + lv.start_s, t0 + lv.start_s + lv.duration_s) for lv in plan.levels]
    rss_points = _rss_points(plan, samples, windows, measured)
    # The warm-up adds mailboxes provider by provider before any IMAP session is open: the
    # points that tell memory per mailbox from memory per pooled IMAP connection.
    rss_points += _warmup_rss_points(plan, samples, warm)
    cal, quality = calibrate.derive(
        s,
        plan.source,
        samples,
        data,
        windows,
        [*warm, idle, *full],
        idle,
        rss_points,
        rec.measured_by,
    )
    say("predicting again with the calibration measured now")
    after = predict.predict(plan, replications, cal, cal.source, progress=progress)
    pb = {lv: before.figures(lv) for lv in levels}
    pa = {lv: after.figures(lv) for lv in levels}
    rows_b = compare.compare(measured, pb, levels)
    rows_a = compare.compare(measured, pa, levels)
    v_b = compare.verdicts(measured, pb, levels, s.criteria, clean)
    v_a = compare.verdicts(measured, pa, levels, s.criteria, clean)
    integ_rows = verify.summary(integrity, synced, behind, _never_stored(out))
    d = report.ReportData(
        title=f"Load test: {s.name}",
        plan_summary=[
            ("scenario", plan.source),
            (
                "profile",
                f"{s.daemon.profile} ({s.daemon.processes} process"
                f"{'es' if s.daemon.processes > 1 else ''}), quota preset {s.daemon.quota_preset}",
            ),
            ("providers", ", ".join(f"{p} {x:.0%}" for p, x in s.population.providers.items())),
            (
                "predicted capacity",
                f"{plan.capacity_per_min:,.0f} syncs/min"
                + (f" (with the calibration of {cal_in.source})" if cal_in else ""),
            ),
            ("sync interval", f"{plan.interval_s:,.0f} s"),
            ("machine", f"{vcpu} cores, {psutil.virtual_memory().total / 2**30:,.0f} GB"),
            ("load generator", f"Locust, {workers} workers" if workers else "Locust, one process"),
            (
                "warm-up",
                f"{sum(w.seconds for w in warm):,.0f} s for {len(plan.mailboxes):,} first "
                "full syncs, one provider after another",
            ),
        ],
        levels=[
            {
                "name": lv.name,
                "share": lv.share,
                "tenants": lv.tenants,
                "mailboxes": sum(len(t.mailboxes) for t in plan.tenants[: lv.tenants]),
                "window": f"{lv.window[0] / 60:.1f}–{lv.window[1] / 60:.1f} min",
            }
            for lv in plan.levels
        ],
        notes=list(plan.notes),
        before=rows_b,
        after=rows_a,
        verdicts_before=v_b,
        verdicts_after=v_a,
        calibration=cal,
        calibration_quality=quality,
        integrity=integ_rows,
        windows=windows,
        t0=t0,
        events=samples.events,
        cross=(
            f"The prediction before calibration uses {cal_in.source}: this run checks a "
            "prediction made from another scenario's measurement."
            if cal_in
            else None
        ),
    )
    plots = report.figures(d, data, samples, s.daemon.processes, full)
    report.write_html(out / "index.html", d, plots)
    extra = {
        "measured": measured,
        "predicted": {k: {f: v[0] for f, v in x.items()} for k, x in pb.items()},
        "predicted_calibrated": {k: {f: v[0] for f, v in x.items()} for k, x in pa.items()},
        "errors_before": compare.bounded_errors(rows_b),
        "errors_after": compare.bounded_errors(rows_a),
        "verdicts_agree": all(v.agree for v in v_a),
        "integrity": verify.as_json(integrity),
        "started_clean": clean,
        "calibration_quality": quality,
        "t0": t0,
        "windows": [(w.name, w.start, w.end) for w in windows],
    }
    report.write_tables(out, d, _clean(extra))
    (out / "measured.json").write_text(json.dumps(_clean(measured), indent=1))
    return RunResult(out, plan, measured, rows_b, rows_a, v_a, integrity, cal, cal_in is not None)


def reanalyse(out: Path, replications: int, say: Say, progress: bool = True) -> RunResult:
    """The analysis of a finished run again, from its report folder (after a model change)."""
    plan = LoadPlan.from_json(json.loads((out / "plan.json").read_text()))
    data, samples, rec = archive.load(out)
    workers = 0
    cfg = out / "loadgen.json"
    if cfg.exists():
        workers = int(json.loads(cfg.read_text()).get("workers", 0))
    return analyse(plan, out, data, samples, rec, replications, workers, say, progress)


def check_bounds(rows: Sequence[compare.Row]) -> list[str]:
    """Bounded figures outside their bound, as readable lines."""
    return [
        f"{r.level}: {r.label} measured {r.measured:.4g}, predicted {r.predicted:.4g} "
        f"({r.rel_error:+.1%}, bound ±{r.bound:.0%})"
        for r in rows
        if r.ok is False
    ]


__all__ = ["ConfigError", "RunOptions", "RunResult", "check_bounds", "run_load_test"]

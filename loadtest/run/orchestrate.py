"""One whole run: plan, services, warm-up, the load (``drive``), verification, then the
analysis (``analysis``: prediction, calibration, comparison and the report). The main thread
owns every child process (so a killed run takes them along) and reports progress; a sampler
thread records what happens.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.errors import ConfigError
from loadtest.run import archive, calibrate, predict, settings, verify
from loadtest.run.analysis import RunResult, analyse, json_safe
from loadtest.run.drive import process_groups, run_levels
from loadtest.run.measure import RunData, Window
from loadtest.run.plan import DEFAULT_MAX_MAILBOXES, DEFAULT_SHARES, LoadPlan, build_plan
from loadtest.run.prepare import DEFAULT_SIZE_SCALE, predicted_capacity, prepare
from loadtest.run.sampler import Sampler
from loadtest.run.services import Child
from loadtest.run.stack import Stack, StackOptions
from simulator.inputs.calibration import apply, load_calibration
from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario

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


def _started_clean(logs: Path) -> bool:
    """No daemon logged an error while starting (the first lines of each run log)."""
    for f in logs.glob("daemon-*-run.log"):
        head = f.read_text(errors="replace").splitlines()[:50]
        if any(re.search(r'"level":\s*"(error|critical)"', line) for line in head):
            return False
    return True


SHIPPED = Path(__file__).resolve().parents[1] / "scenarios"


def resolve_scenario(ref: str) -> str:
    """A file path, a load-test scenario name (``loadtest/scenarios``) or a simulator one."""
    if Path(ref).is_file():
        return ref
    for name in (ref, f"{ref}.yaml"):
        if (SHIPPED / name).is_file():
            return str(SHIPPED / name)
    return ref


def _plan(opts: RunOptions, say: Say) -> tuple[Scenario, LoadPlan, Path]:
    """The scenario as run, the load plan sized by the predicted capacity and the output
    directory (with the plan and the catalogue written to it)."""
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
    (out / "plan.json").write_text(json.dumps(json_safe(plan.to_json())))
    say(
        f"{plan.scenario.name}: predicted capacity {capacity:,.0f} syncs/min; levels "
        + ", ".join(f"{lv.name} {lv.tenants:,} tenants" for lv in plan.levels)
        + f"; {len(plan.mailboxes):,} mailboxes, {plan.total_s / 60:.0f} min of load"
    )
    return prepared, plan, out


def _start_daemons(stack: Stack, prepared: Scenario, plan: LoadPlan) -> bool:
    """Start the daemons for the warm-up; True when they run boosted (wider pools, relaxed
    quotas) and must restart on the scenario's settings after it."""
    boost = (
        settings.warmup_estimate_s(
            prepared, len(plan.mailboxes), sum(m.size for m in plan.mailboxes)
        )
        > WARMUP_BOOST_AFTER_S
    )
    if boost:
        stack.start_daemons(settings.warmup_env(prepared, stack.opts.warmup_quota_scale), "warmup")
    else:
        stack.mock_config(settings.mock_config(prepared, plan.seed, latency=False))
        stack.start_daemons(settings.policy_env(prepared), "run")
    return boost


def _warm_up(stack: Stack, plan: LoadPlan, say: Say) -> list[Window]:
    """Register the mailboxes and sync each once, one provider after another: the warm-up's
    CPU then tells the providers apart."""
    warm: list[Window] = []
    for provider in plan.providers():
        stack.register(provider)
        start = time.time()
        warm_s = stack.warm_up()
        warm.append(Window(f"warm-up {provider}", start, time.time()))
        say(f"warm-up: {provider} mailboxes synced once in {warm_s:.0f} s")
    return warm


def _compare_store(stack: Stack, prepared: Scenario, plan: LoadPlan) -> verify.Integrity:
    """Every mailbox's stored messages against what its provider holds."""
    return verify.compare_store(
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


def run_load_test(opts: RunOptions, say: Say) -> RunResult:
    """The whole run; raises ``ConfigError``/``ServiceError`` with a clear message."""
    prepared, plan, out = _plan(opts, say)
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
        boost = _start_daemons(stack, prepared, plan)
        sampler = Sampler(
            process_groups(stack, []),
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
        warm = _warm_up(stack, plan, say)
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
        t0, load_children = run_levels(
            stack,
            plan,
            sampler,
            say,
            workers=opts.workers,
            redis_url=opts.redis_url,
            chaos_every_s=opts.chaos_every_s,
            progress=opts.progress,
        )
        end = t0 + plan.total_s
        say("load done; waiting until every mailbox has synced after the last delivery")
        synced, behind = verify.wait_synced_after(
            stack.database_url, end + 1, max(3 * plan.interval_s, 120.0), stack.check_alive
        )
        integrity = _compare_store(stack, prepared, plan)
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


__all__ = ["ConfigError", "RunOptions", "resolve_scenario", "run_load_test"]

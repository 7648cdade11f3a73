"""Command line of the capacity simulator: ``report``, ``simulate`` and ``sweep``.

``app`` is a ``typer.Typer``; the functions ``report``, ``simulate`` and ``sweep`` are plain
functions registered on it, so ``mailsync.cli`` mounts them one by one at the top level of the
``mailsync`` command (``mailsync report``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

import structlog
import typer
from pydantic import ValidationError

from daemon import logs
from daemon.errors import ConfigError
from simulator.inputs import bounds
from simulator.render import html as h
from simulator.runs import run_cost

T = TypeVar("T")

app = typer.Typer(help="Capacity simulator of the mailsync daemon.", no_args_is_help=True)


@app.callback()
def _logging() -> None:
    # Logs go to stderr so that --json output on stdout stays machine-readable; an
    # application that configured structlog itself keeps its configuration.
    if not structlog.is_configured():
        logs.configure("info", "console")


def _fail(e: ConfigError) -> None:
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(2)


def _checked(what: str, fn: Callable[[], T]) -> T:
    """``fn()``, with a validation error of a command-line value as a ``ConfigError``."""
    try:
        return fn()
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"{what}: {problems}") from None


def _finite(x: float) -> float | None:
    # JSON has no NaN or infinity: an undefined figure is null.
    return x if math.isfinite(x) else None


Force = Annotated[
    bool,
    typer.Option(help="Run an event simulation whose estimated time or memory is past the limits."),
]


def _parse_set(values: list[str] | None) -> dict[str, object]:
    out: dict[str, object] = {}
    for v in values or []:
        key, sep, raw = v.partition("=")
        if not sep:
            raise ConfigError(f"--set {v!r}: expected FIELD=VALUE")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _ints(text: str, name: str, high: float = math.inf) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--{name}: expected comma-separated integers, got {text!r}") from None
    return _within(out, name, 1, high)


def _floats(text: str, name: str, low: float = 0.0, high: float = math.inf) -> list[float]:
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--{name}: expected comma-separated numbers, got {text!r}") from None
    return _within(out, name, low, high)


def _within(values: list[Any], name: str, low: float, high: float) -> list[Any]:
    if not values:
        raise ConfigError(f"--{name}: no values")
    for v in values:
        if not (math.isfinite(v) and low <= v <= high and (low > 0 or v > 0)):
            raise ConfigError(f"--{name}: {v} is outside ({low:g}, {high:g}]")
    return values


@app.command()
def report(
    scenarios: Annotated[
        list[str] | None,
        typer.Argument(help="Scenario files or shipped names; none = the Plan B capacity report."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Report folder name.")] = None,
    out: Annotated[Path, typer.Option(help="Parent folder of reports.")] = Path("reports"),
    replications: Annotated[int | None, typer.Option(min=1)] = None,
    fast: Annotated[
        bool, typer.Option(help="Analytic fast path only, no event simulation (seconds).")
    ] = False,
    quick: Annotated[
        bool, typer.Option(help="Short horizons and few replications (CI smoke test, < 60 s).")
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option(help="Measured latencies and resource costs replacing the defaults."),
    ] = None,
    jobs: Annotated[int | None, typer.Option(help="Worker processes (default: cores).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    force: Force = False,
    open_: Annotated[
        bool, typer.Option("--open", help="Open the report in a web browser when there is one.")
    ] = False,
) -> None:
    """Write reports/<name>/index.html plus CSV/JSON (no Redis or PostgreSQL needed)."""
    from simulator.report.fast import fast_report
    from simulator.report.plan_b import Options, open_in_browser, plan_b_report, scenario_report

    default_name = "plan-b-capacity" if not scenarios else Path(scenarios[0]).stem
    o = Options(
        name=name or default_name,
        out=out,
        replications=replications,
        quick=quick,
        fast=fast,
        calibration=calibration,
        jobs=jobs,
        progress=progress,
        force=force,
    )
    try:
        if fast:
            path = fast_report(scenarios or [], o)
        elif scenarios:
            path = scenario_report(scenarios, o)
        else:
            path = plan_b_report(o)
    except ConfigError as e:
        _fail(e)
        return
    typer.echo(f"wrote {path}")
    if open_ and not open_in_browser(path):
        typer.echo("no web browser found: open the file above yourself", err=True)


@app.command()
def simulate(
    scenario: Annotated[str, typer.Argument(help="Scenario file or shipped name.")],
    replications: Annotated[int | None, typer.Option(min=1, max=bounds.MAX_REPLICATIONS)] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a field: daemon.processes=4 (JSON values)."),
    ] = None,
    calibration: Annotated[Path | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    jobs: Annotated[int | None, typer.Option(min=1)] = None,
    force: Force = False,
) -> None:
    """Simulate one scenario and print its figures with 95 % confidence intervals."""
    from simulator.inputs.calibration import apply, load_calibration
    from simulator.inputs.loader import load_scenario
    from simulator.runs.runner import run_many

    try:
        s = load_scenario(scenario, _parse_set(set_))
        if calibration is not None:
            s = apply(s, load_calibration(calibration), calibration.name)
        if replications is not None:
            n = replications
            s = _checked("--replications", lambda: s.updated({"run.replications": n}))
        cost = run_cost.guard([s], jobs, force)
    except ConfigError as e:
        _fail(e)
        return
    if cost.seconds > run_cost.NOTICE_S:
        typer.echo(f"estimate: {cost.text()}", err=True)
    t0 = time.perf_counter()
    r = run_many([s], jobs=jobs, progress=not as_json)[0]
    if as_json:
        doc = {
            "scenario": s.name,
            "metrics": {
                k: {"mean": _finite(e.mean), "ci95": _finite(e.half), "n": e.n}
                for k, e in r.metrics.items()
            },
            "verdicts": {v.name: v.passed for v in r.verdicts},
            "bottleneck": r.bottleneck,
        }
        typer.echo(json.dumps(doc, indent=1, default=str, allow_nan=False))
        return
    typer.echo(
        f"{s.name}: {s.population.tenants} tenants, {s.daemon.profile} × "
        f"{s.daemon.processes} processes, {s.run.replications} replications "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    from simulator.report.sections import detail_keys

    for key, label in detail_keys(list(r.metrics)):
        est = r.metrics.get(key)
        if est is not None:
            typer.echo(f"  {label:48s} {est.text()}")
    for v in r.verdicts:
        typer.echo(f"  {'PASS' if v.passed else 'FAIL'}  {v.text}: {v.value.text()}")
    typer.echo(f"  binding bottleneck: {r.bottleneck}")


@app.command()
def sweep(
    scenario: Annotated[str, typer.Argument(help="Base scenario.")] = "plan-b-1000",
    tenants: Annotated[
        str, typer.Option(help="Comma-separated.")
    ] = "300,1000,1500,3000,5000,10000,20000",
    concurrency: Annotated[
        str, typer.Option(help="Scale factors of the profile's per-tier concurrency.")
    ] = "0.5,1,1.5,2",
    processes: Annotated[str, typer.Option()] = "1,2,4,8",
    intervals: Annotated[
        str, typer.Option(help="Sync intervals, seconds.")
    ] = "300,270,240,180,120",
    strict_freshness: Annotated[
        bool, typer.Option(help="Require every staleness sample within the limit (default: p99).")
    ] = False,
    verify: Annotated[bool, typer.Option(help="Re-run each choice in the event model.")] = True,
    calibration: Annotated[Path | None, typer.Option(help="Measured figures file.")] = None,
    event: Annotated[
        bool,
        typer.Option(
            help="Simulate every tenants x concurrency x processes point (one host per "
            "process, the scenario's interval) instead of the fast-path grid."
        ),
    ] = False,
    out: Annotated[Path, typer.Option(help="CSV file of the capacity table.")] = Path(
        "reports/capacity.csv"
    ),
    jobs: Annotated[int | None, typer.Option(min=1)] = None,
    profiles: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated policy profiles to compare on the same grid (default: the "
            "scenario's), e.g. plan-b,plan-b-wc; the CSV gets a profile column."
        ),
    ] = None,
    force: Force = False,
) -> None:
    """Capacity table: the cheapest configuration per tenant count and its bottleneck."""
    from simulator.inputs.calibration import apply, load_calibration
    from simulator.inputs.loader import load_scenario
    from simulator.report.plan_b import write_csv
    from simulator.runs.sweep import capacity_table, event_grid, to_frame

    try:
        t_list = _ints(tenants, "tenants", bounds.MAX_TENANTS)
        c_list = _floats(concurrency, "concurrency", 0.0, 100.0)
        k_list = _ints(processes, "processes", bounds.MAX_PROCESSES)
        i_list = _floats(intervals, "intervals", 1.0, bounds.MAX_SYNC_INTERVAL_S)
        s = load_scenario(scenario)
        if calibration is not None:
            s = apply(s, load_calibration(calibration), calibration.name)
        s = s.updated(
            {
                "criteria.fresh_quantile": 1.0 if strict_freshness else 0.99,
                "run.replications": min(s.run.replications, 2),
            }
        )
        names = _profile_names(profiles, s.daemon.profile)
        t0 = time.perf_counter()
        all_rows: list[dict[str, Any]] = []
        all_points: list[dict[str, Any]] = []
        for name in names:
            sp = _checked("sweep", partial(s.updated, {"daemon.profile": name}))
            if len(names) > 1:
                typer.echo(f"profile {name}:")
            if event:
                points, best = _checked(
                    "sweep", partial(event_grid, sp, t_list, c_list, k_list, jobs=jobs, force=force)
                )
                _echo_event_rows(best)
                all_points += _tagged(points, name, len(names))
                all_rows += _tagged(best, name, len(names))
                continue
            rows, n = _checked(
                "sweep",
                partial(
                    capacity_table,
                    sp, t_list, c_list, k_list, i_list, verify=verify, jobs=jobs, force=force,
                ),
            )  # fmt: skip
            _echo_capacity_rows(rows)
            all_rows += _tagged(rows, name, len(names))
    except ConfigError as e:
        _fail(e)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, to_frame(all_rows))
    elapsed = time.perf_counter() - t0
    if event:
        write_csv(out.with_name(out.stem + "-points.csv"), to_frame(all_points))
        typer.echo(f"{len(all_points)} simulated points in {elapsed:.1f} s; wrote {out}")
    else:
        typer.echo(f"{n * len(names):,} configurations in {elapsed:.1f} s; wrote {out}")


def _tagged(rows: list[dict[str, Any]], profile: str, profiles: int) -> list[dict[str, Any]]:
    # A profile column only when profiles are compared: one profile's CSV stays as it was.
    return [{"profile": profile, **r} for r in rows] if profiles > 1 else rows


def _profile_names(text: str | None, default: str) -> list[str]:
    from daemon.policy import PROFILES

    names = [x.strip() for x in (text or default).split(",") if x.strip()]
    unknown = [x for x in names if x not in PROFILES]
    if unknown or not names:
        raise ConfigError(
            f"--profiles: unknown {', '.join(unknown) or '(none given)'}; known: "
            f"{', '.join(PROFILES)}"
        )
    return names


def _echo_event_rows(best: list[dict[str, Any]]) -> None:
    for r in best:
        if not r["feasible"]:
            typer.echo(f"  {r['tenants']:>6} tenants: no point passes")
            continue
        typer.echo(
            f"  {r['tenants']:>6} tenants: {r['processes']} proc, conc "
            f"{r['concurrency']}, ${h.fmt(r['cost_month'])}/month, "
            f"bottleneck {r['bottleneck']}"
        )


def _echo_capacity_rows(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        if not r["feasible"]:
            typer.echo(f"  {r['tenants']:>6} tenants: no configuration passes")
            continue
        ev = (
            ""
            if "event_pass" not in r
            else (" event: pass" if r["event_pass"] else f" event: FAIL {r['event_failed']}")
        )
        typer.echo(
            f"  {r['tenants']:>6} tenants: {r['processes']} proc on {r['hosts']} × "
            f"{r['instance']}, conc {r['concurrency']}, interval {r['interval_s']:.0f} s, "
            f"${h.fmt(r['cost_month'])}/month, bottleneck {r['bottleneck']} "
            f"({r['bottleneck_ratio']:.0%}){ev}"
        )

"""``mailsync loadtest run SCENARIO``: measure the daemon under a scenario's load and hold it
against the simulator's prediction (see docs/loadtest.md)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from daemon.errors import ConfigError
from loadtest.run.services import ServiceError

app = typer.Typer(help="Load tests of the real daemon against the model.", no_args_is_help=True)


def _duration(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*", text)
    if m is None:
        raise typer.BadParameter(f"{text!r}: use e.g. 90s, 5m or 1h", param_hint=name)
    value = float(m.group(1))
    unit = m.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600}[unit]


def _durations(text: str | None) -> float | tuple[float, ...] | None:
    if text is None:
        return None
    parts = [_duration(x, "--duration") for x in text.split(",") if x.strip()]
    values = tuple(x for x in parts if x is not None)
    return values[0] if len(values) == 1 else values


def _counts(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(x.replace("_", "").strip()) for x in text.split(",") if x.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: tenant counts like 300,1000", param_hint="--tenants"
        ) from None


def _levels(text: str) -> tuple[float, ...]:
    try:
        shares = tuple(
            float(x.strip().rstrip("%")) / (100 if "%" in x else 1)
            for x in text.split(",")
            if x.strip()
        )
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: shares of capacity like 0.3,0.9,1.3", param_hint="--levels"
        ) from None
    return shares


def _chaos(text: str | None) -> float | None:
    if text is None:
        return None
    m = re.fullmatch(r"kill-every[: ](.+)", text.strip())
    if m is None:
        raise typer.BadParameter(f"{text!r}: use kill-every:60s", param_hint="--chaos")
    return _duration(m.group(1), "--chaos")


def _sets(values: list[str] | None) -> dict[str, object]:
    out: dict[str, object] = {}
    for v in values or []:
        key, sep, raw = v.partition("=")
        if not sep:
            raise typer.BadParameter(f"{v!r}: expected FIELD=VALUE", param_hint="--set")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="Scenario file or shipped scenario name.")],
    processes: Annotated[int | None, typer.Option(min=1, help="Daemon processes.")] = None,
    levels: Annotated[str, typer.Option(help="Shares of the predicted capacity.")] = "0.3,0.9,1.3",
    tenants: Annotated[
        str | None, typer.Option(help="Levels as tenant counts (10000 or 300,1000) instead.")
    ] = None,
    duration: Annotated[
        str | None, typer.Option(help="Length of each level (5m), or one per level (2m,1m,1m).")
    ] = None,
    settle: Annotated[str | None, typer.Option(help="Unmeasured start of each level.")] = None,
    out: Annotated[Path, typer.Option(help="Parent folder of the report.")] = Path("reports"),
    name: Annotated[str | None, typer.Option(help="Report folder name.")] = None,
    workers: Annotated[
        int, typer.Option(min=0, help="Locust worker processes (0: one process).")
    ] = 0,
    size_scale: Annotated[float, typer.Option(help="Scale of mailbox sizes.")] = 0.01,
    seed: Annotated[int, typer.Option()] = 1,
    keep: Annotated[bool, typer.Option(help="Keep the run's database and Redis keys.")] = False,
    chaos: Annotated[
        str | None, typer.Option(help="kill-every:60s kills a daemon process.")
    ] = None,
    calibration: Annotated[
        Path | None, typer.Option(help="Predict with this calibration (another run's).")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a scenario field (JSON value).")
    ] = None,
    replications: Annotated[int, typer.Option(min=1, help="Model replications per level.")] = 3,
    max_mailboxes: Annotated[int, typer.Option(min=1)] = 40_000,
    check: Annotated[
        bool, typer.Option(help="Exit 1 when a calibrated figure misses its bound.")
    ] = False,
) -> None:
    """Drive the real daemon with SCENARIO's tenants at three levels, measure, predict,
    calibrate and write reports/<name>/."""
    from loadtest.run.analysis import check_bounds
    from loadtest.run.orchestrate import RunOptions, run_load_test

    opts = RunOptions(
        scenario=scenario,
        overrides=_sets(set_),
        processes=processes,
        shares=_levels(levels),
        tenants=_counts(tenants),
        duration_s=_durations(duration),
        settle_s=_duration(settle, "--settle"),
        out=out,
        name=name,
        workers=workers,
        size_scale=size_scale,
        seed=seed,
        keep=keep,
        chaos_every_s=_chaos(chaos),
        calibration=calibration,
        replications=replications,
        max_mailboxes=max_mailboxes,
    )
    try:
        result = run_load_test(opts, _say())
    except (ConfigError, ServiceError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    except KeyboardInterrupt:
        typer.echo("interrupted; everything the run started is stopped", err=True)
        raise typer.Exit(130) from None
    _print_errors(result)
    misses = check_bounds(result.after)
    if not result.integrity.ok:
        typer.echo("integrity: the store does not equal the providers (see the report)", err=True)
    if check and (misses or not result.integrity.ok):
        for line in misses:
            typer.echo(f"  outside its bound: {line}", err=True)
        raise typer.Exit(1)


@app.command()
def report(
    folder: Annotated[Path, typer.Argument(help="A load test's report folder.")],
    replications: Annotated[int, typer.Option(min=1, help="Model replications per level.")] = 3,
) -> None:
    """Analyse a finished run again from its raw data (predict, calibrate, compare, report)."""
    from loadtest.run.analysis import reanalyse

    try:
        result = reanalyse(folder, replications, _say())
    except (ConfigError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    _print_errors(result)


def _say() -> Any:
    """Progress lines on stderr, each with the minutes and seconds since the start."""
    import time

    start = time.monotonic()

    def say(msg: str) -> None:
        m, s = divmod(int(time.monotonic() - start), 60)
        typer.echo(f"{m:3d}:{s:02d}  {msg}", err=True)

    return say


def _print_errors(result: Any) -> None:
    typer.echo(f"wrote {result.out / 'index.html'}")
    for lv, errs in result.errors().items():
        shown = ", ".join(f"{k} {v:+.1%}" for k, v in errs.items())
        typer.echo(f"  {lv}: {shown}")


if __name__ == "__main__":
    sys.exit(app())

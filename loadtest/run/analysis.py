"""The analysis of a run: the measured figures per level, the model's prediction before and
after the calibration derived from this run, their comparison, and the report folder.
Runs after a load test, or again on a finished run's folder (``reanalyse``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from loadtest.run import archive, calibrate, compare, plots, predict, report, verify
from loadtest.run.measure import Counters, RunData, Window, measure, process_cpu
from loadtest.run.plan import LoadPlan
from loadtest.run.sampler import Samples
from simulator.inputs.calibration import Calibration, load_calibration

Say = Callable[[str], None]


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


def json_safe(x: Any) -> Any:
    """``x`` as plain JSON: string keys, lists, finite floats (others ``None``)."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


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


def _never_stored(out: Path) -> int:
    try:
        doc = json.loads((out / "locust_stats.json").read_text())
    except (OSError, ValueError):
        return 0
    return sum(f["count"] for f in doc["failures"] if "never stored" in f["name"])


def _measure_windows(
    plan: LoadPlan, windows: Sequence[Window], data: RunData, samples: Samples, vcpu: int
) -> dict[str, dict[str, float]]:
    """The measured figures of each window, by window name."""
    s = plan.scenario
    counters = Counters(samples)
    providers = plan.providers()
    return {
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


def _plan_summary(
    plan: LoadPlan, cal_in: Calibration | None, vcpu: int, workers: int, warm: Sequence[Window]
) -> list[tuple[str, str]]:
    """The report's table of what was run, on what."""
    s = plan.scenario
    return [
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
    ]


def _level_rows(plan: LoadPlan) -> list[dict[str, Any]]:
    """The report's table of load levels."""
    return [
        {
            "name": lv.name,
            "share": lv.share,
            "tenants": lv.tenants,
            "mailboxes": sum(len(t.mailboxes) for t in plan.tenants[: lv.tenants]),
            "window": f"{lv.window[0] / 60:.1f}–{lv.window[1] / 60:.1f} min",
        }
        for lv in plan.levels
    ]


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
    vcpu = os.cpu_count() or 1
    measured = _measure_windows(plan, windows, data, samples, vcpu)
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
        plan_summary=_plan_summary(plan, cal_in, vcpu, workers, warm),
        levels=_level_rows(plan),
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
    images = plots.figures(d, data, samples, s.daemon.processes, full)
    report.write_html(out / "index.html", d, images)
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
    report.write_tables(out, d, json_safe(extra))
    (out / "measured.json").write_text(json.dumps(json_safe(measured), indent=1))
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


__all__ = ["RunResult", "analyse", "check_bounds", "json_safe", "reanalyse"]

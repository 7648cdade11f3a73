"""``reports/<name>/``: the three-level report (HTML with plots), its tables as CSV and JSON,
the calibration file; Locust's own report and CSVs are written beside it by the load
generator."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend
import numpy as np
import yaml

from loadtest.run.compare import Row, Verdict, comparison_frame, verdicts_frame
from loadtest.run.measure import RunData, Window, process_cpu
from loadtest.run.sampler import Samples
from simulator.calibration import Calibration
from simulator.metrics import hist_quantile


def num(x: float, unit: str = "") -> str:
    """A number for people: thousands separators, 2-3 significant digits, no exponent."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if unit == "share":
        return f"{x:.2%}"
    if unit == "%":
        return f"{x:,.1f} %"
    a = abs(x)
    if a >= 100:
        s = f"{x:,.0f}"
    elif a >= 10:
        s = f"{x:,.1f}"
    elif a >= 1:
        s = f"{x:,.2f}"
    elif a == 0:
        s = "0"
    else:
        s = f"{x:.3f}".rstrip("0").rstrip(".") if a >= 0.001 else "0"
    return f"{s} {unit}".strip() if unit and unit not in ("count",) else s


def rel(e: float) -> str:
    """A relative error as a signed percentage."""
    return "–" if not math.isfinite(e) else f"{e:+.1%}"


@dataclass
class ReportData:
    """Everything the report shows."""

    title: str
    plan_summary: list[tuple[str, str]]
    levels: list[dict[str, Any]]
    notes: list[str]
    before: list[Row]
    after: list[Row]
    verdicts_before: list[Verdict]
    verdicts_after: list[Verdict]
    calibration: Calibration | None
    calibration_quality: dict[str, float]
    integrity: list[tuple[str, str, bool]]
    windows: list[Window]
    t0: float
    events: list[tuple[float, str]] = field(default_factory=list)
    cross: str | None = None


def _img(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _shade(ax: Any, windows: Sequence[Window], t0: float, spans: Sequence[Window]) -> None:
    for full in spans:
        ax.axvspan((full.start - t0) / 60, (full.end - t0) / 60, color="0.93", zorder=0)
    for w in windows:
        ax.axvspan((w.start - t0) / 60, (w.end - t0) / 60, color="#e3eefc", zorder=0)
        ax.text(
            (w.start - t0) / 60,
            1.0,
            w.name,
            transform=ax.get_xaxis_transform(),
            fontsize=8,
            va="bottom",
        )


def _predicted(
    ax: Any,
    windows: Sequence[Window],
    t0: float,
    values: Mapping[str, float],
    style: str,
    label: str,
) -> None:
    first = True
    for w in windows:
        v = values.get(w.name, math.nan)
        if math.isfinite(v):
            ax.hlines(
                v,
                (w.start - t0) / 60,
                (w.end - t0) / 60,
                colors="k",
                linestyles=style,
                label=label if first else None,
            )
            first = False


def _pred_map(rows: Sequence[Row], key: str) -> dict[str, float]:
    return {r.level: r.predicted for r in rows if r.key == key}


def figures(
    d: ReportData, data: RunData, samples: Samples, processes: int, spans: Sequence[Window]
) -> list[tuple[str, str]]:
    """(caption, image) of each plot."""
    t0: float = d.t0
    end = max(w.end for w in spans)
    out = []
    # Throughput.
    fig, ax = plt.subplots(figsize=(9, 3.2))
    step = float(np.clip(round((end - t0) / 80), 5, 30))
    bins = np.arange(t0 - 60, end + 60, step)
    ok = data.finished[data.ok]
    counts, edges = np.histogram(ok, bins=bins)
    ax.plot((edges[:-1] - t0) / 60, counts * 60 / step, lw=1, label=f"measured ({step:g} s bins)")
    _predicted(ax, d.windows, t0, _pred_map(d.before, "throughput_per_min"), "--", "predicted")
    _predicted(ax, d.windows, t0, _pred_map(d.after, "throughput_per_min"), "-", "calibrated")
    for t, _what in d.events:
        ax.axvline((t - t0) / 60, color="tab:red", lw=0.8)
    _shade(ax, d.windows, t0, spans)
    ax.set_xlabel("minutes since the first level started")
    ax.set_ylabel("successful syncs / min")
    ax.legend(fontsize=8)
    out.append(
        (
            "Throughput: measured syncs per minute against the model's level averages "
            "(dashed: the scenario's figures, solid: calibrated). Red lines mark daemon "
            "processes killed on purpose.",
            _img(fig),
        )
    )
    # Message lag.
    if data.lag_s.size:
        fig, ax = plt.subplots(figsize=(9, 3.2))
        b = np.arange(t0, end + 30, 30.0)
        idx = np.digitize(data.lag_stored, b)
        xs, p50, p95 = [], [], []
        for i in range(1, b.size):
            v = data.lag_s[idx == i]
            if v.size >= 3:
                xs.append((b[i - 1] - t0) / 60)
                p50.append(np.percentile(v, 50))
                p95.append(np.percentile(v, 95))
        ax.plot(xs, p50, lw=1, label="measured p50 (30 s bins)")
        ax.plot(xs, p95, lw=1, label="measured p95")
        _predicted(ax, d.windows, t0, _pred_map(d.after, "msg_lag_p50"), "-", "calibrated p50")
        _predicted(ax, d.windows, t0, _pred_map(d.after, "msg_lag_p95"), ":", "calibrated p95")
        _shade(ax, d.windows, t0, spans)
        ax.set_xlabel("minutes since the first level started")
        ax.set_ylabel("delivered → stored, s")
        ax.legend(fontsize=8)
        out.append(
            (
                "Sync lag, from delivery at the provider to the row in PostgreSQL, by when "
                "it was stored; the model's p50 and p95 per level.",
                _img(fig),
            )
        )
    # Staleness.
    if samples.staleness:
        fig, ax = plt.subplots(figsize=(9, 3.2))
        ts = np.array([t for t, _ in samples.staleness])
        qs = np.array(
            [
                [hist_quantile(h.sum(axis=0), q) for q in (0.5, 0.95, 1.0)]
                for _, h in samples.staleness
            ]
        )
        sel = ts >= t0 - 30
        for j, name in enumerate(("p50", "p95", "max")):
            ax.plot((ts[sel] - t0) / 60, qs[sel, j], lw=1, label=f"measured {name}")
        _predicted(
            ax, d.windows, t0, _pred_map(d.after, "staleness_p95_all"), "-", "calibrated p95"
        )
        _shade(ax, d.windows, t0, spans)
        ax.set_xlabel("minutes since the first level started")
        ax.set_ylabel("seconds since last sync")
        ax.legend(fontsize=8)
        out.append(
            (
                "Staleness of the active mailboxes (time since their last successful "
                "sync), sampled every 5 s.",
                _img(fig),
            )
        )
    # CPU and memory.
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.2))
    for i in range(processes):
        for series in samples.procs.get(f"daemon-{i}", {}).values():
            tt = np.array([x.t for x in series])
            cc = np.array([x.cpu_s for x in series])
            rr = np.array([x.rss_mb for x in series])
            if tt.size > 2:
                a1.plot((tt[1:] - t0) / 60, np.diff(cc) / np.diff(tt), lw=0.6, label=f"daemon {i}")
                a2.plot((tt - t0) / 60, rr, lw=1, label=f"daemon {i}")
    _predicted(a1, d.windows, t0, _pred_map(d.after, "cpu_core_per_process"), "-", "calibrated")
    _predicted(a2, d.windows, t0, _pred_map(d.after, "rss_mb_process"), "-", "calibrated")
    a1.set_ylabel("CPU, cores")
    a2.set_ylabel("RSS, MB")
    for ax in (a1, a2):
        _shade(ax, d.windows, t0, spans)
        ax.set_xlabel("minutes")
        ax.legend(fontsize=7)
    out.append(
        (
            "CPU (1 s samples) and resident memory of each daemon process against the "
            "calibrated model.",
            _img(fig),
        )
    )
    return out


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    h = "".join(f"<th>{html.escape(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def _rows(rows: Sequence[Row]) -> list[list[str]]:
    out = []
    for r in rows:
        mark = "" if r.ok is None else (" ✓" if r.ok else " ✗")
        bound = "" if r.bound is None else f"±{r.bound:.0%}"
        pred = num(r.predicted, r.unit)
        if math.isfinite(r.half) and r.half > 0:
            pred += f" ± {num(r.half, r.unit)}"
        out.append(
            [
                html.escape(r.level),
                html.escape(r.label),
                num(r.measured, r.unit),
                pred,
                rel(r.rel_error) + mark,
                bound,
            ]
        )
    return out


def _verdict_rows(vs: Sequence[Verdict]) -> list[list[str]]:
    def ok(b: bool) -> str:
        return "pass" if b else "<b>fail</b>"

    return [
        [
            html.escape(v.level),
            html.escape(v.criterion),
            html.escape(v.limit),
            ok(v.measured_ok),
            ok(v.predicted_ok),
            "yes" if v.agree else "<b>no</b>",
        ]
        for v in vs
    ]


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:0.6em 0 1.4em}td,th{border:1px solid #ccc;
padding:3px 8px;font-size:13px;text-align:right}td:first-child,td:nth-child(2),th{text-align:left}
figure{margin:1em 0}figcaption{font-size:13px;color:#444}img{max-width:100%}
.note{background:#fff8e0;padding:0.6em 1em;border-left:4px solid #e0b000}"""


def write_html(path: Path, d: ReportData, plots: Sequence[tuple[str, str]]) -> None:
    """The report page (self-contained: images inline)."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(d.title)}"
        f"</title><style>{CSS}</style></head><body><h1>{html.escape(d.title)}</h1>"
    ]
    parts.append(_table(["", ""], [[html.escape(k), html.escape(v)] for k, v in d.plan_summary]))
    parts.append("<h2>Levels</h2>")
    parts.append(
        _table(
            ["level", "share of predicted capacity", "tenants", "mailboxes", "measured window"],
            [
                [
                    html.escape(lv["name"]),
                    f"{lv['share']:.0%}",
                    f"{lv['tenants']:,}",
                    f"{lv['mailboxes']:,}",
                    html.escape(lv["window"]),
                ]
                for lv in d.levels
            ],
        )
    )
    ok_before = [r for r in d.before if r.ok is not None]
    ok_after = [r for r in d.after if r.ok is not None]
    parts.append("<h2>Agreement</h2><p>")
    parts.append(
        f"Before calibration {sum(bool(r.ok) for r in ok_before)} of {len(ok_before)} bounded "
        f"figures are within their bound; after calibration "
        f"{sum(bool(r.ok) for r in ok_after)} of {len(ok_after)} (throughput and p50 sync lag "
        "±15 %, CPU and RSS per process ±20 %).</p>"
    )
    if d.cross:
        parts.append(f"<p class='note'>{html.escape(d.cross)}</p>")
    parts.append("<h2>Plan B success criteria</h2>")
    head = ["level", "criterion", "limit", "measured", "model", "agree"]
    parts.append("<p>Model after calibration:</p>" + _table(head, _verdict_rows(d.verdicts_after)))
    parts.append("<h2>Measured beside predicted</h2><h3>After calibration</h3>")
    head = ["level", "figure", "measured", "predicted (95 % CI)", "error", "bound"]
    parts.append(_table(head, _rows(d.after)))
    parts.append("<h3>Before calibration (the scenario's own figures)</h3>")
    parts.append(_table(head, _rows(d.before)))
    parts.append("<h3>Plan B criteria, model before calibration</h3>")
    parts.append(
        _table(
            ["level", "criterion", "limit", "measured", "model", "agree"],
            _verdict_rows(d.verdicts_before),
        )
    )
    parts.append("<h2>Over time</h2>")
    for caption, src in plots:
        parts.append(
            f"<figure><img src='{src}' alt=''><figcaption>{html.escape(caption)}"
            "</figcaption></figure>"
        )
    parts.append("<h2>Nothing lost, nothing duplicated</h2>")
    parts.append(
        _table(
            ["check", "result", "ok"],
            [
                [html.escape(a), html.escape(b), "yes" if c else "<b>no</b>"]
                for a, b, c in d.integrity
            ],
        )
    )
    if d.calibration is not None:
        parts.append(
            "<h2>Calibration</h2><p>Written to <a href='calibration.yaml'>"
            f"calibration.yaml</a>: {html.escape(d.calibration.source)}.</p>"
        )
        fields = [
            (k, v)
            for k, v in d.calibration.model_dump().items()
            if k not in ("source", "latency_s") and v is not None
        ]
        parts.append(_table(["figure", "value"], [[k, num(float(v))] for k, v in fields]))
        lat = [
            [
                p,
                m,
                f"{len(v):,}",
                num(float(np.mean(v)) * 1000, "ms"),
                num(float(np.percentile(v, 95)) * 1000, "ms"),
            ]
            for p, ms in d.calibration.latency_s.items()
            for m, v in ms.items()
        ]
        parts.append(_table(["provider", "method", "samples", "mean", "p95"], lat))
        q = d.calibration_quality.get("cpu_fit_rel_rms", math.nan)
        parts.append(
            f"<p>CPU fit: relative RMS residual {rel(q).lstrip('+')} over 20 s chunks.</p>"
        )
    parts.append("<h2>What the load test and the model do differently</h2><ul>")
    parts += [f"<li>{html.escape(n)}</li>" for n in d.notes]
    parts.append(
        "</ul><h2>Files</h2><ul><li><a href='locust_report.html'>Locust's report</a>"
        "</li><li>Locust CSVs: locust_stats.csv, locust_stats_history.csv, "
        "locust_failures.csv</li><li>comparison.csv, verdicts.csv, measured.json, "
        "report.json, calibration.yaml, plan.json, logs/</li></ul></body></html>"
    )
    path.write_text("".join(parts))


def write_tables(out: Path, d: ReportData, extra: Mapping[str, Any]) -> None:
    """CSV and JSON forms of the tables (full precision)."""
    comparison_frame(d.before, d.after).to_csv(out / "comparison.csv", index=False)
    verdicts_frame(d.verdicts_before, d.verdicts_after).to_csv(out / "verdicts.csv", index=False)
    if d.calibration is not None:
        (out / "calibration.yaml").write_text(
            "# Measured by mailsync loadtest run; use with --calibration.\n"
            + yaml.safe_dump(d.calibration.model_dump(exclude_none=True), sort_keys=False)
        )
    (out / "report.json").write_text(json.dumps(extra, indent=1, default=_jsonable))


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return x.item()
    return str(x)


def cpu_of(samples: Samples, name: str, w: Window) -> float:
    """CPU cores of a process group over a window (for the summary)."""
    return process_cpu(samples, name, w)[0]

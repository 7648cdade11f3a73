"""``reports/<name>/``: the three-level report (HTML with the plots of ``plots``), its tables
as CSV and JSON, the calibration file; Locust's own report and CSVs are written beside it by
the load generator."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from loadtest.run.compare import Row, Verdict, comparison_frame, verdicts_frame
from loadtest.run.measure import Window, process_cpu
from loadtest.run.sampler import Samples
from simulator.inputs.calibration import Calibration


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
    parts.append(_levels_html(d))
    parts.append(_agreement_html(d))
    parts.append("<h2>Over time</h2>")
    for caption, src in plots:
        parts.append(
            f"<figure><img src='{src}' alt=''><figcaption>{html.escape(caption)}"
            "</figcaption></figure>"
        )
    parts.append(_integrity_html(d))
    if d.calibration is not None:
        parts.append(_calibration_html(d, d.calibration))
    parts.append("<h2>What the load test and the model do differently</h2><ul>")
    parts += [f"<li>{html.escape(n)}</li>" for n in d.notes]
    parts.append(
        "</ul><h2>Files</h2><ul><li><a href='locust_report.html'>Locust's report</a>"
        "</li><li>Locust CSVs: locust_stats.csv, locust_stats_history.csv, "
        "locust_failures.csv</li><li>comparison.csv, verdicts.csv, measured.json, "
        "report.json, calibration.yaml, plan.json, logs/</li></ul></body></html>"
    )
    path.write_text("".join(parts))


def _levels_html(d: ReportData) -> str:
    """The table of load levels."""
    parts: list[str] = []
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
    return "".join(parts)


def _agreement_html(d: ReportData) -> str:
    """How many figures agree within their bounds, the criteria and every figure."""
    parts: list[str] = []
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
    return "".join(parts)


def _integrity_html(d: ReportData) -> str:
    """The store compared with the providers."""
    parts: list[str] = []
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
    return "".join(parts)


def _calibration_html(d: ReportData, cal: Calibration) -> str:
    """The calibration measured in this run."""
    parts: list[str] = []
    parts.append(
        "<h2>Calibration</h2><p>Written to <a href='calibration.yaml'>"
        f"calibration.yaml</a>: {html.escape(cal.source)}.</p>"
    )
    fields = [
        (k, v)
        for k, v in cal.model_dump().items()
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
        for p, ms in cal.latency_s.items()
        for m, v in ms.items()
    ]
    parts.append(_table(["provider", "method", "samples", "mean", "p95"], lat))
    q = d.calibration_quality.get("cpu_fit_rel_rms", math.nan)
    parts.append(f"<p>CPU fit: relative RMS residual {rel(q).lstrip('+')} over 20 s chunks.</p>")
    return "".join(parts)


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

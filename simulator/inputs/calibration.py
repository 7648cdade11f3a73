"""Calibration files: measured latencies and resource costs that replace a scenario's defaults.

Format (YAML or JSON/TOML; every field optional, see docs/simulator.md)::

    source: load test of daemon 0.3 on gp-4, 2026-12-01
    latency_s:
      gmail: {default: [0.12, 0.16, ...], messages.get: [0.2, ...]}
      graph: {default: [...]}
      imap: {default: [...], imap.fetch: [...]}   # seconds per round trip
    cpu_ms_per_call: 0.8
    cpu_ms_per_message: 0.04
    rss_base_mb: 95
    rss_per_job_mb: 0.4
    rss_per_mailbox_kb: 1.5
    rss_per_imap_connection_kb: 300
    db_commit_ms: 1.2
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from daemon.errors import ConfigError
from simulator.inputs.loader import Document, read_document, validate
from simulator.inputs.providers import PROVIDERS
from simulator.inputs.scenario import Scenario


class Calibration(BaseModel):
    """Measured figures; any field left out keeps the scenario's value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = ""
    # provider -> method (or "default") -> measured seconds per request.
    latency_s: dict[str, dict[str, list[float]]] = Field(default_factory=dict)
    cpu_ms_per_call: float | None = Field(default=None, ge=0)
    cpu_ms_per_message: float | None = Field(default=None, ge=0)
    cpu_ms_per_job: float | None = Field(default=None, ge=0)
    cpu_ms_per_s_process: float | None = Field(default=None, ge=0)
    cpu_ms_per_cycle: float | None = Field(default=None, ge=0)
    cpu_ms_per_connect: float | None = Field(default=None, ge=0)
    dispatch_ms: float | None = Field(default=None, ge=0)
    enqueue_ms_per_job: float | None = Field(default=None, ge=0)
    scheduler_overshoot_ms: float | None = Field(default=None, ge=0)
    rss_base_mb: float | None = Field(default=None, ge=0)
    rss_per_job_mb: float | None = Field(default=None, ge=0)
    rss_per_mailbox_kb: float | None = Field(default=None, ge=0)
    rss_per_imap_connection_kb: float | None = Field(default=None, ge=0)
    db_commit_ms: float | None = Field(default=None, ge=0)
    db_ms_per_message: float | None = Field(default=None, ge=0)


def load_calibration(path: str | Path) -> Calibration:
    """Read and validate a calibration file; errors name the field and line."""
    p = Path(path)
    if p.suffix == ".json":
        try:
            data: Any = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"{p}: cannot read calibration: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: the calibration must be an object")
        doc = Document(data, {}, str(p))
    else:
        doc = read_document(p)
    cal = validate(Calibration, doc)
    for provider, methods in cal.latency_s.items():
        if provider not in PROVIDERS:
            raise ConfigError(f"{p}: latency_s.{provider}: unknown provider; known: {PROVIDERS}")
        for method, sample in methods.items():
            if not sample or min(sample) < 0:
                raise ConfigError(f"{p}: latency_s.{provider}.{method}: need samples >= 0")
    return cal


def apply(s: Scenario, cal: Calibration, source: str) -> Scenario:
    """``s`` with the calibrated figures in place of its defaults."""
    changes: dict[str, Any] = {"calibrated_from": cal.source or source}
    for field in (
        "cpu_ms_per_call",
        "cpu_ms_per_message",
        "cpu_ms_per_job",
        "cpu_ms_per_s_process",
        "cpu_ms_per_cycle",
        "cpu_ms_per_connect",
        "dispatch_ms",
        "enqueue_ms_per_job",
        "scheduler_overshoot_ms",
        "rss_base_mb",
        "rss_per_job_mb",
        "rss_per_mailbox_kb",
        "rss_per_imap_connection_kb",
        "db_commit_ms",
        "db_ms_per_message",
    ):
        value = getattr(cal, field)
        if value is not None:
            changes[f"resources.{field}"] = value
    for provider, methods in cal.latency_s.items():
        if provider not in s.providers:
            continue
        by_method = {}
        for method, sample in methods.items():
            dist = {"kind": "empirical", "samples": sample}
            if method == "default":
                changes[f"providers.{provider}.latency_s"] = dist
            else:
                by_method[method] = dist
        if by_method:
            changes[f"providers.{provider}.latency_by_method"] = by_method
    return s.updated(changes)

"""The model's prediction of each level: the same scenario, the level's tenants, the level's
timeline (horizon = level length, warm-up = its settling time), on this machine."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import yaml

from loadtest.run.plan import Level, LoadPlan
from simulator.inputs.calibration import Calibration, apply
from simulator.inputs.catalogue import load_catalogue
from simulator.inputs.population import Mailboxes
from simulator.inputs.providers import PROVIDERS
from simulator.inputs.scenario import Scenario
from simulator.runs.results import ScenarioResult
from simulator.runs.runner import run_many

MACHINE = "this-machine"


def write_catalogue(path: Path) -> str:
    """A catalogue whose one instance is this machine (cores, RAM; no price)."""
    base = load_catalogue("default")
    data = base.model_dump()
    data["instances"] = {
        MACHINE: {
            "vcpu": os.cpu_count() or 1,
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "usd_month": 0.0,
        }
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path.resolve())


def replications_for(plan: LoadPlan, level: Level, floor: int, target: float = 4000.0) -> int:
    """Enough replications for about ``target`` delivered messages in the measured window
    (percentiles of a small level are noisy), at least ``floor``, at most 20."""
    tenants = plan.tenants[: level.tenants]
    boxes = {m.index: m for m in plan.mailboxes}
    rate = sum(boxes[i].arrivals_per_s for t in tenants for i in t.mailboxes)
    per_run = rate * (level.duration_s - level.settle_s)
    if per_run <= 0:
        return floor
    return int(min(20, max(floor, math.ceil(target / per_run))))


def level_mailboxes(plan: LoadPlan, level: Level) -> Mailboxes:
    """The very mailboxes the load test activated at this level (the model draws only their
    start state)."""
    rows = [m for m in plan.mailboxes if m.tenant < level.tenants]
    return Mailboxes(
        np.array([m.tenant for m in rows], dtype=np.int64),
        np.array([PROVIDERS.index(m.provider) for m in rows], dtype=np.int64),
        np.array([m.arrivals_per_s for m in rows]),
        np.array([float(m.size) for m in rows]),
        np.array([float(m.interval_s) for m in rows]),
    )


def level_scenario(plan: LoadPlan, level: Level, replications: int) -> Scenario:
    """The scenario the model runs for one level."""
    return plan.scenario.updated(
        {
            "name": f"{plan.scenario.name} · {level.name}",
            "population.tenants": level.tenants,
            "run.horizon_s": level.duration_s,
            "run.warmup_s": level.settle_s,
            "run.replications": replications,
            "run.seed": plan.seed + 17,
            "run.drain": False,
            "run.steady": True,
            "run.sample_interval_s": min(plan.scenario.run.sample_interval_s, 5.0),
        }
    )


@dataclass
class Prediction:
    """The model's figures per level, with the calibration they used (None: the scenario's)."""

    results: dict[str, ScenarioResult]
    calibration: str | None

    def figures(self, level: str) -> dict[str, tuple[float, float]]:
        """(mean, CI half-width) of every figure of a level."""
        r = self.results[level]
        return {k: (e.mean, e.half) for k, e in r.metrics.items()}


def predict(
    plan: LoadPlan,
    replications: int = 3,
    calibration: Calibration | None = None,
    source: str = "",
    jobs: int | None = None,
    progress: bool = True,
) -> Prediction:
    """Run the model for every level (in parallel processes)."""
    scenarios = [
        level_scenario(plan, lv, replications_for(plan, lv, replications)) for lv in plan.levels
    ]
    if calibration is not None:
        scenarios = [apply(s, calibration, source) for s in scenarios]
    boxes = [level_mailboxes(plan, lv) for lv in plan.levels]
    results = run_many(scenarios, jobs=jobs, progress=progress, desc="predicting", mailboxes=boxes)
    return Prediction(
        {lv.name: r for lv, r in zip(plan.levels, results, strict=True)},
        calibration.source or source if calibration is not None else None,
    )


def capacity(pred: Prediction, plan: LoadPlan) -> float:
    """The predicted capacity: throughput at the most loaded level."""
    last = plan.levels[-1].name
    v = pred.results[last].get("throughput_per_min")
    return v if math.isfinite(v) else math.nan

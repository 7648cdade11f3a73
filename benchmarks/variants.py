"""The accuracy benchmarks' scenario names: a shipped scenario with a ``@`` variant.

``@model`` (or none) runs it as shipped, ``@2s-jobs`` with every sync about 2 s (the plan's
assumption), ``@push`` with every arrival notifying (push-driven). Shared by
``sim_accuracy.py`` and ``sim_cycles.py``, so that a name means one scenario in both.
"""

from __future__ import annotations

from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario, plan_job_time


def scenario(name: str) -> Scenario:
    """A shipped scenario by name, with its ``@`` variant."""
    base, _, variant = name.partition("@")
    s = load_scenario(base).updated({"name": name})
    if variant == "2s-jobs":
        return s.updated(plan_job_time(2.0))
    if variant == "push":
        return s.updated({"daemon.push_share": 1.0})
    if variant not in ("", "model"):
        raise SystemExit(f"unknown variant {variant!r} in {name!r}: use @model, @2s-jobs or @push")
    return s

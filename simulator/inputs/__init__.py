"""What is simulated: the scenario, its distributions and bounds, the files it is read from.

``scenario`` (the typed model of a scenario: population, daemon, resources, costs, run),
``providers`` (how each provider answers), ``section`` (the strict base of every section),
``loader`` (YAML/TOML files, ``extends:``, ``--set``, errors naming file, line and field),
``bounds`` (limits on input, each with its reason), ``distributions``, ``population``
(drawing the mailboxes), ``calibration`` (measured latencies and costs that replace
defaults) and ``catalogue`` (instance sizes and prices). Nothing here simulates; everything
above reads these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.exports import lazy

if TYPE_CHECKING:
    from simulator.inputs.calibration import Calibration, apply, load_calibration
    from simulator.inputs.catalogue import Catalogue, load_catalogue
    from simulator.inputs.distributions import (
        Constant,
        Distribution,
        Empirical,
        Exponential,
        Lognormal,
        Uniform,
        draw,
        mean,
    )
    from simulator.inputs.loader import load_scenario, shipped_scenarios
    from simulator.inputs.population import Mailboxes, PopulationArrays, expected_mailboxes
    from simulator.inputs.providers import IMAP, PROVIDERS, GraphModel, ImapModel, ProviderModel
    from simulator.inputs.scenario import Criteria, Resources, Scenario, plan_job_time

# Where each public name lives; imported on first use (``simulator.exports``).
_WHERE = {
    "Calibration": "calibration",
    "Catalogue": "catalogue",
    "Constant": "distributions",
    "Criteria": "scenario",
    "Distribution": "distributions",
    "Empirical": "distributions",
    "Exponential": "distributions",
    "GraphModel": "providers",
    "IMAP": "providers",
    "ImapModel": "providers",
    "Lognormal": "distributions",
    "Mailboxes": "population",
    "PROVIDERS": "providers",
    "PopulationArrays": "population",
    "ProviderModel": "providers",
    "Resources": "scenario",
    "Scenario": "scenario",
    "Uniform": "distributions",
    "apply": "calibration",
    "draw": "distributions",
    "expected_mailboxes": "population",
    "load_calibration": "calibration",
    "load_catalogue": "catalogue",
    "load_scenario": "loader",
    "mean": "distributions",
    "plan_job_time": "scenario",
    "shipped_scenarios": "loader",
}

__all__ = [
    "IMAP",
    "PROVIDERS",
    "Calibration",
    "Catalogue",
    "Constant",
    "Criteria",
    "Distribution",
    "Empirical",
    "Exponential",
    "GraphModel",
    "ImapModel",
    "Lognormal",
    "Mailboxes",
    "PopulationArrays",
    "ProviderModel",
    "Resources",
    "Scenario",
    "Uniform",
    "apply",
    "draw",
    "expected_mailboxes",
    "load_calibration",
    "load_catalogue",
    "load_scenario",
    "mean",
    "plan_job_time",
    "shipped_scenarios",
]

__getattr__ = lazy(__name__, _WHERE)

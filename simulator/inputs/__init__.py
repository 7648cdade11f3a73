"""What is simulated: the scenario, its distributions and bounds, the files it is read from.

``scenario`` (the typed model of a scenario), ``loader`` (YAML/TOML files, ``extends:``,
``--set``, errors naming file, line and field), ``bounds`` (limits on input, each with its
reason), ``distributions``, ``population`` (drawing the mailboxes), ``calibration`` (measured
latencies and costs that replace defaults) and ``catalogue`` (instance sizes and prices).
Nothing here simulates; everything above reads these.
"""

from simulator.inputs.calibration import Calibration, apply, load_calibration
from simulator.inputs.catalogue import Catalogue, load_catalogue
from simulator.inputs.distributions import Constant, Distribution, Empirical, Exponential, Lognormal, Sampler, Uniform, draw, mean
from simulator.inputs.loader import load_scenario, shipped_scenarios
from simulator.inputs.population import Mailboxes, PopulationArrays, expected_mailboxes
from simulator.inputs.scenario import Criteria, GraphModel, IMAP, ImapModel, PROVIDERS, ProviderModel, Resources, Scenario, plan_job_time

__all__ = ["Calibration", "Catalogue", "Constant", "Criteria", "Distribution", "Empirical", "Exponential", "GraphModel", "IMAP", "ImapModel", "Lognormal", "Mailboxes", "PROVIDERS", "PopulationArrays", "ProviderModel", "Resources", "Sampler", "Scenario", "Uniform", "apply", "draw", "expected_mailboxes", "load_calibration", "load_catalogue", "load_scenario", "mean", "plan_job_time", "shipped_scenarios"]

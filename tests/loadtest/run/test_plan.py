"""The plan of a load test: the scenario as run, its levels, its tenants (pure, no service)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from daemon.errors import ConfigError
from loadtest.run.orchestrate import resolve_scenario
from loadtest.run.plan import LoadPlan, build_plan
from loadtest.run.prepare import predicted_capacity, prepare, scaled
from simulator.inputs import population
from simulator.inputs.distributions import Constant, Empirical, Lognormal, Uniform
from simulator.inputs.loader import load_scenario


def test_sizes_scale_on_every_distribution() -> None:
    assert scaled(Lognormal(mean=5000, sigma=1.0), 0.01) == Lognormal(mean=50, sigma=1.0)
    assert scaled(Constant(value=300), 0.5) == Constant(value=150)
    assert scaled(Uniform(low=10, high=30), 0.1) == Uniform(low=1, high=3)
    assert scaled(Empirical(samples=[100, 200]), 0.5) == Empirical(samples=[50, 100])


def test_prepare_says_what_changed() -> None:
    s, notes = prepare(load_scenario("mixed-imap"), processes=2, size_scale=0.02)
    assert s.daemon.processes == 2 and s.daemon.hosts == 1 and s.daemon.fresh_start
    assert s.population.mailbox_size == Lognormal(mean=100, sigma=1.0)
    assert s.providers.gmail.errors.transient == 0
    assert (s.providers.graph.folders, s.providers.graph.parent_folders) == (6, 0)
    text = " ".join(notes)
    assert "scaled by 0.02" in text and "delay proxy" in text and "six" not in text


def test_modes_dovecot_cannot_offer_are_refused() -> None:
    s = load_scenario("mixed-imap").updated({"providers.imap.mode": "plain"})
    with pytest.raises(ConfigError, match="only mode qresync"):
        prepare(s)
    with pytest.raises(ConfigError, match="size-scale"):
        prepare(load_scenario("plan-b-1000"), size_scale=0)


def test_levels_add_tenants_up_to_their_share_of_capacity() -> None:
    s, _ = prepare(load_scenario(resolve_scenario("ci")))
    cap = predicted_capacity(s)
    assert cap > 0
    plan = build_plan(s, "ci", cap, seed=3)
    light, sat, over = plan.levels
    assert [lv.name for lv in plan.levels] == ["light", "saturation", "overload"]
    assert light.tenants < sat.tenants < over.tenants == len(plan.tenants)
    # Each level's first tenants ask for (just over) its share of the capacity.
    demand = {t.index: sum(60 / t.interval_s for _ in t.mailboxes) for t in plan.tenants}
    for lv in plan.levels:
        asked = sum(demand[i] for i in range(lv.tenants))
        assert lv.share * cap <= asked < lv.share * cap + max(demand.values()) + 1e-9
    # Back to back, each with its unmeasured start; the default length covers 3 intervals.
    assert light.start_s == 0 and sat.start_s == light.duration_s
    assert light.duration_s == pytest.approx(3 * plan.interval_s + 30)
    assert light.window == (light.settle_s, light.duration_s)
    # The simulator's own population for the same scenario and seed.
    drawn = population.draw_mailboxes(
        s.updated({"population.tenants": 2000}), np.random.default_rng(3)
    )
    first = [m for m in plan.mailboxes][:20]
    assert [m.provider for m in first] == [
        ["gmail", "graph", "imap"][int(p)] for p in drawn.provider[:20]
    ]
    cap_size = s.population.mailbox_size_cap
    assert all(0 <= m.size <= cap_size for m in plan.mailboxes)
    assert LoadPlan.from_json(plan.to_json()) == plan


def test_bad_levels_and_too_many_mailboxes_are_named() -> None:
    s, _ = prepare(load_scenario(resolve_scenario("ci")))
    with pytest.raises(ConfigError, match="increasing shares"):
        build_plan(s, "ci", 600.0, shares=(0.9, 0.3))
    with pytest.raises(ConfigError, match="max-mailboxes"):
        build_plan(s, "ci", 600.0, max_mailboxes=10)
    with pytest.raises(ConfigError, match="no capacity"):
        build_plan(s, "ci", math.nan)
    with pytest.raises(ConfigError, match="one per level"):
        build_plan(s, "ci", 600.0, duration_s=(30.0, 30.0))
    with pytest.raises(ConfigError, match="settle"):
        build_plan(s, "ci", 600.0, duration_s=20.0, settle_s=30.0)

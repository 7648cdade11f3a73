"""Scenario files: YAML and TOML, extends, and errors that name the field and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.errors import ConfigError
from simulator.inputs.loader import load_scenario, shipped_scenarios


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_every_shipped_scenario_loads() -> None:
    names = shipped_scenarios()
    assert {"plan-b-300-original", "plan-b-1000", "plan-b-1500", "plan-c-5000"} <= set(names)
    for n in names:
        s = load_scenario(n)
        assert s.population.tenants >= 300
        assert s.profile().name == s.daemon.profile


def test_extends_merges_mappings_and_the_child_wins(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "mine.yaml",
        "extends: plan-b-1000\nname: mine\n"
        "daemon:\n  processes: 3\n  hosts: 3\n  overrides: {concurrency.high: 25}\n",
    )
    s = load_scenario(p)
    assert (s.name, s.daemon.processes, s.population.tenants) == ("mine", 3, 1000)
    assert s.profile().concurrency.high == 25
    assert s.daemon.quota_preset == "documented"  # from base.yaml, two levels up


def test_yaml_error_names_field_and_line(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "bad.yaml",
        "extends: base\npopulation:\n  tenants: 10\ndaemon:\n  profile: plan-b\n  processes: 0\n",
    )
    with pytest.raises(ConfigError) as e:
        load_scenario(p)
    msg = str(e.value)
    assert "bad.yaml: line 6: daemon.processes" in msg
    assert "greater than or equal to 1" in msg


def test_unknown_field_and_bad_distribution_are_named(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "bad.yaml",
        "population:\n  tenants: 5\n  colour: blue\n  mailbox_size: {kind: gamma, mean: 3}\n",
    )
    with pytest.raises(ConfigError) as e:
        load_scenario(p)
    msg = str(e.value)
    assert "line 3: population.colour: Extra inputs are not permitted" in msg
    assert "line 4: population.mailbox_size" in msg and "gamma" in msg


def test_cross_field_rules_are_explained(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "bad.yaml",
        "population:\n  tenants: 5\n"
        "  providers: {gmail: 0.5, graph: 0.2}\n"
        "daemon:\n  profile: plan-z\n",
    )
    with pytest.raises(ConfigError) as e:
        load_scenario(p)
    msg = str(e.value)
    assert "line 3: population.providers: shares must sum to 1" in msg
    assert "unknown profile 'plan-z'; known: original, plan-b" in msg


def test_toml_errors_name_field_and_line(tmp_path: Path) -> None:
    p = write(
        tmp_path, "s.toml", "[population]\ntenants = 20\n\n[run]\nhorizon_s = 600\nwarmup_s = -5\n"
    )
    with pytest.raises(ConfigError, match=r"s.toml: line 6: run.warmup_s"):
        load_scenario(p)
    ok = write(tmp_path, "ok.toml", "[population]\ntenants = 20\n[daemon]\nprocesses = 2\n")
    assert load_scenario(ok).daemon.processes == 2


def test_syntax_errors_carry_the_line(tmp_path: Path) -> None:
    p = write(tmp_path, "broken.yaml", "population:\n  tenants: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml: line 3: invalid YAML"):
        load_scenario(p)
    with pytest.raises(ConfigError, match="no such file or shipped scenario"):
        load_scenario("does-not-exist")


def test_overrides_are_validated_too() -> None:
    with pytest.raises(ConfigError, match="daemon.hosts"):
        load_scenario("plan-b-1000", {"daemon.hosts": 0})
    s = load_scenario("plan-b-1000", {"population.tenants": 77})
    assert s.population.tenants == 77

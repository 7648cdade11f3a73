"""Bad scenario input (issues 13 and 9): one line naming file, line and field, exit 2, no
traceback; bounds say why; an event simulation is estimated before it runs and refused past
the limits unless ``--force``; ``extends:`` may change a distribution's kind."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from daemon.errors import ConfigError
from simulator.cli import app
from simulator.inputs.distributions import Exponential
from simulator.inputs.loader import load_scenario
from simulator.inputs.scenario import Scenario
from simulator.runs import run_cost

runner = CliRunner()

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


HEAD = "extends: base\npopulation:\n  tenants: 10\n"

# (file name, content, line, field, words of the reason)
BAD: list[tuple[str, str | bytes, int, str, str]] = [
    (
        "override.yaml",
        HEAD + "daemon:\n  overrides: {batch_size: lots}\n",
        5,
        "daemon.overrides.batch_size",
        "expected a finite number, got 'lots'",
    ),
    (
        "tenants.yaml",
        "extends: base\npopulation:\n  tenants: 1000000000\n",
        3,
        "population.tenants",
        "less than or equal to 1000000 (the event model keeps",
    ),
    (
        "mailboxes.yaml",
        HEAD + "  mailboxes_per_tenant: {kind: constant, value: 1e9}\n",
        4,
        "population.mailboxes_per_tenant",
        "more than 1,000,000 mailboxes",
    ),
    ("inf.yaml", HEAD + "run:\n  horizon_s: .inf\n", 5, "run.horizon_s", "finite number"),
    (
        "long.yaml",
        HEAD + "run:\n  horizon_s: 1e15\n",
        5,
        "run.horizon_s",
        "less than or equal to 2592000 (a month",
    ),
    (
        "sample.yaml",
        HEAD + "run:\n  sample_interval_s: 1e-9\n",
        5,
        "run.sample_interval_s",
        "greater than or equal to 1 (each sample scans every mailbox",
    ),
    (
        "reps.yaml",
        HEAD + "run:\n  replications: 1000000000\n",
        5,
        "run.replications",
        "less than or equal to 1000",
    ),
    (
        "size.yaml",
        HEAD + "  mailbox_size: {kind: constant, value: 1e12}\n",
        4,
        "population.mailbox_size",
        "above mailbox_size_cap",
    ),
    (
        "cap.yaml",
        HEAD + "  mailbox_size_cap: 1000000000\n",
        4,
        "population.mailbox_size_cap",
        "Exchange Online",
    ),
    (
        "push.yaml",
        "extends: plan-b-1000\npopulation:\n  sync_interval_s: {kind: constant, value: 1e9}\n"
        "daemon:\n  push_share: 1.0\n",
        3,
        "population.sync_interval_s",
        "at most one day",
    ),
    (
        "nested.yaml",
        HEAD + "daemon:\n  overrides:\n    concurrency: 5\n",
        6,
        "daemon.overrides.concurrency",
        "expected a mapping of its fields",
    ),
    (
        "latin1.yaml",
        HEAD.encode() + b"name: caf\xe9\n",
        4,
        "",
        "not UTF-8 text (byte 0xe9)",
    ),
    (
        "s.toml",
        "[population]\ntenants = 10\n\n[run]\nhorizon_s = inf\n",
        5,
        "run.horizon_s",
        "finite number",
    ),
]


@pytest.mark.parametrize(("name", "text", "line", "field", "why"), BAD, ids=[b[0] for b in BAD])
def test_loading_bad_input_names_file_line_field_and_reason(
    tmp_path: Path, name: str, text: str | bytes, line: int, field: str, why: str
) -> None:
    p = write(tmp_path, name, text)
    with pytest.raises(ConfigError) as e:
        load_scenario(p)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{p}: line {line}: {field}"), msg
    assert why in msg


@pytest.mark.parametrize(("name", "text", "line", "field", "why"), BAD, ids=[b[0] for b in BAD])
def test_the_cli_prints_one_line_and_exits_2(
    tmp_path: Path, name: str, text: str | bytes, line: int, field: str, why: str
) -> None:
    p = write(tmp_path, name, text)
    res = runner.invoke(app, ["simulate", str(p)])
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit)
    assert "Traceback" not in res.output
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"error: {p}: line {line}: {field}")
    assert why in res.stderr


def test_the_mailsync_command_has_no_traceback_either(tmp_path: Path) -> None:
    p = write(tmp_path, "latin1.yaml", HEAD.encode() + b"name: caf\xe9\n")
    done = subprocess.run(
        [sys.executable, "-m", "mailsync", "simulate", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {p}: line 4:")


def test_yaml_a_parser_cannot_convert_is_an_error(tmp_path: Path) -> None:
    p = write(tmp_path, "date.yaml", HEAD + "name: 2024-13-45\n")
    res = runner.invoke(app, ["simulate", str(p)])
    assert res.exit_code == 2
    assert res.stderr.startswith(f"error: {p}: invalid YAML: month must be in 1..12")


def test_set_values_are_bounded_and_named(tmp_path: Path) -> None:
    res = runner.invoke(app, ["simulate", "plan-b-1000", "--set", "run.horizon_s=1e15"])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: --set run.horizon_s: run.horizon_s: Input should be")
    res = runner.invoke(app, ["simulate", "plan-b-1000", "--replications", "1000000"])
    assert res.exit_code == 2
    assert "Traceback" not in res.output


def test_the_fast_path_and_sweep_refuse_a_long_push_interval(tmp_path: Path) -> None:
    p = write(tmp_path, "push.yaml", BAD[9][1])
    for args in (["report", "--fast", str(p), "--out", str(tmp_path)], ["sweep", str(p)]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, res.output
        assert f"{p}: line 3: population.sync_interval_s" in res.stderr


def test_a_sync_reading_too_much_mail_is_refused(tmp_path: Path) -> None:
    # Within a day, but 5,000 arrivals/h for a day is 204,000 messages a sync with changes.
    p = write(
        tmp_path,
        "busy.yaml",
        "extends: plan-b-1000\npopulation:\n  sync_interval_s: {kind: constant, value: 86400}\n"
        "  activity: [{name: flood, share: 1, arrivals_per_hour: 5000}]\n",
    )
    with pytest.raises(ConfigError, match=r"line 2: population: one sync would read about"):
        load_scenario(p)


def test_sweep_values_are_bounded(tmp_path: Path) -> None:
    for opt, value in (("--tenants", "1000000000"), ("--processes", "0"), ("--intervals", "nan")):
        res = runner.invoke(app, ["sweep", opt, value, "--no-verify", "--out", str(tmp_path / "c")])
        assert res.exit_code == 2, (opt, res.output)
        assert res.stderr.startswith(f"error: {opt}:")


def test_the_estimate_counts_syncs_runs_and_memory() -> None:
    s = load_scenario("plan-b-1000")  # 1,000 mailboxes every 300 s for 7,200 s, 5 x 2 runs
    e = run_cost.estimate([s], jobs=2)
    assert e.runs == 10 and e.processes == 2
    assert e.jobs == pytest.approx(10 * 1000 * 7200 / 300)
    assert 0 < e.seconds < 60 and 0.1 < e.peak_gb < 1
    assert run_cost.refusal(e) is None
    huge = s.updated(
        {"population.tenants": 1_000_000, "run.horizon_s": 30 * 86400.0, "run.replications": 100}
    )
    assert run_cost.refusal(run_cost.estimate([huge])) is not None


def test_a_long_run_is_refused_unless_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["simulate", "plan-b-300-original", "--replications", "1", "--jobs", "1"]
    args += ["--set", "population.tenants=10", "--set", "run.horizon_s=600"]
    args += ["--set", "run.warmup_s=100", "--json"]
    monkeypatch.setattr(run_cost, "MAX_RUN_S", 0.0)
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert res.stderr.startswith("error: plan-b-300-original: estimate: about 40 simulated")
    assert "--force" in res.stderr and res.stderr.count("\n") == 1
    res = runner.invoke(app, [*args, "--force"])
    assert res.exit_code == 0, res.output


def test_a_huge_run_is_refused_before_it_starts(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "huge.yaml",
        "extends: plan-b-1000\npopulation:\n  tenants: 1000000\n"
        "run:\n  horizon_s: 2592000\n  replications: 1000\n",
    )
    res = runner.invoke(app, ["simulate", str(p)])
    assert res.exit_code == 2
    assert "estimate:" in res.stderr and "--force" in res.stderr


def test_simulate_json_has_null_not_nan() -> None:
    args = ["simulate", "plan-b-300-original", "--json", "--replications", "1", "--jobs", "1"]
    args += ["--set", "population.tenants=10", "--set", "run.horizon_s=600"]
    res = runner.invoke(app, [*args, "--set", "run.warmup_s=100"])
    assert res.exit_code == 0, res.output

    def refuse(c: str) -> None:
        raise AssertionError(f"{c} is not JSON")

    doc = json.loads(res.stdout, parse_constant=refuse)
    # One replication: no confidence interval.
    assert doc["metrics"]["throughput_per_min"]["ci95"] is None


def test_extends_may_change_a_distribution_kind(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "mine.yaml",
        "extends: plan-b-1000\nproviders:\n  gmail:\n    latency_s: {kind: exponential, mean: 0.2}\n",
    )
    s = load_scenario(p)
    assert s.providers.gmail.latency_s == Exponential(mean=0.2)
    # The same kind still merges: the base's sigma stays.
    q = write(
        tmp_path,
        "same.yaml",
        "extends: plan-b-1000\nproviders:\n  gmail:\n    latency_s: {mean: 0.3}\n",
    )
    assert load_scenario(q).providers.gmail.latency_s.model_dump() == {
        "kind": "lognormal",
        "mean": 0.3,
        "sigma": 0.5,
    }


def test_errors_in_a_changed_kind_point_at_the_users_file(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "mine.yaml",
        "extends: plan-b-1000\nproviders:\n  gmail:\n"
        "    latency_s:\n      kind: uniform\n      low: 0.1\n",
    )
    with pytest.raises(ConfigError) as e:
        load_scenario(p)
    assert str(e.value) == f"{p}: line 4: providers.gmail.latency_s.high: Field required"


def test_overrides_are_checked_and_normalised() -> None:
    s = load_scenario(
        "plan-b-1000", {"daemon.overrides": {"batch_size": 300.0, "retry": {"cap_s": 60}}}
    )
    assert s.daemon.overrides == {"batch_size": 300, "retry.cap_s": 60}
    assert s.profile().batch_size == 300 and s.profile().retry.cap_s == 60
    for bad, why in (
        ({"batch_size": 2.5}, "batch_size: expected a whole number"),
        ({"sync_interval_s": 1e9}, "sync_interval_s: 1000000000.0 is outside [0, 86400]"),
        ({"scheduler_interval_s": 1e-9}, "scheduler_interval_s: 1e-09 is outside"),
        ({"colour": 1}, "colour: unknown profile field"),
        ({"retry.jitter": 2}, "retry.jitter must be within [0, 1]"),
    ):
        with pytest.raises(ConfigError, match=re.escape(why)):
            load_scenario("plan-b-1000", {"daemon.overrides": bad})


def test_a_scenario_round_trips_with_its_bounds() -> None:
    s = load_scenario("mixed-imap")
    assert Scenario.model_validate(s.model_dump(mode="json")) == s

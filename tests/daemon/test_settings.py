"""Settings: precedence, validation errors naming the field, secrets masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from daemon.cli import app
from daemon.errors import ConfigError
from daemon.logs import mask_secrets
from daemon.policy import QUOTA_MARGIN_DEFAULT
from daemon.settings import load_settings, redact_url

EXAMPLE = Path(__file__).parents[2] / "deploy" / "mailsync.example.toml"


def test_example_config_loads_with_defaults_filled_in() -> None:
    s = load_settings(EXAMPLE, environ={})
    assert s.profile.name == "plan-b"
    assert s.gmail.token_url == "https://oauth2.googleapis.com/token"
    assert s.gmail.client_id.endswith("apps.googleusercontent.com")
    assert s.graph.scope.startswith("offline_access")


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        '[policy]\nprofile = "original"\nbatch_size = 70\n[policy.concurrency]\nhigh = 9\n'
    )
    s = load_settings(cfg, environ={})
    assert (s.profile.name, s.profile.batch_size, s.profile.concurrency.high) == ("original", 70, 9)
    assert s.profile.concurrency.normal == 3  # from the original profile
    s = load_settings(cfg, environ={"MAILSYNC_POLICY__BATCH_SIZE": "80"})
    assert s.profile.batch_size == 80
    s = load_settings(
        cfg, {"policy": {"profile": "plan-b"}}, environ={"MAILSYNC_POLICY__BATCH_SIZE": "80"}
    )
    assert (s.profile.name, s.profile.batch_size, s.profile.concurrency.high) == ("plan-b", 80, 9)


def test_rollback_is_a_profile_change(tmp_path: Path) -> None:
    a = load_settings(None, {"policy": {"profile": "plan-b"}}, environ={}).profile
    b = load_settings(None, {"policy": {"profile": "original"}}, environ={}).profile
    assert (a.batch_size, b.batch_size) == (200, 50)
    assert (a.concurrency.total, b.concurrency.total) == (34, 10)


@pytest.mark.parametrize(
    ("overrides", "env", "message"),
    [
        ({"policy": {"profile": "plan-z"}}, {}, "policy.profile: Value error, unknown profile"),
        ({}, {"MAILSYNC_POLICY__BATCH_SIZE": "0"}, "policy.batch_size"),
        ({"policy": {"concurrency": {"high": -1}}}, {}, "policy.concurrency.high"),
        ({"policy": {"quotas": {"gmail.nope": {"limit": 5}}}}, {}, "unknown quota 'gmail.nope'"),
        ({"policy": {"low_after_h": 1}}, {}, "low_after_h must be greater"),
        ({"no_such_setting": 1}, {}, "no_such_setting: Extra inputs are not permitted"),
        ({"graph": {"folders": "inbox"}}, {}, 'graph.folders: .* must be "all" or a non-empty'),
        ({"graph": {"folders": []}}, {}, "graph.folders: .* not \\[\\]"),
    ],
)
def test_bad_settings_name_the_field(overrides: dict, env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings(None, overrides, environ=env)


def test_graph_folders_default_to_the_whole_mailbox_and_narrow_from_file_or_env(
    tmp_path: Path,
) -> None:
    assert load_settings(None, environ={}).graph.folders == "all"
    cfg = tmp_path / "g.toml"
    cfg.write_text('[graph]\nfolders = ["inbox", "archive"]\n')
    assert load_settings(cfg, environ={}).graph.folders == ["inbox", "archive"]
    env = {"MAILSYNC_GRAPH__FOLDERS": "all"}
    assert load_settings(cfg, environ=env).graph.folders == "all"
    env = {"MAILSYNC_GRAPH__FOLDERS": '["inbox"]'}
    assert load_settings(None, environ=env).graph.folders == ["inbox"]


def test_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[policy]\nbatch_size = = 3\n")
    with pytest.raises(ConfigError, match=r"bad.toml.*line 2"):
        load_settings(cfg, environ={})


def test_quota_overrides_and_scale_then_the_margin() -> None:
    policy = {"quota_scale": 0.5, "quotas": {"gmail.user": {"limit": 100, "burst": 10}}}
    s = load_settings(None, {"policy": policy}, environ={})
    limits = s.policy.build_limits()
    user = next(q for q in limits["gmail"].quotas if q.name == "gmail.user")
    project = next(q for q in limits["gmail"].quotas if q.name == "gmail.project")
    # Overrides and scale describe the provider; the default margin of 0.9 applies on top.
    assert (user.limit, user.burst) == (90, 10)
    assert project.limit == 540_000
    whole = load_settings(None, {"policy": {**policy, "quota_margin": 1.0}}, environ={})
    limits = whole.policy.build_limits()
    assert [q.limit for q in limits["gmail"].quotas] == [100, 600_000]


def test_quota_margin_from_env_and_its_bounds() -> None:
    assert load_settings(None, environ={}).policy.quota_margin == QUOTA_MARGIN_DEFAULT
    s = load_settings(None, environ={"MAILSYNC_POLICY__QUOTA_MARGIN": "0.75"})
    graph = {q.name: q.limit for q in s.policy.build_limits()["graph"].quotas}
    assert graph == {"graph.mailbox": 7_500, "graph.app": 97_500}
    for bad in ("0", "1.2"):
        with pytest.raises(ConfigError, match="policy.quota_margin: Input should be"):
            load_settings(None, environ={"MAILSYNC_POLICY__QUOTA_MARGIN": bad})


def test_daemon_config_shows_the_margin_and_the_enforced_quotas() -> None:
    # Whatever the developer's shell exports, these settings come from the defaults.
    unset = ("MAILSYNC_CONFIG", "MAILSYNC_POLICY__QUOTA_MARGIN", "MAILSYNC_POLICY__QUOTA_PRESET")
    runner = CliRunner(env=dict.fromkeys(unset))
    out = runner.invoke(app, ["daemon", "config"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["policy"]["quota_margin"] == 0.9
    assert doc["enforced_quotas"]["gmail"][0] == {
        "name": "gmail.user", "limit": 5_400, "period_s": 60, "burst": 100
    }  # fmt: skip
    out = runner.invoke(app, ["daemon", "config", "--set", "policy.quota_margin=1.0"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["enforced_quotas"]["gmail"][0]["limit"] == 6_000
    out = runner.invoke(app, ["daemon", "config", "--set", "policy.quota_margin=2"])
    assert out.exit_code == 2 and "policy.quota_margin" in out.output


def test_secrets_never_print() -> None:
    s = load_settings(
        None,
        {
            "api_token": "tok-123",
            "database_url": "postgresql://u:pw@h/db",
            "gmail": {"client_secret": "shh"},
        },
        environ={},
    )
    text = repr(s) + s.model_dump_json()
    assert "tok-123" not in text and "shh" not in text and ":pw@" not in text
    assert redact_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    event = mask_secrets(
        None, "info", {"refresh_token": "abc", "url": "redis://:pw@h:6379/0", "n": 1}
    )
    assert event == {"refresh_token": "***", "url": "redis://:***@h:6379/0", "n": 1}


def test_work_conserving_from_profile_or_env() -> None:
    assert not load_settings(None, environ={}).policy.build_profile().work_conserving
    s = load_settings(None, environ={"MAILSYNC_POLICY__PROFILE": "plan-b-wc"})
    assert s.policy.build_profile().work_conserving
    s = load_settings(None, environ={"MAILSYNC_POLICY__WORK_CONSERVING": "true"})
    profile = s.policy.build_profile()
    assert profile.work_conserving and profile.name == "plan-b"
    with pytest.raises(ConfigError, match="policy.work_conserving"):
        load_settings(None, environ={"MAILSYNC_POLICY__WORK_CONSERVING": "sometimes"})

"""Control API: population, validation, state views, config and resets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.errors import ConfigError
from loadtest.mock_providers.cli import parse_populate
from loadtest.mock_providers.config import load_config_file
from loadtest.mock_providers.testing import MockHarness

Mock = MockHarness

POPULATE = {
    "gmail": 3,
    "graph": 2,
    "seed": 11,
    "size": {"dist": "lognormal", "median": 40, "sigma": 1.0, "max": 120},
}


async def _populated(body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    async with MockHarness.start() as mock:
        r = await mock.client.post("/_mock/populate", json=body)
        assert r.status_code == 200, r.text
        creds = r.json()
        ids = {c["address"]: [m["id"] for m in await mock.listing(c["address"])] for c in creds}
        return creds, ids


async def test_population_is_deterministic_per_seed() -> None:
    creds1, ids1 = await _populated(POPULATE)
    creds2, ids2 = await _populated(POPULATE)
    assert [c["address"] for c in creds1] == [
        "gmail-00001@example.com",
        "gmail-00002@example.com",
        "gmail-00003@example.com",
        "graph-00001@example.com",
        "graph-00002@example.com",
    ]
    assert ids1 == ids2
    assert creds1 == creds2  # refresh tokens too: they come from the config seed
    sizes = [len(v) for v in ids1.values()]
    assert all(0 <= s <= 120 for s in sizes) and len(set(sizes)) > 1
    _, ids3 = await _populated({**POPULATE, "seed": 12})
    assert ids3 != ids1


async def test_populate_numbers_after_existing_and_rejects_clashes(mock: Mock) -> None:
    await mock.client.post("/_mock/populate", json={"gmail": 2})
    r = await mock.client.post("/_mock/populate", json={"gmail": 1})
    assert [c["address"] for c in r.json()] == ["gmail-00003@example.com"]
    await mock.create("graph", address="graph-00001@example.com")
    r = await mock.client.post("/_mock/populate", json={"graph": 2})
    assert r.status_code == 200
    assert [c["address"] for c in r.json()] == [
        "graph-00002@example.com",
        "graph-00003@example.com",
    ]
    r = await mock.client.post(
        "/_mock/mailboxes", json={"provider": "gmail", "address": "GMAIL-00001@example.com"}
    )
    assert r.status_code == 409 and r.json()["fields"][0]["field"] == "address"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/_mock/mailboxes", {"provider": "yahoo", "address": "a@b.c"}, "provider"),
        ("/_mock/mailboxes", {"provider": "gmail", "address": "no-at-sign"}, "address"),
        ("/_mock/mailboxes", {"provider": "gmail", "address": "a@b.c", "messages": -1}, "messages"),
        ("/_mock/mailboxes", {"provider": "gmail", "address": "a@b.c", "extra": 1}, "extra"),
        ("/_mock/mailboxes", {"address": "a@b.c"}, "provider"),
        ("/_mock/populate", {"gmail": "many"}, "gmail"),
        ("/_mock/populate", {"size": {"dist": "lognormal", "median": -3}}, "size.median"),
        ("/_mock/populate", {"size": {"dist": "poisson"}}, "size"),
        ("/_mock/populate", {"domain": "bad domain"}, "domain"),
    ],
)
async def test_validation_errors_name_the_field(
    mock: Mock, path: str, body: dict[str, Any], field: str
) -> None:
    r = await mock.client.post(path, json=body)
    assert r.status_code == 422, r.text
    fields = [f["field"] for f in r.json()["fields"]]
    assert field in fields
    assert field in r.json()["error"]


async def test_change_endpoints_validate_their_bodies(mock: Mock) -> None:
    creds = await mock.create("gmail")
    base = f"/_mock/mailboxes/{creds['address']}"
    cases = [
        ("deliver", {"count": 0}, "count"),
        ("deliver", {"folder": "attic"}, "folder"),
        ("flags", {"count": 1}, "read"),
        ("flags", {"ids": ["x"], "count": 1, "read": True}, "(body)"),
        ("flags", {"ids": ["ffffffffffffffff"], "read": True}, "ids.0"),
        ("delete", {}, "(body)"),
    ]
    for action, body, field in cases:
        r = await mock.client.post(f"{base}/{action}", json=body)
        assert r.status_code == 422, (action, r.text)
        assert field in [f["field"] for f in r.json()["fields"]], (action, r.json())
    r = await mock.client.post(f"{base}/delete", content=b"{not json")
    assert r.status_code == 400
    r = await mock.client.post("/_mock/mailboxes/nobody@x.y/deliver", json={})
    assert r.status_code == 404 and r.json()["fields"][0]["field"] == "address"


async def test_config_put_merges_and_names_bad_fields(mock: Mock) -> None:
    cfg = await mock.config({"latency": {"mean_ms": 25}})
    assert cfg["latency"] == {
        "dist": "constant",
        "mean_ms": 25.0,
        "sigma": 0.5,
        "samples_ms": [],
        "providers": {},
        "methods": {},
        "batch_inner_ms": 0.0,
    }
    assert (await mock.client.get("/_mock/config")).json() == cfg
    bad = [
        ({"latency": {"sigma": -1}}, "latency.sigma"),
        ({"faults": {"error_rate": 2}}, "faults.error_rate"),
        ({"quotas": {"custom": {"gmail.nope": {"limit": 1, "period_s": 1}}}}, "quotas"),
        ({"quotas": {"preset": "imaginary"}}, "quotas"),
        ({"latency": {"dist": "empirical"}}, "latency"),
        ({"latency": {"providers": {"yahoo": {"mean_ms": 1}}}}, "latency"),
        ({"latency": {"methods": {"messages.get": {"mean_ms": 1}}}}, "latency"),
        ({"unknown_key": 1}, "unknown_key"),
    ]
    for patch, field in bad:
        r = await mock.client.put("/_mock/config", json=patch)
        assert r.status_code == 422, patch
        assert field in [f["field"] for f in r.json()["fields"]], (patch, r.json())
    # A refused patch changes nothing.
    assert (await mock.client.get("/_mock/config")).json() == cfg


async def test_quota_preset_switch(mock: Mock) -> None:
    await mock.config({"quotas": {"preset": "as-planned", "scale": 0.03}})
    headers = await mock.login(await mock.create("gmail"))
    statuses = [
        (await mock.client.get("/gmail/v1/users/me/profile", headers=headers)).status_code
        for _ in range(4)
    ]
    # as-planned gmail.app is 100 per second; scaled by 0.03 that is 3.
    assert statuses == [200, 200, 200, 429]


async def test_mailbox_views(mock: Mock) -> None:
    g = await mock.create("gmail", messages=25)
    m = await mock.create("graph", messages=25)
    summary = (await mock.client.get(f"/_mock/mailboxes/{g['address']}")).json()
    assert summary["messages"] == 25 and summary["provider"] == "gmail"
    hid = summary["history_id"]
    check = await mock.client.get(f"/_mock/mailboxes/{g['address']}", params={"cursor": hid})
    assert check.json()["cursor_valid"] is True
    await mock.control(g["address"], "expire-cursor")
    check = await mock.client.get(f"/_mock/mailboxes/{g['address']}", params={"cursor": hid})
    assert check.json()["cursor_valid"] is False
    gsum = (await mock.client.get(f"/_mock/mailboxes/{m['address']}")).json()
    assert sum(f["total"] for f in gsum["folders"].values()) == 25
    listing = (await mock.client.get("/_mock/mailboxes")).json()
    assert listing["count"] == 2 and listing["by_provider"] == {"gmail": 1, "graph": 1}
    assert listing["messages_total"] == 50
    msgs = await mock.listing(m["address"])
    assert len(msgs) == len({x["id"] for x in msgs}) == 25
    assert set(msgs[0]) == {"id", "folder", "parentFolderId", "isRead", "changeKey"}


async def test_flags_and_delete_by_count_change_that_many(mock: Mock) -> None:
    creds = await mock.create("graph", messages=100, seed=4)
    before = {m["id"]: m for m in await mock.listing(creds["address"])}
    read = await mock.control(creds["address"], "flags", {"count": 5, "read": True})
    assert read["count"] == 5 and all(not before[i]["isRead"] for i in read["ids"])
    gone = await mock.control(creds["address"], "delete", {"count": 7})
    after = {m["id"]: m for m in await mock.listing(creds["address"])}
    assert len(after) == 93 and not set(gone["ids"]) & set(after)
    assert all(after[i]["isRead"] for i in read["ids"] if i in after)


async def test_stats_reset_and_full_reset(mock: Mock) -> None:
    headers = await mock.login(await mock.create("gmail"))
    await mock.client.get("/gmail/v1/users/me/profile", headers=headers)
    stats = await mock.stats()
    assert stats["calls"] == {"gmail.getProfile": 1}
    assert stats["calls_per_mailbox"]["max"] == 1
    await mock.client.post("/_mock/stats/reset")
    assert (await mock.stats())["calls"] == {}
    await mock.config({"latency": {"mean_ms": 5}})
    await mock.client.post("/_mock/reset")
    assert (await mock.client.get("/_mock/mailboxes")).json()["count"] == 0
    assert (await mock.client.get("/_mock/config")).json()["latency"]["mean_ms"] == 0
    r = await mock.client.get("/gmail/v1/users/me/profile", headers=headers)
    assert r.status_code == 401


def test_config_files_load_and_name_bad_fields(tmp_path: Path) -> None:
    good = tmp_path / "mock.toml"
    good.write_text(
        'seed = 4\n[latency]\ndist = "lognormal"\nmean_ms = 120\n[populate]\ngmail = 5\ngraph = 2\n'
    )
    cfg, spec = load_config_file(good)
    assert cfg.seed == 4 and cfg.latency.dist == "lognormal"
    assert spec is not None and (spec.gmail, spec.graph) == (5, 2)
    yaml_file = tmp_path / "mock.yaml"
    yaml_file.write_text("faults:\n  error_rate: 0.1\nquotas:\n  preset: documented-legacy\n")
    cfg, spec = load_config_file(yaml_file)
    assert cfg.faults.error_rate == 0.1 and spec is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("latency:\n  mean_ms: -5\n")
    with pytest.raises(ConfigError, match=r"latency\.mean_ms"):
        load_config_file(bad)
    bad_pop = tmp_path / "bad.toml"
    bad_pop.write_text("[populate]\ngmail = -1\n")
    with pytest.raises(ConfigError, match=r"populate\.gmail"):
        load_config_file(bad_pop)
    with pytest.raises(ConfigError, match="unknown config format"):
        load_config_file(tmp_path / "x.ini")


def test_populate_option_parsing() -> None:
    assert parse_populate("gmail=100, graph=5") == {"gmail": 100, "graph": 5}
    for bad in ("gmail", "yahoo=3", "gmail=x", "graph=-1"):
        with pytest.raises(ValueError, match=bad.split("=")[0]):
            parse_populate(bad)

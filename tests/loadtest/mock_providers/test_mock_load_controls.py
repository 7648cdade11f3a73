"""What load tests need of the mock: latency per provider and method, bulk creation, picking
changes away from undelivered mail."""

from __future__ import annotations

import pytest

from daemon.providers import gmail_batch as client_batch
from loadtest.mock_providers.testing import MockHarness as Mock


async def test_latency_by_provider_and_method_and_per_batch_part(mock: Mock) -> None:
    await mock.config(
        {
            "latency": {
                "dist": "constant",
                "mean_ms": 5,
                "providers": {"gmail": {"mean_ms": 50}, "graph": {"mean_ms": 80}},
                "methods": {
                    "gmail:history.list": {"mean_ms": 20},
                    "gmail:messages.get": {"mean_ms": 30},
                    "graph:token": {"mean_ms": 7},
                },
                "batch_inner_ms": 2,
            }
        }
    )
    gmail = await mock.create("gmail", messages=5)
    graph = await mock.create("graph", messages=5)
    g_headers = await mock.login(gmail)
    m_headers = await mock.login(graph)
    mock.sleep.delays.clear()
    profile = await mock.client.get("/gmail/v1/users/me/profile", headers=g_headers)
    history_id = profile.json()["historyId"]
    await mock.client.get(
        "/gmail/v1/users/me/history", params={"startHistoryId": history_id}, headers=g_headers
    )
    await mock.client.get("/v1.0/me/mailFolders", headers=m_headers)
    await mock.token(graph)
    listed = await mock.client.get("/gmail/v1/users/me/messages", headers=g_headers)
    ids = [m["id"] for m in listed.json()["messages"]][:3]
    body = client_batch.encode(
        [f"/gmail/v1/users/me/messages/{i}" for i in ids], "bb", g_headers["Authorization"]
    )
    r = await mock.client.post(
        "/batch/gmail/v1",
        content=body,
        headers={**g_headers, "Content-Type": "multipart/mixed; boundary=bb"},
    )
    assert r.status_code == 200
    # profile (gmail), history (method), folders (graph), token (graph:token),
    # list (gmail), a batch of three gets (method + 3 x 2 ms).
    assert mock.sleep.delays == pytest.approx([0.050, 0.020, 0.080, 0.007, 0.050, 0.036])


async def test_bulk_creation_is_all_or_nothing_with_exact_sizes(mock: Mock) -> None:
    r = await mock.client.post(
        "/_mock/mailboxes/bulk",
        json={
            "mailboxes": [
                {"provider": "gmail", "address": "a@x.test", "messages": 3, "seed": 1},
                {"provider": "graph", "address": "b@x.test", "messages": 0},
            ]
        },
    )
    assert r.status_code == 201
    made = r.json()
    assert [m["address"] for m in made] == ["a@x.test", "b@x.test"]
    assert all(m["refresh_token"] for m in made)
    assert len(await mock.listing("a@x.test")) == 3
    assert await mock.listing("b@x.test") == []
    r = await mock.client.post(
        "/_mock/mailboxes/bulk",
        json={
            "mailboxes": [
                {"provider": "gmail", "address": "c@x.test"},
                {"provider": "gmail", "address": "A@x.test"},
            ]
        },
    )
    assert r.status_code == 409
    assert r.json()["fields"][0]["field"] == "mailboxes.1.address"
    r = await mock.client.get("/_mock/mailboxes")
    assert r.json()["count"] == 2  # c@x.test was not created either


async def test_random_changes_leave_excluded_messages_alone(mock: Mock) -> None:
    creds = await mock.create("gmail", messages=4)
    address = creds["address"]
    new = (await mock.control(address, "deliver", {"count": 2}))["ids"]
    deleted = await mock.control(address, "delete", {"count": 4, "exclude": new})
    assert deleted["count"] == 4 and not set(deleted["ids"]) & set(new)
    assert sorted(m["id"] for m in await mock.listing(address)) == sorted(new)
    flagged = await mock.control(address, "flags", {"count": 2, "read": True, "exclude": new})
    assert flagged["count"] == 0
    r = await mock.client.post(
        f"/_mock/mailboxes/{address}/delete", json={"ids": new, "exclude": new}
    )
    assert r.status_code == 422

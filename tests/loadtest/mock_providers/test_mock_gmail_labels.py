"""Gmail mock: label changes (archive, unarchive, read state) and messages without labels.

Gmail's JSON leaves out an empty repeated field, so a message that has lost its last label
carries no ``labelIds`` at all, in history records and in ``messages.get`` alike.
"""

from __future__ import annotations

from typing import Any

from loadtest.mock_providers.testing import MockHarness as Mock

API = "/gmail/v1/users/me"


async def _history(mock: Mock, headers: dict[str, str], start: str) -> list[dict[str, Any]]:
    r = await mock.client.get(f"{API}/history", headers=headers, params={"startHistoryId": start})
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = r.json()["history"]
    return out


async def _current(mock: Mock, address: str, mid: str) -> dict[str, Any]:
    return next(m for m in await mock.listing(address) if m["id"] == mid)


async def test_archive_and_read_leaves_a_message_without_label_ids(mock: Mock) -> None:
    creds = await mock.create("gmail", messages=10, seed=4)
    address, headers = creds["address"], await mock.login(creds)
    [mid] = (await mock.control(address, "deliver", {"count": 1}))["ids"]
    start = (await mock.client.get(f"{API}/profile", headers=headers)).json()["historyId"]
    reply = await mock.control(address, "labels", {"ids": [mid], "remove": ["INBOX", "UNREAD"]})
    assert reply["ids"] == [mid]
    assert await _current(mock, address, mid) == {
        "id": mid, "threadId": mid, "folder": "archive", "labelIds": [], "isRead": True
    }  # fmt: skip
    [record] = await _history(mock, headers, start)
    assert record["id"] == reply["history_id"]
    # One modify, one record: both labels removed; the message, left with none, has no
    # labelIds key, and the record's ``messages`` carry only id and threadId.
    assert record["labelsRemoved"] == [
        {"message": {"id": mid, "threadId": mid}, "labelIds": ["INBOX", "UNREAD"]}
    ]
    assert record["messages"] == [{"id": mid, "threadId": mid}]
    for fmt in ("minimal", "metadata", "full"):
        r = await mock.client.get(f"{API}/messages/{mid}", headers=headers, params={"format": fmt})
        assert r.status_code == 200 and "labelIds" not in r.json(), fmt
    # Deleting it: the messagesDeleted entry has no labelIds either.
    after = reply["history_id"]
    await mock.control(address, "delete", {"ids": [mid]})
    [deleted] = await _history(mock, headers, after)
    assert deleted["messagesDeleted"] == [{"message": {"id": mid, "threadId": mid}}]


async def test_unarchive_adds_inbox_back_and_archive_keeps_categories(mock: Mock) -> None:
    creds = await mock.create("gmail", messages=40, seed=6)
    address, headers = creds["address"], await mock.login(creds)
    seeded = next(
        m for m in await mock.listing(address)
        if m["folder"] == "inbox" and any(x.startswith("CATEGORY_") for x in m["labelIds"])
    )  # fmt: skip
    mid = seeded["id"]
    categories = [x for x in seeded["labelIds"] if x not in ("INBOX", "UNREAD")]
    start = (await mock.client.get(f"{API}/profile", headers=headers)).json()["historyId"]
    await mock.control(address, "labels", {"ids": [mid], "remove": ["INBOX"]})
    archived = await _current(mock, address, mid)
    assert archived["folder"] == "archive"
    assert archived["labelIds"] == [x for x in seeded["labelIds"] if x != "INBOX"]
    await mock.control(address, "labels", {"ids": [mid], "add": ["INBOX", "UNREAD"]})
    removed, added = await _history(mock, headers, start)
    assert removed["labelsRemoved"][0]["labelIds"] == ["INBOX"]
    assert removed["labelsRemoved"][0]["message"]["labelIds"] == archived["labelIds"]
    assert added["labelsAdded"][0]["labelIds"] == ["INBOX", "UNREAD"]
    assert sorted(added["labelsAdded"][0]["message"]["labelIds"]) == sorted(
        ["UNREAD", *categories, "INBOX"]
    )
    now = await _current(mock, address, mid)
    assert now["folder"] == "inbox" and not now["isRead"]
    # Nothing left to change: the same modify again is no change and no record.
    again = await mock.control(address, "labels", {"ids": [mid], "add": ["INBOX", "UNREAD"]})
    assert again["ids"] == [] and again["history_id"] == added["id"]


async def test_labels_by_count_picks_messages_it_would_change(mock: Mock) -> None:
    creds = await mock.create("gmail", messages=60, seed=8)
    address = creds["address"]
    inbox = {m["id"] for m in await mock.listing(address) if m["folder"] == "inbox"}
    reply = await mock.control(address, "labels", {"count": 5, "remove": ["INBOX"]})
    assert reply["count"] == 5 and set(reply["ids"]) <= inbox
    moved = {m["id"] for m in await mock.listing(address) if m["folder"] == "archive"}
    assert set(reply["ids"]) <= moved


async def test_labels_control_validates_its_body(mock: Mock) -> None:
    gmail = await mock.create("gmail", messages=30, seed=9)
    graph = await mock.create("graph", messages=5)
    sent = next(m["id"] for m in await mock.listing(gmail["address"]) if m["folder"] == "sentitems")
    cases: list[tuple[str, dict[str, Any], str]] = [
        (gmail["address"], {"ids": [sent]}, "(body)"),
        (gmail["address"], {"ids": [sent], "add": ["STARRED"]}, "add.0"),
        (gmail["address"], {"ids": [sent], "add": ["UNREAD"], "remove": ["UNREAD"]}, "(body)"),
        (gmail["address"], {"ids": [sent], "add": ["INBOX"]}, "ids.0"),
        (gmail["address"], {"ids": ["ffffffffffffffff"], "remove": ["INBOX"]}, "ids.0"),
        (graph["address"], {"ids": ["x"], "remove": ["INBOX"]}, "address"),
    ]
    for address, body, field in cases:
        r = await mock.client.post(f"/_mock/mailboxes/{address}/labels", json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in [f["field"] for f in r.json()["fields"]], (body, r.json())

"""Gmail API mock: listing, gets, history."""

from __future__ import annotations

import itertools
from typing import Any

from loadtest.mock_providers.testing import MockHarness as Mock

API = "/gmail/v1/users/me"


async def _setup(
    mock: Mock, messages: int = 60, seed: int = 3
) -> tuple[dict[str, Any], dict[str, str]]:
    creds = await mock.create("gmail", messages=messages, seed=seed)
    return creds, await mock.login(creds)


async def _list_all(mock: Mock, headers: dict[str, str], **params: Any) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    token = None
    while True:
        q = dict(params)
        if token:
            q["pageToken"] = token
        r = await mock.client.get(f"{API}/messages", headers=headers, params=q)
        assert r.status_code == 200, r.text
        pages += 1
        body = r.json()
        ids += [m["id"] for m in body.get("messages", [])]
        token = body.get("nextPageToken")
        if not token:
            return ids, pages


async def test_full_listing_pages_through_every_id_once_newest_first(mock: Mock) -> None:
    creds, headers = await _setup(mock, messages=95)
    everything = await mock.listing(creds["address"])
    ids, pages = await _list_all(mock, headers, maxResults=10, includeSpamTrash="true")
    assert len(ids) == len(set(ids)) == 95
    assert set(ids) == {m["id"] for m in everything}
    assert pages == 10
    # Newest first: ids carry the index in their last hex digits.
    assert ids == sorted(ids, reverse=True)


async def test_listing_hides_spam_and_trash_unless_asked(mock: Mock) -> None:
    creds, headers = await _setup(mock, messages=400, seed=11)
    everything = await mock.listing(creds["address"])
    hidden = {m["id"] for m in everything if {"SPAM", "TRASH"} & set(m["labelIds"])}
    assert hidden, "the seeded mailbox should hold some spam or trash"
    ids, _ = await _list_all(mock, headers, maxResults=500)
    assert set(ids) == {m["id"] for m in everything} - hidden


async def test_listing_by_label_requires_every_label(mock: Mock) -> None:
    creds, headers = await _setup(mock, messages=200, seed=5)
    everything = await mock.listing(creds["address"])
    want = {m["id"] for m in everything if {"INBOX", "UNREAD"} <= set(m["labelIds"])}
    ids, _ = await _list_all(mock, headers, labelIds=["INBOX", "UNREAD"], maxResults=500)
    assert set(ids) == want and want


async def test_max_results_above_500_is_a_400_naming_the_parameter(mock: Mock) -> None:
    _, headers = await _setup(mock)
    r = await mock.client.get(f"{API}/messages", headers=headers, params={"maxResults": 501})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == 400 and err["status"] == "INVALID_ARGUMENT"
    assert err["errors"][0]["location"] == "maxResults"
    assert "maxResults" in err["message"]


async def test_empty_mailbox_lists_one_page_without_messages(mock: Mock) -> None:
    _, headers = await _setup(mock, messages=0)
    r = await mock.client.get(f"{API}/messages", headers=headers)
    assert r.json() == {"resultSizeEstimate": 0}


async def test_get_message_formats(mock: Mock) -> None:
    creds, headers = await _setup(mock, messages=5)
    mid = (await mock.listing(creds["address"]))[0]["id"]
    url = f"{API}/messages/{mid}"
    minimal = (await mock.client.get(url, headers=headers, params={"format": "minimal"})).json()
    assert set(minimal) == {
        "id", "threadId", "labelIds", "snippet", "sizeEstimate", "historyId", "internalDate"
    }  # fmt: skip
    assert minimal["id"] == mid
    assert isinstance(minimal["internalDate"], str) and int(minimal["internalDate"]) > 0
    meta = (
        await mock.client.get(
            url,
            headers=headers,
            params=[
                ("format", "metadata"),
                ("metadataHeaders", "From"),
                ("metadataHeaders", "subject"),
            ],
        )
    ).json()
    assert [h["name"] for h in meta["payload"]["headers"]] == ["From", "Subject"]
    assert meta["payload"]["mimeType"] == "multipart/alternative"
    full = (await mock.client.get(url, headers=headers)).json()
    names = {h["name"] for h in full["payload"]["headers"]}
    assert {"From", "To", "Subject", "Date", "Message-ID"} <= names
    assert [p["mimeType"] for p in full["payload"]["parts"]] == ["text/plain", "text/html"]
    raw = (await mock.client.get(url, headers=headers, params={"format": "raw"})).json()
    assert "raw" in raw and "payload" not in raw


async def test_unknown_message_is_404_not_found(mock: Mock) -> None:
    _, headers = await _setup(mock)
    for mid in ("ffffffffffffffff", "nonsense"):
        r = await mock.client.get(f"{API}/messages/{mid}", headers=headers)
        assert r.status_code == 404
        assert r.json()["error"]["errors"][0]["reason"] == "notFound"


async def test_other_user_id_is_refused_and_the_address_is_accepted(mock: Mock) -> None:
    creds, headers = await _setup(mock)
    ok = await mock.client.get(f"/gmail/v1/users/{creds['address']}/profile", headers=headers)
    assert ok.status_code == 200
    other = await mock.client.get("/gmail/v1/users/x@example.com/profile", headers=headers)
    assert other.status_code == 403


async def test_history_returns_exactly_the_changes_and_the_new_history_id(mock: Mock) -> None:
    creds, headers = await _setup(mock, messages=40)
    address = creds["address"]
    start = (await mock.client.get(f"{API}/profile", headers=headers)).json()["historyId"]
    added = (await mock.control(address, "deliver", {"count": 2}))["ids"]
    unread_before = [m["id"] for m in await mock.listing(address) if not m["isRead"]]
    read = (await mock.control(address, "flags", {"ids": unread_before[:1], "read": True}))["ids"]
    gone = (await mock.control(address, "delete", {"ids": [added[0]]}))["ids"]
    final = await mock.control(address, "flags", {"ids": [added[1]], "read": True})
    r = await mock.client.get(f"{API}/history", headers=headers, params={"startHistoryId": start})
    assert r.status_code == 200
    body = r.json()
    assert body["historyId"] == final["history_id"]
    history = body["history"]
    ids = [int(h["id"]) for h in history]
    assert ids == sorted(ids) and ids[0] > int(start) and ids[-1] == int(body["historyId"])
    kinds = [next(k for k in h if k not in ("id", "messages")) for h in history]
    assert kinds == [
        "messagesAdded", "messagesAdded", "labelsRemoved", "messagesDeleted", "labelsRemoved"
    ]  # fmt: skip
    assert [h["messages"][0]["id"] for h in history] == [*added, *read, *gone, added[1]]
    added_msg = history[0]["messagesAdded"][0]["message"]
    assert added_msg["labelIds"] == ["UNREAD", "INBOX"]
    removed = history[2]["labelsRemoved"][0]
    assert removed["labelIds"] == ["UNREAD"] and "UNREAD" not in removed["message"]["labelIds"]
    # Caught up: the returned id as the next start yields nothing new.
    again = await mock.client.get(
        f"{API}/history", headers=headers, params={"startHistoryId": body["historyId"]}
    )
    assert again.json() == {"historyId": body["historyId"]}


async def test_history_ids_grow_with_gaps(mock: Mock) -> None:
    creds, headers = await _setup(mock, messages=10)
    start = (await mock.client.get(f"{API}/profile", headers=headers)).json()["historyId"]
    await mock.control(creds["address"], "deliver", {"count": 30})
    r = await mock.client.get(
        f"{API}/history", headers=headers, params={"startHistoryId": start, "maxResults": 500}
    )
    ids = [int(start)] + [int(h["id"]) for h in r.json()["history"]]
    gaps = [b - a for a, b in itertools.pairwise(ids)]
    assert all(1 <= g <= 5 for g in gaps)
    assert any(g > 1 for g in gaps)


async def test_history_pages_and_filters_by_type(mock: Mock) -> None:
    creds, headers = await _setup(mock, messages=30)
    start = (await mock.client.get(f"{API}/profile", headers=headers)).json()["historyId"]
    await mock.control(creds["address"], "deliver", {"count": 5})
    await mock.control(creds["address"], "delete", {"count": 2})
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params: dict[str, Any] = {"startHistoryId": start, "maxResults": 2}
        if token:
            params["pageToken"] = token
        body = (await mock.client.get(f"{API}/history", headers=headers, params=params)).json()
        pages += 1
        seen += [h["id"] for h in body.get("history", [])]
        token = body.get("nextPageToken")
        if not token:
            break
    assert pages == 4 and len(seen) == len(set(seen)) == 7
    only_deleted = await mock.client.get(
        f"{API}/history",
        headers=headers,
        params={"startHistoryId": start, "historyTypes": "messageDeleted"},
    )
    assert [list(h)[2] for h in only_deleted.json()["history"]] == ["messagesDeleted"] * 2


async def test_expired_zero_and_garbage_start_ids_are_404(mock: Mock) -> None:
    creds, headers = await _setup(mock)
    start = (await mock.client.get(f"{API}/profile", headers=headers)).json()["historyId"]
    await mock.control(creds["address"], "deliver", {"count": 1})
    for bad in ("0", "garbage", str(int(start) - 1000)):
        r = await mock.client.get(f"{API}/history", headers=headers, params={"startHistoryId": bad})
        assert r.status_code == 404, bad
        assert r.json()["error"]["status"] == "NOT_FOUND"
    ok = await mock.client.get(f"{API}/history", headers=headers, params={"startHistoryId": start})
    assert ok.status_code == 200
    summary = await mock.control(creds["address"], "expire-cursor")
    r = await mock.client.get(f"{API}/history", headers=headers, params={"startHistoryId": start})
    assert r.status_code == 404
    # The id a full sync reads from the profile afterwards is valid again.
    fresh = (await mock.client.get(f"{API}/profile", headers=headers)).json()["historyId"]
    assert fresh == summary["history_id"]
    ok = await mock.client.get(f"{API}/history", headers=headers, params={"startHistoryId": fresh})
    assert ok.status_code == 200 and "history" not in ok.json()


async def test_history_retention_by_count_and_age(mock: Mock) -> None:
    await mock.config({"history": {"max_records": 3}})
    creds, headers = await _setup(mock)
    start = (await mock.client.get(f"{API}/profile", headers=headers)).json()["historyId"]
    await mock.control(creds["address"], "deliver", {"count": 2})
    mid = (await mock.client.get(f"{API}/profile", headers=headers)).json()["historyId"]
    await mock.control(creds["address"], "deliver", {"count": 2})
    r = await mock.client.get(f"{API}/history", headers=headers, params={"startHistoryId": start})
    assert r.status_code == 404
    r = await mock.client.get(f"{API}/history", headers=headers, params={"startHistoryId": mid})
    assert r.status_code == 200 and len(r.json()["history"]) == 2
    await mock.config({"history": {"max_records": None, "max_age_s": 3600}})
    mock.clock.advance(3601)
    headers = await mock.login(creds)  # the old access token has expired meanwhile
    r = await mock.client.get(f"{API}/history", headers=headers, params={"startHistoryId": mid})
    assert r.status_code == 404


async def test_profile_counts(mock: Mock) -> None:
    creds, headers = await _setup(mock, messages=33)
    body = (await mock.client.get(f"{API}/profile", headers=headers)).json()
    assert body["emailAddress"] == creds["address"]
    assert body["messagesTotal"] == 33
    assert 0 < body["threadsTotal"] <= 33
    assert isinstance(body["historyId"], str)

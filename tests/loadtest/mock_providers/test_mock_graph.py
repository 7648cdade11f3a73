"""Microsoft Graph mock: folders and delta rounds."""

from __future__ import annotations

import math
from typing import Any

from loadtest.mock_providers.testing import MockHarness as Mock

SELECT = "subject,isRead,parentFolderId,receivedDateTime"


async def _setup(
    mock: Mock, messages: int = 50, seed: int = 2
) -> tuple[dict[str, Any], dict[str, str]]:
    creds = await mock.create("graph", messages=messages, seed=seed)
    return creds, await mock.login(creds)


async def _round(
    mock: Mock, headers: dict[str, str], url: str, page: int | None = None
) -> tuple[list[list[dict[str, Any]]], str]:
    """Every page of one round and the deltaLink it ends with."""
    pages: list[list[dict[str, Any]]] = []
    h = dict(headers)
    if page is not None:
        h["Prefer"] = f'IdType="ImmutableId", odata.maxpagesize={page}'
    while True:
        r = await mock.client.get(url, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["@odata.context"].startswith("http://mock.test/v1.0/$metadata")
        pages.append(body["value"])
        if "@odata.nextLink" in body:
            assert "@odata.deltaLink" not in body
            url = body["@odata.nextLink"]
            assert url.startswith("http://mock.test/v1.0/") and "$skiptoken=" in url
            continue
        link: str = body["@odata.deltaLink"]
        assert link.startswith("http://mock.test/v1.0/") and "$deltatoken=" in link
        return pages, link


def _start(folder: str = "inbox", select: str = SELECT) -> str:
    return f"/v1.0/me/mailFolders/{folder}/messages/delta?$select={select}"


async def test_mail_folders_list_well_known_folders_with_counts(mock: Mock) -> None:
    creds, headers = await _setup(mock, messages=120)
    body = (await mock.client.get("/v1.0/me/mailFolders", headers=headers)).json()
    names = [f["displayName"] for f in body["value"]]
    # Ordered by display name, as Graph lists them.
    assert names == [
        "Archive", "Deleted Items", "Drafts", "Inbox", "Junk Email", "Sent Items"
    ]  # fmt: skip
    everything = await mock.listing(creds["address"])
    inbox = body["value"][3]
    assert inbox["totalItemCount"] == sum(m["folder"] == "inbox" for m in everything)
    assert inbox["unreadItemCount"] == sum(
        m["folder"] == "inbox" and not m["isRead"] for m in everything
    )
    assert {"id", "parentFolderId", "childFolderCount"} <= set(inbox)


async def test_initial_round_covers_every_message_once_in_ceil_k_over_p_pages(mock: Mock) -> None:
    creds, headers = await _setup(mock, messages=80)
    everything = await mock.listing(creds["address"])
    for folder in ("inbox", "sentitems"):
        want = {m["id"] for m in everything if m["folder"] == folder}
        pages, _ = await _round(mock, headers, _start(folder), page=7)
        got = [m["id"] for p in pages for m in p]
        assert len(got) == len(set(got)) and set(got) == want
        assert len(pages) == math.ceil(len(want) / 7)
        assert all(pages), "the deltaLink rides on the last page with items"
        sample = pages[0][0]
        assert set(sample) == {"@odata.type", "@odata.etag", "id", *SELECT.split(",")}


async def test_default_page_size_is_10_and_top_is_baked_into_the_token(mock: Mock) -> None:
    _creds, headers = await _setup(mock, messages=60)
    pages, _ = await _round(mock, headers, _start())
    assert all(len(p) == 10 for p in pages[:-1]) and 0 < len(pages[-1]) <= 10
    pages, _ = await _round(mock, headers, _start() + "&$top=4")
    assert all(len(p) == 4 for p in pages[:-1])


async def test_empty_folder_gives_one_empty_page_with_a_delta_link(mock: Mock) -> None:
    _, headers = await _setup(mock, messages=0)
    pages, link = await _round(mock, headers, _start())
    assert pages == [[]] and link


async def test_next_round_returns_only_changes_with_removed_for_deletions(mock: Mock) -> None:
    creds, headers = await _setup(mock, messages=60, seed=9)
    address = creds["address"]
    _, link = await _round(mock, headers, _start(), page=25)
    inbox = [m for m in await mock.listing(address) if m["folder"] == "inbox"]
    unread = [m["id"] for m in inbox if not m["isRead"]]
    untouched = [m["id"] for m in inbox if m["isRead"]]
    added = (await mock.control(address, "deliver", {"count": 3}))["ids"]
    await mock.control(address, "flags", {"ids": unread[:2], "read": True})
    await mock.control(address, "delete", {"ids": [untouched[0]]})
    await mock.control(address, "deliver", {"count": 1, "folder": "sentitems"})
    # Delivered and deleted within the window: the client never needs to hear of it.
    ephemeral = (await mock.control(address, "deliver", {"count": 1}))["ids"]
    await mock.control(address, "delete", {"ids": ephemeral})
    pages, link2 = await _round(mock, headers, link, page=4)
    items = [m for p in pages for m in p]
    assert [len(p) for p in pages] == [4, 2]
    assert [m["id"] for m in items] == [*added, *unread[:2], untouched[0]]
    assert items[-1] == {
        "@odata.type": "#microsoft.graph.message",
        "id": untouched[0],
        "@removed": {"reason": "deleted"},
    }
    # $select from the first request is baked into the tokens.
    assert set(items[0]) == {"@odata.type", "@odata.etag", "id", *SELECT.split(",")}
    assert items[0]["isRead"] is False and items[3]["isRead"] is True
    # Nothing since: one empty page and a deltaLink again.
    pages, _ = await _round(mock, headers, link2)
    assert pages == [[]]


async def test_changes_bump_change_key_and_etag(mock: Mock) -> None:
    creds, headers = await _setup(mock, messages=30)
    pages, link = await _round(mock, headers, _start(select="changeKey,isRead"), page=100)
    first = next(m for m in pages[0] if m["isRead"] is False)
    await mock.control(creds["address"], "flags", {"ids": [first["id"]], "read": True})
    pages, _ = await _round(mock, headers, link)
    (changed,) = pages[0]
    assert changed["changeKey"] != first["changeKey"]
    assert changed["@odata.etag"] == f'W/"{changed["changeKey"]}"'


async def test_expire_cursor_makes_delta_links_410_sync_state_not_found(mock: Mock) -> None:
    creds, headers = await _setup(mock, messages=20)
    _, link = await _round(mock, headers, _start())
    status = await mock.client.get(f"/_mock/mailboxes/{creds['address']}", params={"cursor": link})
    assert status.json()["cursor_valid"] is True
    await mock.control(creds["address"], "expire-cursor")
    r = await mock.client.get(link, headers=headers)
    assert r.status_code == 410
    err = r.json()["error"]
    assert err["code"] == "SyncStateNotFound"
    assert err["message"].startswith("The sync state generation is not found; generation=")
    status = await mock.client.get(f"/_mock/mailboxes/{creds['address']}", params={"cursor": link})
    assert status.json()["cursor_valid"] is False
    # A fresh round works and yields a valid link.
    _, fresh = await _round(mock, headers, _start())
    assert (await mock.client.get(fresh, headers=headers)).status_code == 200


async def test_folder_ids_quoted_form_and_users_path_are_accepted(mock: Mock) -> None:
    creds, headers = await _setup(mock, messages=20)
    folders = (await mock.client.get("/v1.0/me/mailFolders", headers=headers)).json()["value"]
    inbox = next(f for f in folders if f["displayName"] == "Inbox")
    by_id, _ = await _round(mock, headers, _start(inbox["id"]), page=100)
    quoted, _ = await _round(
        mock, headers, "/v1.0/me/mailFolders('Inbox')/messages/delta", page=100
    )
    users, _ = await _round(
        mock, headers, f"/v1.0/users/{creds['address']}/mailFolders/inbox/messages/delta", page=100
    )
    ids = [m["id"] for m in by_id[0]]
    assert ids == [m["id"] for m in quoted[0]] == [m["id"] for m in users[0]]
    missing = await mock.client.get(_start("nosuchfolder"), headers=headers)
    assert missing.status_code == 404


async def test_bad_token_and_bad_select_are_refused(mock: Mock) -> None:
    _, headers = await _setup(mock)
    r = await mock.client.get(_start(), headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"
    r = await mock.client.get(_start(select="subject,nonsense"), headers=headers)
    assert r.status_code == 400 and "nonsense" in r.json()["error"]["message"]
    r = await mock.client.get(
        "/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken=garbage", headers=headers
    )
    assert r.status_code == 400


async def test_full_message_shape_without_select(mock: Mock) -> None:
    _, headers = await _setup(mock, messages=5)
    r = await mock.client.get(
        "/v1.0/me/mailFolders/inbox/messages/delta",
        headers={**headers, "Prefer": "odata.maxpagesize=1"},
    )
    msg = r.json()["value"][0]
    for name in (
        "id", "changeKey", "createdDateTime", "lastModifiedDateTime", "receivedDateTime",
        "sentDateTime", "subject", "bodyPreview", "from", "toRecipients", "isRead", "isDraft",
        "hasAttachments", "importance", "internetMessageId", "conversationId",
        "parentFolderId", "categories", "flag", "@odata.etag",
    ):  # fmt: skip
        assert name in msg, name
    assert msg["from"]["emailAddress"]["address"].count("@") == 1
    assert msg["receivedDateTime"].endswith("Z") and msg["flag"] == {"flagStatus": "notFlagged"}

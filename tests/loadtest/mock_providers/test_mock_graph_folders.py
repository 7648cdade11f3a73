"""Microsoft Graph mock: folder hierarchy, folder-list paging, moves and folder deletion."""

from __future__ import annotations

from typing import Any

from loadtest.mock_providers.testing import MockHarness as Mock

WELL_KNOWN = ["Archive", "Deleted Items", "Drafts", "Inbox", "Junk Email", "Sent Items"]


async def _setup(mock: Mock, messages: int = 40) -> tuple[str, dict[str, str]]:
    creds = await mock.create("graph", messages=messages, seed=4)
    return creds["address"], await mock.login(creds)


async def _get(mock: Mock, headers: dict[str, str], url: str, status: int = 200) -> Any:
    r = await mock.client.get(url, headers=headers)
    assert r.status_code == status, r.text
    return r.json()


async def _all_pages(mock: Mock, headers: dict[str, str], url: str) -> list[list[str]]:
    """Display names page by page, following nextLinks."""
    pages = []
    while True:
        body = await _get(mock, headers, url)
        pages.append([f["displayName"] for f in body["value"]])
        if "@odata.nextLink" not in body:
            return pages
        url = body["@odata.nextLink"]
        assert url.startswith("http://mock.test/v1.0/") and "$skip=" in url


async def _delta(mock: Mock, headers: dict[str, str], url: str) -> tuple[list[Any], str]:
    items: list[Any] = []
    while True:
        body = await _get(mock, headers, url)
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


async def test_hierarchy_child_folders_hidden_and_search_folders(mock: Mock) -> None:
    address, headers = await _setup(mock)
    projects = await mock.create_folder(address, "Projects")
    child = await mock.create_folder(address, "2026", parent="Projects")
    await mock.create_folder(address, "Clutter", hidden=True)
    await mock.create_folder(address, "Weekly digests", parent="inbox", search=True)
    top = (await _get(mock, headers, "/v1.0/me/mailFolders?$top=50"))["value"]
    assert [f["displayName"] for f in top] == sorted([*WELL_KNOWN, "Projects"])
    by_name = {f["displayName"]: f for f in top}
    assert by_name["Projects"]["childFolderCount"] == 1
    assert by_name["Inbox"]["childFolderCount"] == 1
    assert by_name["Projects"]["id"] == projects["id"]
    assert len({f["parentFolderId"] for f in top}) == 1, "all under the root"
    hidden = await _get(mock, headers, "/v1.0/me/mailFolders?$top=50&includeHiddenFolders=true")
    clutter = next(f for f in hidden["value"] if f["displayName"] == "Clutter")
    assert clutter["isHidden"] is True
    kids = await _get(mock, headers, f"/v1.0/me/mailFolders/{projects['id']}/childFolders")
    assert kids["value"] == [
        {
            "id": child["id"],
            "displayName": "2026",
            "parentFolderId": projects["id"],
            "childFolderCount": 0,
            "unreadItemCount": 0,
            "totalItemCount": 0,
            "isHidden": False,
        }
    ]
    assert child["path"] == "Projects/2026"
    quoted = await _get(mock, headers, "/v1.0/me/mailFolders('inbox')/childFolders")
    (search,) = quoted["value"]
    assert search["@odata.type"] == "#microsoft.graph.mailSearchFolder"
    assert search["displayName"] == "Weekly digests" and search["isSupported"] is True
    await _get(mock, headers, "/v1.0/me/mailFolders/nosuch/childFolders", status=404)


async def test_folder_list_pages_with_top_and_skip(mock: Mock) -> None:
    address, headers = await _setup(mock)
    for name in ("a1", "a2", "a3", "a4", "a5"):
        await mock.create_folder(address, name)
    # Default page size 10: eleven folders take two pages.
    pages = await _all_pages(mock, headers, "/v1.0/me/mailFolders")
    assert [len(p) for p in pages] == [10, 1]
    pages = await _all_pages(mock, headers, "/v1.0/me/mailFolders?$top=4")
    assert [len(p) for p in pages] == [4, 4, 3]
    names = [n for p in pages for n in p]
    assert names == sorted([*WELL_KNOWN, "a1", "a2", "a3", "a4", "a5"], key=str.casefold)
    r = await mock.client.get("/v1.0/me/mailFolders?$top=0", headers=headers)
    assert r.status_code == 400 and "$top" in r.json()["error"]["message"]


async def test_move_shows_as_removed_in_the_old_folder_and_new_in_the_other(mock: Mock) -> None:
    address, headers = await _setup(mock, messages=60)
    start = "/v1.0/me/mailFolders/{}/messages/delta?$select=subject,parentFolderId"
    _, inbox_link = await _delta(mock, headers, start.format("inbox"))
    _, archive_link = await _delta(mock, headers, start.format("archive"))
    inbox = [m for m in await mock.listing(address) if m["folder"] == "inbox"]
    moved = inbox[0]["id"]
    before = await _get(mock, headers, start.format("inbox"))
    subject = next(m["subject"] for m in before["value"] if m["id"] == moved)
    reply = await mock.control(address, "move", {"ids": [moved], "folder": "archive"})
    assert reply["ids"] == [moved] and reply["count"] == 1
    # Already there: nothing to move.
    again = await mock.control(address, "move", {"ids": [moved], "folder": "archive"})
    assert again["count"] == 0
    gone, _ = await _delta(mock, headers, inbox_link)
    assert gone == [
        {"@odata.type": "#microsoft.graph.message", "id": moved, "@removed": {"reason": "deleted"}}
    ]
    arrived, _ = await _delta(mock, headers, archive_link)
    assert [m["id"] for m in arrived] == [moved]
    assert arrived[0]["parentFolderId"] == reply["folder"]
    assert arrived[0]["subject"] == subject, "a moved message says the same"
    now = {m["id"]: m for m in await mock.listing(address)}
    assert now[moved]["folder"] == "archive" and now[moved]["parentFolderId"] == reply["folder"]
    counts = {f["displayName"]: f["totalItemCount"] for f in await mock.folders(address)}
    assert counts["Inbox"] == len(inbox) - 1


async def test_deliver_and_move_into_user_folders_then_delete_the_folder(mock: Mock) -> None:
    address, headers = await _setup(mock, messages=10)
    projects = await mock.create_folder(address, "Projects")
    child = await mock.create_folder(address, "2026", parent=projects["id"])
    # An empty new folder: one empty page and a deltaLink.
    items, child_link = await _delta(
        mock, headers, f"/v1.0/me/mailFolders/{child['id']}/messages/delta"
    )
    assert items == []
    reply = await mock.control(address, "deliver", {"count": 2, "folder": "Projects/2026"})
    delivered = reply["ids"]
    moved = (await mock.control(address, "move", {"count": 3, "folder": projects["id"]}))["ids"]
    assert len(moved) == 3
    items, _ = await _delta(mock, headers, child_link)
    assert [m["id"] for m in items] == delivered
    assert {m["parentFolderId"] for m in items} == {child["id"]}
    listing = {m["id"]: m["folder"] for m in await mock.listing(address)}
    assert {listing[i] for i in delivered} == {"Projects/2026"}
    assert {listing[i] for i in moved} == {"Projects"}
    gone = await mock.delete_folder(address, "Projects")
    assert gone["folders"] == [projects["id"], child["id"]]
    assert sorted(gone["messages"]) == sorted(delivered + moved)
    assert not set(gone["messages"]) & {m["id"] for m in await mock.listing(address)}
    for fid in (projects["id"], child["id"]):
        await _get(mock, headers, f"/v1.0/me/mailFolders/{fid}/messages/delta", status=404)
    r = await mock.client.get(child_link, headers=headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "ErrorItemNotFound"
    top = (await _get(mock, headers, "/v1.0/me/mailFolders"))["value"]
    assert [f["displayName"] for f in top] == WELL_KNOWN


async def test_folder_control_errors_name_the_field(mock: Mock) -> None:
    address, _ = await _setup(mock)
    gmail = (await mock.create("gmail", messages=3, seed=1))["address"]
    cases = [
        ("post", f"/_mock/mailboxes/{address}/folders", {"name": "Inbox"}, "name"),
        ("post", f"/_mock/mailboxes/{address}/folders", {"name": "x", "parent": "no"}, "parent"),
        ("post", f"/_mock/mailboxes/{address}/folders", {"name": "a/b"}, "name"),
        ("post", f"/_mock/mailboxes/{gmail}/folders", {"name": "x"}, "address"),
        ("post", f"/_mock/mailboxes/{address}/move", {"count": 1, "folder": "no"}, "folder"),
        ("post", f"/_mock/mailboxes/{address}/move", {"folder": "archive"}, "(body)"),
        ("delete", f"/_mock/mailboxes/{address}/folders/inbox", None, "folder"),
    ]
    for method, path, body, field in cases:
        r = await mock.client.request(method, path, json=body)
        assert r.status_code == 422, (path, body, r.text)
        assert field in {f["field"] for f in r.json()["fields"]}, (path, body, r.text)

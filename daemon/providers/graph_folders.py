"""Which Graph folders one sync reads: the configured list, or every folder of the mailbox
found by listing the folder tree (``mailFolders``, then ``childFolders`` of each folder that
has children, one level at a time, each list paged through ``@odata.nextLink``).

The tree is listed on every sync rather than tracked with ``mailFolders/delta``: a list
costs one request per level page plus one per folder with children (about three for a
typical mailbox, on top of one delta round per folder), and it always shows the current
tree. ``mailFolders/delta`` would save those requests only while nothing changed; Microsoft
documents it without saying whether it covers child folders, and its token can expire
like any other, so a missed new folder would cost more than the requests it saves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from daemon.errors import BadResponse, PermanentError
from daemon.provider_settings import WHOLE_MAILBOX, check_graph_folders
from daemon.providers.base import MailboxContext
from daemon.providers.http import Again, ApiClient, field, json_object
from daemon.providers.httpclient import HttpResponse

SEARCH_FOLDER = "#microsoft.graph.mailSearchFolder"
# The quota method of a list of the root's folders.
LIST_METHOD = "mailFolders.list"
_CHILDREN = "mailFolders.childFolders"


@dataclass(frozen=True, slots=True)
class GraphFolder:
    """A folder to sync: the key it is tracked and stored under, and its path for logs."""

    key: str
    path: str


def selection(config: Mapping[str, Any], default: str | list[str]) -> str | list[str]:
    """The mailbox's ``config.folders`` (else ``default``): ``"all"`` or folder names / ids.

    A malformed value is the mailbox's configuration error, not a passing fault.
    """
    raw = config.get("folders")
    if raw is None:
        return default
    try:
        return check_graph_folders(raw, "config.folders")
    except ValueError as exc:
        raise PermanentError(str(exc), provider="graph") from None


def parse_folder(item: Any, what: str) -> tuple[str, str, int, bool]:
    """(id, displayName, childFolderCount, syncable) of one listed folder.

    Search folders are views of messages stored in other folders: syncing them would file
    one message under two folders. Hidden folders are only listed on request, which the
    daemon never makes; one that comes anyway is skipped too.
    """
    if not isinstance(item, dict):
        raise BadResponse(f"{what}: a folder is not an object", provider="graph")
    fid = field(item, "id", str, "graph", what)
    name = field(item, "displayName", str, "graph", what, default="")
    children = field(item, "childFolderCount", int, "graph", what)
    if isinstance(children, bool) or children < 0:
        raise BadResponse(f"{what}: folder {fid!r} has a bad childFolderCount", provider="graph")
    syncable = item.get("@odata.type") != SEARCH_FOLDER and item.get("isHidden") is not True
    return fid, name, children, syncable


def root_list_url(base: str, page: int) -> str:
    """The first page of the mailbox's top-level folders."""
    return f"{base}/me/mailFolders?$top={page}"


async def list_folders(
    api: ApiClient,
    mailbox: MailboxContext,
    base: str,
    page: int,
    root: HttpResponse | Again | None = None,
) -> list[GraphFolder]:
    """Every visible, non-search mail folder of the mailbox, parents before children.

    ``root``: the answer to ``root_list_url`` when it was already fetched (inside a delta
    batch), or how to send it again when that answer said so; further pages and child
    levels are fetched here."""
    out: list[GraphFolder] = []
    seen: set[str] = set()
    # (URL of a level's first page, quota method, path of the level's parent)
    levels: list[tuple[str, str, str]] = [(root_list_url(base, page), LIST_METHOD, "")]
    first = root
    while levels:
        url, method, parent = levels.pop(0)
        for fid, name, children, syncable in await _level(api, mailbox, url, method, first):
            if fid in seen or not syncable:
                continue
            seen.add(fid)
            path = f"{parent}/{name}" if parent else name
            out.append(GraphFolder(fid, path))
            if children:
                child_url = f"{base}/me/mailFolders/{quote(fid, safe='')}/childFolders?$top={page}"
                levels.append((child_url, _CHILDREN, path))
        first = None
    return out


async def _level(
    api: ApiClient,
    mailbox: MailboxContext,
    url: str,
    method: str,
    first: HttpResponse | Again | None = None,
) -> list[tuple[str, str, int, bool]]:
    """All pages of one folder list (its first page ``first`` when already fetched, or
    already sent once and to go again); empty when the parent vanished since it was
    listed."""
    out: list[tuple[str, str, int, bool]] = []
    visited: set[str] = set()
    while True:
        visited.add(url)
        # A folder deleted after its parent's list named it: no children to sync. (The root
        # list has no such excuse; its 404 is the mailbox's and fails the sync.)
        gone = (404,) if method == _CHILDREN else ()
        if first is None or isinstance(first, Again):
            resp = await api.call(mailbox, method, "GET", url, pass_through=gone, resumed=first)
        else:
            resp = first
        first = None
        if resp.status_code == 404:
            return out
        body = json_object(resp, "graph", method)
        out += [parse_folder(i, method) for i in field(body, "value", list, "graph", method)]
        nxt = body.get("@odata.nextLink")
        if nxt is None:
            return out
        if not isinstance(nxt, str) or not nxt:
            raise BadResponse(f"{method}: @odata.nextLink is not a URL", provider="graph")
        if nxt in visited:
            raise BadResponse(f"{method}: @odata.nextLink repeats a page", provider="graph")
        url = nxt


__all__ = [
    "LIST_METHOD",
    "WHOLE_MAILBOX",
    "GraphFolder",
    "list_folders",
    "parse_folder",
    "root_list_url",
    "selection",
]

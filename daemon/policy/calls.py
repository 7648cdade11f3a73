"""How many provider calls a sync makes, with the page and batch sizes the providers use
(the daemon's providers and the simulator count calls with the same shapes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from daemon.policy.profiles import SyncKind
from daemon.policy.quotas import ProviderLimits


@dataclass(frozen=True)
class FetchShape:
    """Page and batch sizes the providers use; the simulator counts calls with the same."""

    gmail_list_page: int = 500  # messages.list maxResults (API maximum)
    gmail_history_page: int = 500  # history.list maxResults (API maximum)
    gmail_batch: int = 50  # inner messages.get per HTTP batch (Google advises <= 50)
    graph_page: int = 100  # Prefer: odata.maxpagesize on delta rounds
    # Delta pages per JSON batch of an incremental sync (Graph's maximum); 0: no batching.
    graph_batch: int = 20
    graph_folder_page: int = 100  # $top of mailFolders / childFolders lists (Graph's default: 10)
    # The call model's Graph mailbox; the daemon syncs the folders it finds. Microsoft's "List
    # mailFolders" example (learn.microsoft.com/graph/api/user-list-mailfolders) shows a new
    # mailbox's 8 top-level folders (Archive, Conversation History, Deleted Items, Drafts,
    # Inbox, Junk Email, Outbox, Sent Items); Conversation History and Inbox each have one
    # child (Inbox's a search folder, not synced): 9 synced folders, 2 with child folders.
    graph_folders: int = 9
    graph_parent_folders: int = 2
    # True: the whole mailbox, its folders listed on every sync; False: a configured list.
    graph_list_folders: bool = True
    imap_fetch_chunk: int = 500  # UIDs per UID FETCH of new messages
    imap_flag_scan_chunk: int = 5000  # UIDs per FLAGS scan on servers without CONDSTORE
    imap_folders: int = 1
    # What the server offers: "qresync" (Dovecot), "condstore" (Gmail), "plain" (Outlook).
    imap_mode: str = "qresync"


DEFAULT_FETCH = FetchShape()


def batch_fits(limits: ProviderLimits | None, method: str, wanted: int) -> int:
    """The largest batch of ``method`` calls, up to ``wanted``, that every quota bucket can
    admit in one piece.

    A batch is charged when the provider receives it; admitting a bigger one piecewise
    before sending would let the provider see more than the limit inside one window.
    """
    if limits is None or not limits.quotas:
        return wanted
    room = min(q.burst for q in limits.quotas) // limits.cost(method)
    return max(1, min(wanted, room))


def fetch_shape_for(
    limits: Mapping[str, ProviderLimits], shape: FetchShape = DEFAULT_FETCH
) -> FetchShape:
    """``shape`` with batch sizes the enforced quotas can admit whole (daemon and simulator)."""
    return replace(
        shape, gmail_batch=batch_fits(limits.get("gmail"), "messages.get", shape.gmail_batch)
    )


@dataclass(frozen=True, slots=True)
class ApiCall:
    """A group of identical provider calls: ``count`` quota-charged calls in ``requests`` trips
    (0: they ride in the next group's first request, as Graph's root folder list in a delta
    batch)."""

    method: str
    count: int
    requests: int


def _pages(items: int, page: int) -> int:
    # An empty listing still costs one request.
    return max(1, -(-items // page))


def sync_calls(
    provider: str,
    kind: SyncKind,
    messages: int,
    added: int = 0,
    changed: int = 0,
    deleted: int = 0,
    shape: FetchShape = DEFAULT_FETCH,
) -> list[ApiCall]:
    """The API calls one sync makes, as the daemon's Gmail and Graph providers issue them.

    ``messages`` is the mailbox size at sync time; ``added/changed/deleted`` are the changes
    since the cursor (incremental only).
    """
    if provider == "gmail":
        if kind is SyncKind.FULL:
            gets = messages
            return [
                ApiCall("getProfile", 1, 1),
                ApiCall(
                    "messages.list",
                    _pages(messages, shape.gmail_list_page),
                    _pages(messages, shape.gmail_list_page),
                ),
                *([ApiCall("messages.get", gets, -(-gets // shape.gmail_batch))] if gets else []),
            ]
        events = added + changed + deleted
        pages = _pages(events, shape.gmail_history_page)
        out = [ApiCall("history.list", pages, pages)]
        if added:
            out.append(ApiCall("messages.get", added, -(-added // shape.gmail_batch)))
        return out
    if provider == "graph":
        listing = graph_listing_calls(shape)
        # An incremental sync of the whole mailbox sends the root list's first page in its
        # first delta batch (the daemon's GraphProvider._lead): a call with no request.
        lead = kind is SyncKind.INCREMENTAL and bool(listing) and shape.graph_batch > 1
        if lead:
            root = listing[0]
            listing[0] = ApiCall(root.method, root.count, root.requests - 1)
        return [
            *listing,
            *_graph_delta_calls(kind, messages, added + changed + deleted, shape, lead),
        ]
    if provider == "imap":
        return _imap_calls(kind, messages, added, changed, deleted, shape)
    raise ValueError(f"no call model for provider {provider!r}")


def graph_listing_calls(shape: FetchShape = DEFAULT_FETCH) -> list[ApiCall]:
    """The folder lists one Graph sync of the whole mailbox reads before its delta rounds.

    The root's folders (``mailFolders``), then the children of every folder that has some
    (``childFolders``), one level at a time; exact while each level fits one page of
    ``graph_folder_page``. None when a fixed list of folders is synced.
    """
    if not shape.graph_list_folders:
        return []
    top = _pages(shape.graph_folders, shape.graph_folder_page)
    out = [ApiCall("mailFolders.list", top, top)]
    if shape.graph_parent_folders:
        n = shape.graph_parent_folders
        out.append(ApiCall("mailFolders.childFolders", n, n))
    return out


def _graph_delta_calls(
    kind: SyncKind, messages: int, events: int, shape: FetchShape, lead: bool = False
) -> list[ApiCall]:
    # One delta round per folder; each round costs at least one request.
    folders = shape.graph_folders
    if kind is SyncKind.FULL:
        # Messages spread over the synced folders; each folder pages separately.
        per = -(-messages // folders) if folders else 0
        pages = folders * _pages(per, shape.graph_page)
        return [ApiCall("messages.delta", pages, pages)]
    # An incremental sync's changes fall in one folder; the others answer one empty page.
    # Every page is charged, but the pages go in JSON batches: the folders' first pages in
    # batches of ``graph_batch`` (the first one less when the root list rides in it), then
    # the changed folder's further pages one per batch.
    pages = folders - 1 + _pages(events, shape.graph_page)
    if shape.graph_batch <= 0:
        return [ApiCall("messages.delta", pages, pages)]
    if lead:
        rest = max(0, folders - (shape.graph_batch - 1))
        firsts = 1 + -(-rest // shape.graph_batch)
    else:
        firsts = -(-folders // shape.graph_batch)
    batches = firsts + _pages(events, shape.graph_page) - 1
    return [ApiCall("messages.delta", pages, batches)]


def _imap_calls(
    kind: SyncKind, messages: int, added: int, changed: int, deleted: int, shape: FetchShape
) -> list[ApiCall]:
    """IMAP round trips on a pooled, logged-in connection (a fresh one adds LOGIN + ENABLE).

    Messages spread evenly over the folders; an incremental sync's changes fall in one.
    """
    folders = shape.imap_folders
    per = -(-messages // folders) if folders else 0
    out = [ApiCall("imap.select", folders, folders)]
    if kind is SyncKind.FULL:
        if messages:
            fetches = folders * -(-per // shape.imap_fetch_chunk)
            out += [
                ApiCall("imap.search", folders, folders),
                ApiCall("imap.fetch", fetches, fetches),
            ]
        return out
    fetch = -(-added // shape.imap_fetch_chunk)
    search = 1 if added > shape.imap_fetch_chunk else 0
    if shape.imap_mode == "condstore":
        # CHANGEDSINCE when anything changed; a count mismatch costs a UID SEARCH ALL.
        fetch += 1 if added + changed + deleted else 0
        search += 1 if deleted else 0
    elif shape.imap_mode == "plain":
        # Without CONDSTORE a flag scan, which also reveals deletions.
        fetch += folders * -(-per // shape.imap_flag_scan_chunk) if messages else 0
    if search:
        out.append(ApiCall("imap.search", search, search))
    if fetch:
        out.append(ApiCall("imap.fetch", fetch, fetch))
    return out

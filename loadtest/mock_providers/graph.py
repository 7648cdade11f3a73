"""The Microsoft Graph v1.0 mail mock: mailFolders, childFolders and per-folder messages/delta.

Delta paging follows Graph: ``Prefer: odata.maxpagesize`` (or ``$top``, else 10) items per
page, ``@odata.nextLink`` while more follow and ``@odata.deltaLink`` on the last page that
carries items (a single empty page when nothing changed). Query options of the first request
(``$select``, ``$top``) are baked into the tokens. Folder lists page with ``$top``/``$skip``
(``graph_folders.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace as _replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from loadtest.mock_providers import synth
from loadtest.mock_providers.graph_folders import list_page
from loadtest.mock_providers.graph_state import DeltaToken, GraphMailbox
from loadtest.mock_providers.replies import graph_error, graph_unauthenticated
from loadtest.mock_providers.service import MockService

DEFAULT_PAGE = 10
# Scope key marking a request answered inside a JSON batch (``graph_batch.py``).
INNER = "mock.graph_batch_inner"
MAX_PAGE = 1000
MESSAGE_FIELDS = frozenset(
    (
        "id", "changeKey", "createdDateTime", "lastModifiedDateTime", "receivedDateTime",
        "sentDateTime", "subject", "bodyPreview", "body", "from", "sender", "toRecipients",
        "ccRecipients", "bccRecipients", "replyTo", "isRead", "isDraft", "hasAttachments",
        "importance", "internetMessageId", "conversationId", "parentFolderId", "categories",
        "flag", "inferenceClassification", "isReadReceiptRequested",
        "isDeliveryReceiptRequested", "webLink",
    )
)  # fmt: skip


class GraphProblem(Exception):
    """A request Graph would refuse; ``response`` is the answer."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def _address(name: str, address: str) -> dict[str, Any]:
    return {"emailAddress": {"name": name, "address": address}}


def message_json(mbx: GraphMailbox, idx: int, select: frozenset[str] | None) -> dict[str, Any]:
    """The Graph message resource of ``idx``, limited to ``select`` when given."""
    st = mbx.view(idx)
    ck = mbx.change_key(idx, st.version)
    out: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.message",
        "@odata.etag": f'W/"{ck}"',
        "id": mbx.message_id(idx),
    }

    def want(name: str) -> bool:
        return select is None or name in select

    # Content follows the folder the message was created in: a moved message says the same.
    c = synth.content(mbx.seed, idx, mbx.address, st.origin)
    me = _address(mbx.address.split("@", 1)[0], mbx.address)
    sender = _address(c.sender_name, c.sender_address)
    if st.origin in (synth.SENT, synth.DRAFTS):
        other = synth.content(mbx.seed, idx + 1, mbx.address, synth.INBOX)
        to = [_address(other.sender_name, other.sender_address)]
    else:
        to = [me]
    fields: dict[str, Callable[[], Any]] = {
        "createdDateTime": lambda: _iso(st.created_ms),
        "lastModifiedDateTime": lambda: _iso(st.modified_ms),
        "changeKey": lambda: ck,
        "categories": lambda: [],
        "receivedDateTime": lambda: _iso(st.created_ms),
        "sentDateTime": lambda: _iso(st.created_ms - 2_000),
        "hasAttachments": lambda: c.has_attachments,
        "internetMessageId": lambda: f"<{idx}.{mbx.prefix:x}@mail.example.com>",
        "subject": lambda: c.subject,
        "bodyPreview": lambda: c.preview[:255],
        "importance": lambda: c.importance,
        "parentFolderId": lambda: mbx.folder_id(st.folder),
        "conversationId": lambda: mbx.conversation_id(idx),
        "isDeliveryReceiptRequested": lambda: False,
        "isReadReceiptRequested": lambda: False,
        "isRead": lambda: not st.unread,
        "isDraft": lambda: st.origin == synth.DRAFTS,
        "webLink": lambda: f"https://outlook.example.com/owa/?ItemID={mbx.message_id(idx)}",
        "inferenceClassification": lambda: "focused",
        "body": lambda: {"contentType": "text", "content": c.preview},
        "sender": lambda: sender,
        "from": lambda: sender,
        "toRecipients": lambda: to,
        "ccRecipients": lambda: [],
        "bccRecipients": lambda: [],
        "replyTo": lambda: [],
        "flag": lambda: {"flagStatus": "notFlagged"},
    }
    for name, make in fields.items():
        if want(name):
            out[name] = make()
    return out


def removed_json(mbx: GraphMailbox, idx: int) -> dict[str, Any]:
    """A deletion as delta reports it."""
    return {
        "@odata.type": "#microsoft.graph.message",
        "id": mbx.message_id(idx),
        "@removed": {"reason": "deleted"},
    }


def page_size(headers: Mapping[str, str], top: int) -> int:
    """Items per page: ``Prefer: odata.maxpagesize`` wins over ``$top``; capped at 1000."""
    for pref in headers.get("prefer", "").split(","):
        name, _, value = pref.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize":
            try:
                return max(1, min(MAX_PAGE, int(value.strip().strip('"'))))
            except ValueError:
                break
    return min(MAX_PAGE, top) if top > 0 else DEFAULT_PAGE


def parse_select(raw: str | None) -> str:
    """Validated ``$select`` as a comma-joined list ("" for the default set)."""
    if not raw:
        return ""
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        if name not in MESSAGE_FIELDS:
            raise GraphProblem(
                graph_error(
                    400,
                    "RequestBroker--ParseUri",
                    f"Could not find a property named '{name}' on type 'microsoft.graph.message'.",
                )
            )
    return ",".join(names)


def delta_page(svc: MockService, mbx: GraphMailbox, request: Request, folder_ref: str) -> Response:
    """One page of a delta round of one folder."""
    folder = mbx.resolve_folder(folder_ref)
    if folder is None:
        return graph_error(
            404, "ErrorItemNotFound", "The specified object was not found in the store."
        )
    base = str(request.base_url).rstrip("/")
    name = mbx.tree.folders[folder].well_known or mbx.folder_id(folder)
    link = f"{base}/v1.0/me/mailFolders/{name}/messages/delta"
    q = request.query_params
    raw = q.get("$deltatoken") or q.get("$skiptoken")
    if raw is not None:
        token = DeltaToken.decode(raw)
        if token is None or token.folder != folder:
            return graph_error(400, "BadRequest", "The delta or skip token is malformed.")
        problem = mbx.token_problem(token)
        if problem is not None:
            return graph_error(
                410,
                "SyncStateNotFound",
                f"The sync state generation is not found; {problem};",
                {"Location": link},
            )
    else:
        try:
            top = int(q.get("$top") or 0)
        except ValueError:
            return graph_error(400, "BadRequest", "Invalid $top: not an integer")
        select = parse_select(q.get("$select"))
        token = DeltaToken(
            "I", mbx.num, mbx.generation, folder, mbx.seq, mbx.next_idx, -1, top, select
        )
    size = page_size(request.headers, token.top)
    chosen = frozenset(token.select.split(",")) if token.select else None
    value: list[dict[str, Any]] = []
    if token.kind == "I":
        items, cont = mbx.initial_page(folder, token.c, token.b, size)
        value = [message_json(mbx, i, chosen) for i in items]
        nxt = None if cont is None else _replace(token, c=cont)
        done = _replace(token, kind="D", b=0, c=0)
    else:
        # A finished round ("D") starts a change round up to now; "R" continues one.
        lo, hi, offset = (token.a, mbx.seq, 0) if token.kind == "D" else (token.a, token.b, token.c)
        changes = mbx.changes(folder, lo, hi)
        for idx, gone in changes[offset : offset + size]:
            value.append(removed_json(mbx, idx) if gone else message_json(mbx, idx, chosen))
        more = offset + size < len(changes)
        nxt = _replace(token, kind="R", a=lo, b=hi, c=offset + size) if more else None
        done = _replace(token, kind="D", a=hi, b=0, c=0)
    body: dict[str, Any] = {
        "@odata.context": f"{base}/v1.0/$metadata#Collection(message)",
        "value": value,
    }
    if nxt is not None:
        body["@odata.nextLink"] = f"{link}?$skiptoken={nxt.encode()}"
    else:
        body["@odata.deltaLink"] = f"{link}?$deltatoken={done.encode()}"
    return JSONResponse(body)


def folder_list(mbx: GraphMailbox, request: Request, parent_ref: str | None, base: str) -> Response:
    """One page of the root's folders (``parent_ref`` None) or of one folder's children."""
    parent: int | None = None
    if parent_ref is None:
        link = f"{base}/v1.0/me/mailFolders"
        context = f"{base}/v1.0/$metadata#users('{mbx.address}')/mailFolders"
    else:
        parent = mbx.resolve_folder(parent_ref)
        if parent is None:
            return graph_error(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        link = f"{base}/v1.0/me/mailFolders/{mbx.folder_id(parent)}/childFolders"
        context = (
            f"{base}/v1.0/$metadata#users('{mbx.address}')/mailFolders"
            f"('{mbx.folder_id(parent)}')/childFolders"
        )
    body = list_page(mbx.tree, parent, link, dict(request.query_params), mbx.counts(), context)
    if isinstance(body, str):
        return graph_error(400, "BadRequest", body)
    return JSONResponse(body)


def routes(svc: MockService) -> list[Route]:
    """HTTP routes of the Graph mock (``/me`` and ``/users/{id}`` forms)."""

    async def authed(
        request: Request, endpoint: str, method: str, work: Callable[[GraphMailbox], Response]
    ) -> Response:
        mbx = svc.authenticate(request)
        if not isinstance(mbx, GraphMailbox):
            svc.stats.unauthorized[endpoint] += 1
            return graph_unauthenticated()
        user = request.path_params.get("user")
        if user is not None and user.lower() not in (mbx.address.lower(), "me"):
            return graph_error(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )

        def answer() -> Response:
            try:
                return work(mbx)
            except GraphProblem as exc:
                return exc.response

        inner = INNER in request.scope
        return await svc.serve("graph", endpoint, method, mbx, answer, inner=inner)

    async def folders(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return await authed(
            request,
            "graph.mailFolders.list",
            "mailFolders.list",
            lambda m: folder_list(m, request, None, base),
        )

    async def child_folders(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        ref = request.path_params["folder"]
        return await authed(
            request,
            "graph.mailFolders.childFolders",
            "mailFolders.childFolders",
            lambda m: folder_list(m, request, ref, base),
        )

    async def delta(request: Request) -> Response:
        ref = request.path_params["folder"]
        return await authed(
            request,
            "graph.messages.delta",
            "messages.delta",
            lambda m: delta_page(svc, m, request, ref),
        )

    out = []
    for head in ("/v1.0/me", "/v1.0/users/{user}"):
        out.append(Route(f"{head}/mailFolders", folders, methods=["GET"]))
        for form in ("mailFolders/{folder}", "mailFolders('{folder}')"):
            out.append(Route(f"{head}/{form}/childFolders", child_folders, methods=["GET"]))
        out.append(Route(f"{head}/mailFolders/{{folder}}/messages/delta", delta, methods=["GET"]))
        out.append(
            Route(f"{head}/mailFolders('{{folder}}')/messages/delta", delta, methods=["GET"])
        )
    return out

"""Control endpoints for Graph folders and moves: list, create and delete folders, move
messages between them (``/_mock/mailboxes/{address}/folders...`` and ``.../move``).

Gmail mailboxes have labels, not folders: these answer 422 for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from loadtest.mock_providers.control import (
    Invalid,
    Selection,
    StrictBody,
    change_reply,
    json_body,
    mailbox_of,
    select_messages,
    validated,
)
from loadtest.mock_providers.graph_folders import FolderError, folder_json
from loadtest.mock_providers.graph_state import GraphMailbox
from loadtest.mock_providers.service import MockService
from loadtest.mock_providers.state import Mailbox


class CreateFolder(StrictBody):
    """``POST /_mock/mailboxes/{address}/folders``."""

    name: str = Field(min_length=1, max_length=255, pattern=r"^[^/]+$")
    # Parent folder (id, well-known name or path); none: directly under the root.
    parent: str | None = None
    hidden: bool = False
    # A search folder lists messages of other folders and holds none of its own.
    search: bool = False


class Move(Selection):
    """``POST /_mock/mailboxes/{address}/move``."""

    folder: str = Field(min_length=1)


def find_folder(mbx: GraphMailbox, ref: str, field: str = "folder") -> int:
    """Code of a live folder named by id, well-known name (or its Gmail alias) or path."""
    code = mbx.find_folder(ref)
    if code is None:
        raise Invalid(422, [{"field": field, "message": f"no folder {ref!r}"}])
    return code


def graph_mailbox(mbx: Mailbox) -> GraphMailbox:
    """The mailbox as a Graph one; 422 for Gmail."""
    if not isinstance(mbx, GraphMailbox):
        raise Invalid(422, [{"field": "address", "message": "folders and moves are Graph only"}])
    return mbx


def folder_doc(mbx: GraphMailbox, code: int) -> dict[str, Any]:
    """A folder as the control API shows it: Graph's fields plus path and well-known name."""
    total, unread = mbx.counts()
    f = mbx.tree.folders[code]
    doc = folder_json(mbx.tree, f, total[code], unread[code])
    doc.pop("@odata.type", None)
    return {
        **doc,
        "path": mbx.tree.path(code),
        "wellKnownName": f.well_known,
        "search": f.search,
    }


def routes(svc: MockService) -> list[Route]:
    """The folder and move endpoints."""
    Handler = Callable[[Request], Awaitable[Any]]

    def guarded(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            try:
                result = await fn(request)
            except Invalid as exc:
                return exc.response()
            return result if isinstance(result, Response) else JSONResponse(result)

        return route

    async def list_folders(request: Request) -> Any:
        mbx = graph_mailbox(mailbox_of(svc, request))
        return {
            "address": mbx.address,
            "folders": [folder_doc(mbx, f.code) for f in mbx.tree.live()],
        }

    async def create(request: Request) -> Any:
        mbx = graph_mailbox(mailbox_of(svc, request))
        body = validated(CreateFolder, await json_body(request))
        parent = None if body.parent is None else find_folder(mbx, body.parent, "parent")
        try:
            folder = mbx.create_folder(body.name, parent, body.hidden, body.search)
        except FolderError as exc:
            raise Invalid(422, [{"field": "name", "message": str(exc)}]) from None
        return JSONResponse(folder_doc(mbx, folder.code), status_code=201)

    async def delete(request: Request) -> Any:
        mbx = graph_mailbox(mailbox_of(svc, request))
        code = find_folder(mbx, request.path_params["folder"])
        try:
            codes, gone = mbx.delete_folder(code, svc.now_ms())
        except FolderError as exc:
            raise Invalid(422, [{"field": "folder", "message": str(exc)}]) from None
        svc.after_change(mbx)
        return {
            "folders": [mbx.folder_id(c) for c in codes],
            "messages": [mbx.message_id(i) for i in gone],
            "change_seq": mbx.seq,
        }

    async def move(request: Request) -> Any:
        mbx = graph_mailbox(mailbox_of(svc, request))
        body = validated(Move, await json_body(request))
        dest = find_folder(mbx, body.folder)
        if not mbx.tree.holds_mail(dest):
            raise Invalid(422, [{"field": "folder", "message": "a search folder holds no mail"}])
        idxs = select_messages(svc, mbx, body, lambda i: mbx.folder(i) != dest)
        moved = mbx.move(idxs, dest, svc.now_ms())
        svc.after_change(mbx)
        return {**change_reply(mbx, moved), "folder": mbx.folder_id(dest)}

    table: list[tuple[str, Handler, str]] = [
        ("/_mock/mailboxes/{address}/folders", list_folders, "GET"),
        ("/_mock/mailboxes/{address}/folders", create, "POST"),
        ("/_mock/mailboxes/{address}/folders/{folder:path}", delete, "DELETE"),
        ("/_mock/mailboxes/{address}/move", move, "POST"),
    ]
    return [Route(path, guarded(fn), methods=[method]) for path, fn, method in table]

"""The Gmail API v1 mock: profile, messages.list, messages.get and history.list.

Each endpoint is a plain function ``(service, mailbox, path args, query) -> (status, body)``
so the HTTP routes and the batch endpoint (``gmail_batch.py``) share it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from email.utils import formatdate
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from loadtest.mock_providers import synth
from loadtest.mock_providers.gmail_state import (
    HISTORY_TYPES,
    LABEL_ADDED,
    LABEL_REMOVED,
    MESSAGE_ADDED,
    MESSAGE_DELETED,
    GmailMailbox,
)
from loadtest.mock_providers.replies import (
    gmail_error_body,
    gmail_unauthenticated,
)
from loadtest.mock_providers.service import MockService

Query = Mapping[str, Sequence[str]]
Reply = tuple[int, dict[str, Any]]
Handler = Callable[[MockService, GmailMailbox, tuple[str, ...], Query], Reply]

MAX_PAGE = 500
DEFAULT_PAGE = 100
_HIDDEN = (synth.DELETED, synth.JUNK)
_HISTORY_KEY = {
    MESSAGE_ADDED: "messagesAdded",
    MESSAGE_DELETED: "messagesDeleted",
    LABEL_ADDED: "labelsAdded",
    LABEL_REMOVED: "labelsRemoved",
}


class BadParam(Exception):
    """A query parameter Gmail would reject; the reply is ready."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply[1]["error"]["message"])
        self.reply = reply


def _bad(name: str, message: str) -> BadParam:
    body = gmail_error_body(
        400, message, "invalidArgument", location=name, locationType="parameter"
    )
    return BadParam((400, body))


def _not_found() -> Reply:
    return 404, gmail_error_body(404, "Requested entity was not found.", "notFound")


def _one(q: Query, name: str) -> str | None:
    values = q.get(name)
    return values[-1] if values else None


def _int(q: Query, name: str, default: int, lo: int, hi: int) -> int:
    raw = _one(q, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, f"Invalid value '{raw}' for {name}: not an integer") from None
    if not lo <= value <= hi:
        raise _bad(name, f"Invalid value {value} for {name}: must be within [{lo}, {hi}]")
    return value


def _bool(q: Query, name: str) -> bool:
    raw = (_one(q, name) or "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise _bad(name, f"Invalid value '{raw}' for {name}: not a boolean")
    return raw in ("true", "1")


def _ref(mbx: GmailMailbox, idx: int) -> dict[str, Any]:
    return {"id": mbx.message_id(idx), "threadId": mbx.thread_id(idx)}


def _labelled(msg: dict[str, Any], labels: Sequence[str]) -> dict[str, Any]:
    """``msg`` with its ``labelIds``, left out when there are none: Gmail's JSON omits an
    empty repeated field, so a message without labels has no ``labelIds`` at all."""
    if labels:
        msg["labelIds"] = list(labels)
    return msg


# --- endpoints -------------------------------------------------------------------------------


def get_profile(svc: MockService, mbx: GmailMailbox, args: tuple[str, ...], q: Query) -> Reply:
    """users.getProfile."""
    threads = {mbx.thread_id(i) for i in mbx.indices()}
    return 200, {
        "emailAddress": mbx.address,
        "messagesTotal": mbx.count(),
        "threadsTotal": len(threads),
        "historyId": str(mbx.history_id),
    }


def list_messages(svc: MockService, mbx: GmailMailbox, args: tuple[str, ...], q: Query) -> Reply:
    """users.messages.list: newest first, paged by an index token."""
    page = _int(q, "maxResults", DEFAULT_PAGE, 1, MAX_PAGE)
    token = _one(q, "pageToken")
    start = None
    if token:
        try:
            start = int(token)
        except ValueError:
            raise _bad("pageToken", f"Invalid pageToken '{token}'") from None
    label_ids = set(q.get("labelIds", ()))
    with_spam_trash = _bool(q, "includeSpamTrash")
    out: list[dict[str, Any]] = []
    next_token = None
    for idx in mbx.indices(descending=True, start=start):
        if not with_spam_trash or label_ids:
            folder = mbx.folder(idx)
            if not with_spam_trash and folder in _HIDDEN:
                continue
            if label_ids and not label_ids.issubset(mbx.labels_of(idx, folder, mbx.unread(idx))):
                continue
        if len(out) == page:
            next_token = str(idx)
            break
        out.append(_ref(mbx, idx))
    body: dict[str, Any] = {}
    if out:
        body["messages"] = out
    if next_token is not None:
        body["nextPageToken"] = next_token
    # An estimate, as Gmail's: the mailbox size, whatever the filter.
    body["resultSizeEstimate"] = mbx.count() if out else 0
    return 200, body


def _headers(mbx: GmailMailbox, idx: int, folder: int, date_ms: int) -> list[dict[str, str]]:
    c = synth.content(mbx.seed, idx, mbx.address, folder)
    if folder in (synth.SENT, synth.DRAFTS):
        to = f"{synth.content(mbx.seed, idx + 1, mbx.address, synth.INBOX).sender_address}"
    else:
        to = mbx.address
    return [
        {"name": "Date", "value": formatdate(date_ms / 1000, usegmt=True)},
        {"name": "From", "value": f"{c.sender_name} <{c.sender_address}>"},
        {"name": "To", "value": to},
        {"name": "Subject", "value": c.subject},
        {"name": "Message-ID", "value": f"<{idx}.{mbx.prefix:x}@mail.example.com>"},
        {"name": "MIME-Version", "value": "1.0"},
        {"name": "Content-Type", "value": 'multipart/alternative; boundary="000000000000b0"'},
    ]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def get_message(svc: MockService, mbx: GmailMailbox, args: tuple[str, ...], q: Query) -> Reply:
    """users.messages.get in the minimal, metadata, full or raw format."""
    fmt = (_one(q, "format") or "full").lower()
    if fmt not in ("minimal", "metadata", "full", "raw"):
        raise _bad("format", f"Invalid value '{fmt}' for format")
    idx = mbx.parse_id(args[1])
    if idx is None or not mbx.exists(idx):
        return _not_found()
    st = mbx.view(idx)
    c = synth.content(mbx.seed, idx, mbx.address, st.folder)
    body = _labelled(_ref(mbx, idx), mbx.labels_of(idx, st.folder, st.unread))
    body.update(
        snippet=c.preview[:200],
        sizeEstimate=c.size,
        historyId=str(st.hid),
        internalDate=str(st.created_ms),
    )
    if fmt == "minimal":
        return 200, body
    headers = _headers(mbx, idx, st.folder, st.created_ms)
    if fmt == "metadata":
        wanted = {h.lower() for h in q.get("metadataHeaders", ())}
        if wanted:
            headers = [h for h in headers if h["name"].lower() in wanted]
        body["payload"] = {
            "partId": "",
            "mimeType": "multipart/alternative",
            "filename": "",
            "headers": headers,
        }
        return 200, body
    text = f"{c.preview}\r\n"
    if fmt == "raw":
        lines = "".join(f"{h['name']}: {h['value']}\r\n" for h in headers)
        body["raw"] = _b64(f"{lines}\r\n--000000000000b0\r\n\r\n{text}--000000000000b0--\r\n")
        return 200, body
    html = f'<div dir="ltr">{c.preview}</div>\r\n'
    body["payload"] = {
        "partId": "",
        "mimeType": "multipart/alternative",
        "filename": "",
        "headers": headers,
        "body": {"size": 0},
        "parts": [
            {
                "partId": str(i),
                "mimeType": mime,
                "filename": "",
                "headers": [{"name": "Content-Type", "value": f'{mime}; charset="UTF-8"'}],
                "body": {"size": len(part), "data": _b64(part)},
            }
            for i, (mime, part) in enumerate((("text/plain", text), ("text/html", html)))
        ],
    }
    return 200, body


def list_history(svc: MockService, mbx: GmailMailbox, args: tuple[str, ...], q: Query) -> Reply:
    """users.history.list: records after ``startHistoryId`` in increasing id order."""
    raw = _one(q, "startHistoryId")
    if raw is None:
        raise _bad("startHistoryId", "Required parameter: startHistoryId")
    page = _int(q, "maxResults", DEFAULT_PAGE, 1, MAX_PAGE)
    kinds: set[int] | None = None
    if "historyTypes" in q:
        kinds = set()
        for name in q["historyTypes"]:
            if name not in HISTORY_TYPES:
                raise _bad("historyTypes", f"Invalid value '{name}' for historyTypes")
            kinds.add(HISTORY_TYPES[name])
    label = _one(q, "labelId")
    try:
        start = int(raw)
    except ValueError:
        return _not_found()
    mbx.trim(svc.now_ms(), svc.retention)
    if start <= 0 or not mbx.history_valid(start):
        return _not_found()
    after = start
    token = _one(q, "pageToken")
    if token:
        try:
            after = max(start, int(token))
        except ValueError:
            raise _bad("pageToken", f"Invalid pageToken '{token}'") from None
    out: list[dict[str, Any]] = []
    next_token = None
    for hid, rec in mbx.history_after(after):
        if kinds is not None and rec.kind not in kinds:
            continue
        if label is not None and label not in rec.labels and label not in rec.changed:
            continue
        if len(out) == page:
            next_token = out[-1]["id"]
            break
        ref = _ref(mbx, rec.idx)
        entry: dict[str, Any] = {"message": _labelled(dict(ref), rec.labels)}
        if rec.kind in (LABEL_ADDED, LABEL_REMOVED):
            entry["labelIds"] = list(rec.changed)
        out.append({"id": str(hid), "messages": [ref], _HISTORY_KEY[rec.kind]: [entry]})
    body: dict[str, Any] = {}
    if out:
        body["history"] = out
    if next_token is not None:
        body["nextPageToken"] = next_token
    body["historyId"] = str(mbx.history_id)
    return 200, body


# --- routing ---------------------------------------------------------------------------------

# (pattern, endpoint name for stats, quota method, handler); also used for batch parts.
ENDPOINTS: tuple[tuple[re.Pattern[str], str, str, Handler], ...] = (
    (re.compile(r"^/gmail/v1/users/([^/]+)/messages/([^/]+)$"), "gmail.messages.get",
     "messages.get", get_message),
    (re.compile(r"^/gmail/v1/users/([^/]+)/messages$"), "gmail.messages.list",
     "messages.list", list_messages),
    (re.compile(r"^/gmail/v1/users/([^/]+)/history$"), "gmail.history.list",
     "history.list", list_history),
    (re.compile(r"^/gmail/v1/users/([^/]+)/profile$"), "gmail.getProfile",
     "getProfile", get_profile),
)  # fmt: skip


def match(path: str) -> tuple[str, str, Handler, tuple[str, ...]] | None:
    """Endpoint, quota method, handler and path arguments of a Gmail API path."""
    for pattern, endpoint, method, handler in ENDPOINTS:
        m = pattern.match(path)
        if m:
            return endpoint, method, handler, m.groups()
    return None


def user_problem(mbx: GmailMailbox, user_id: str) -> Reply | None:
    """403 when the path names another user than the token's."""
    if user_id == "me" or user_id.lower() == mbx.address.lower():
        return None
    return 403, gmail_error_body(403, f"Delegation denied for {mbx.address}", "forbidden")


def run(
    svc: MockService, mbx: GmailMailbox, handler: Handler, args: tuple[str, ...], q: Query
) -> Reply:
    """Call an endpoint function, turning parameter errors into their 400 reply."""
    problem = user_problem(mbx, args[0])
    if problem is not None:
        return problem
    try:
        return handler(svc, mbx, args, q)
    except BadParam as exc:
        return exc.reply


def routes(svc: MockService) -> list[Route]:
    """HTTP routes of the Gmail API mock."""

    def make(endpoint: str, method: str, handler: Handler) -> Callable[[Request], Any]:
        async def route(request: Request) -> Response:
            mbx = svc.authenticate(request)
            if not isinstance(mbx, GmailMailbox):
                svc.stats.unauthorized[endpoint] += 1
                return gmail_unauthenticated()
            args = tuple(request.path_params.values())
            q: dict[str, list[str]] = {}
            for k, v in request.query_params.multi_items():
                q.setdefault(k, []).append(v)

            def answer() -> Response:
                status, body = run(svc, mbx, handler, args, q)
                return JSONResponse(body, status_code=status)

            return await svc.serve("gmail", endpoint, method, mbx, answer)

        return route

    out = []
    for pattern, endpoint, method, handler in ENDPOINTS:
        path = pattern.pattern.strip("^$").replace("([^/]+)", "{userId}", 1)
        path = path.replace("([^/]+)", "{id}", 1)
        out.append(Route(path, make(endpoint, method, handler), methods=["GET"]))
    return out

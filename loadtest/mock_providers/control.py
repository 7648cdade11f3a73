"""The ``/_mock/...`` control API: mailboxes, changes, config and stats (JSON, no auth).

Every body is validated; a bad one gets 422 with ``fields: [{"field", "message"}]`` naming
each offending field (400 when the body is not JSON at all).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from daemon.errors import ConfigError
from loadtest.mock_providers import synth
from loadtest.mock_providers.config import PopulateSpec, describe_errors, errors_text
from loadtest.mock_providers.gmail_state import ChangeableLabel, GmailMailbox
from loadtest.mock_providers.graph_state import GraphMailbox
from loadtest.mock_providers.registry import DuplicateMailbox
from loadtest.mock_providers.service import MockService
from loadtest.mock_providers.state import Mailbox

M = TypeVar("M", bound=BaseModel)


class StrictBody(BaseModel):
    """A control request body: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class CreateMailbox(StrictBody):
    """``POST /_mock/mailboxes``."""

    provider: Literal["gmail", "graph"]
    address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)
    messages: int | None = Field(None, ge=0, le=1_000_000)
    seed: int | None = None


class CreateMany(StrictBody):
    """``POST /_mock/mailboxes/bulk``: many mailboxes at once, all or none."""

    mailboxes: list[CreateMailbox] = Field(min_length=1, max_length=50_000)


class Deliver(StrictBody):
    """``POST /_mock/mailboxes/{address}/deliver``."""

    count: int = Field(1, ge=1, le=100_000)
    folder: str | None = None


class Selection(StrictBody):
    """Messages named by id, or a number of randomly chosen ones."""

    ids: list[str] | None = Field(None, max_length=100_000)
    count: int | None = Field(None, ge=1, le=100_000)
    # With ``count``: ids never to pick (a load test keeps its undelivered mail out of reach).
    exclude: list[str] = Field(default_factory=list, max_length=100_000)

    @model_validator(mode="after")
    def _one_of(self) -> Selection:
        if (self.ids is None) == (self.count is None):
            raise ValueError("give exactly one of ids and count")
        if self.exclude and self.ids is not None:
            raise ValueError("exclude only applies to a count")
        return self


class Flags(Selection):
    """``POST /_mock/mailboxes/{address}/flags``."""

    read: bool


class Labels(Selection):
    """``POST /_mock/mailboxes/{address}/labels`` (Gmail): a ``messages.modify`` of the
    labels the mock can change."""

    add: list[ChangeableLabel] = []
    remove: list[ChangeableLabel] = []

    @model_validator(mode="after")
    def _sensible(self) -> Labels:
        if not self.add and not self.remove:
            raise ValueError("give labels to add or to remove")
        both = sorted(set(self.add) & set(self.remove))
        if both:
            raise ValueError(f"{', '.join(both)} both added and removed")
        return self


class Invalid(Exception):
    """A control request that cannot be served; carries the response."""

    def __init__(self, status: int, fields: list[dict[str, str]]) -> None:
        super().__init__(errors_text(fields))
        self.status = status
        self.fields = fields

    def response(self) -> JSONResponse:
        """The error document."""
        return JSONResponse({"error": str(self), "fields": self.fields}, status_code=self.status)


async def json_body(request: Request, required: bool = True) -> Any:
    """The request's JSON body; 400 when it is not JSON (or missing and ``required``)."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise Invalid(400, [{"field": "(body)", "message": "a JSON body is required"}])
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise Invalid(400, [{"field": "(body)", "message": f"not valid JSON: {exc}"}]) from exc


def validated(model: type[M], data: Any) -> M:
    """``data`` as ``model``; 422 naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Invalid(422, describe_errors(exc)) from exc


def mailbox_of(svc: MockService, request: Request) -> Mailbox:
    """The mailbox named by the path's ``address``; 404 when unknown."""
    address = request.path_params["address"]
    mbx = svc.registry.get(address)
    if mbx is None:
        raise Invalid(404, [{"field": "address", "message": f"no mailbox {address!r}"}])
    return mbx


def _folder(mbx: Mailbox, name: str | None) -> int:
    if name is None:
        return synth.INBOX
    if isinstance(mbx, GraphMailbox):
        code = mbx.find_folder(name)
        if code is None:
            raise Invalid(422, [{"field": "folder", "message": f"no folder {name!r}"}])
        if not mbx.tree.holds_mail(code):
            raise Invalid(422, [{"field": "folder", "message": "a search folder holds no mail"}])
        return code
    code = synth.GMAIL_FOLDER_ALIASES.get(name.lower())
    if code is None:
        known = ", ".join(synth.FOLDER_NAMES)
        raise Invalid(
            422, [{"field": "folder", "message": f"unknown folder {name!r}; known: {known}"}]
        )
    return code


def select_messages(svc: MockService, mbx: Mailbox, sel: Selection, eligible: Any) -> list[int]:
    """Indices of the messages a selection names (422 for unknown ids), or random eligible
    ones."""
    if sel.ids is not None:
        out, bad = [], []
        for i, mid in enumerate(sel.ids):
            idx = mbx.parse_id(mid)
            if idx is None or not mbx.exists(idx):
                bad.append({"field": f"ids.{i}", "message": f"no current message {mid!r}"})
            else:
                out.append(idx)
        if bad:
            raise Invalid(422, bad)
        return out
    assert sel.count is not None
    if sel.exclude:
        skip = {idx for mid in sel.exclude if (idx := mbx.parse_id(mid)) is not None}
        return mbx.pick(sel.count, svc.change_rng, lambda i: i not in skip and eligible(i))
    return mbx.pick(sel.count, svc.change_rng, eligible)


def change_reply(mbx: Mailbox, idxs: list[int]) -> dict[str, Any]:
    """The answer to a change: the ids it touched and the mailbox's new change position."""
    out: dict[str, Any] = {"ids": [mbx.message_id(i) for i in idxs], "count": len(idxs)}
    if isinstance(mbx, GmailMailbox):
        out["history_id"] = str(mbx.history_id)
    elif isinstance(mbx, GraphMailbox):
        out["change_seq"] = mbx.seq
    return out


Handler = Callable[[Request], Awaitable[Any]]
RouteTable = list[tuple[str, Handler, str]]


def _guarded(fn: Handler) -> Handler:
    """``fn`` answering ``Invalid`` with its response and plain data as JSON."""

    async def route(request: Request) -> Response:
        try:
            result = await fn(request)
        except Invalid as exc:
            return exc.response()
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    return route


def _registration_routes(svc: MockService) -> RouteTable:
    """Create mailboxes (one, many, a generated population) and list them."""

    async def create(request: Request) -> Any:
        body = validated(CreateMailbox, await json_body(request))
        try:
            mbx = svc.create_mailbox(body.provider, body.address, body.messages, body.seed)
        except DuplicateMailbox:
            raise Invalid(
                409, [{"field": "address", "message": f"mailbox {body.address!r} exists"}]
            ) from None
        return JSONResponse(svc.credentials(mbx), status_code=201)

    async def create_many(request: Request) -> Any:
        body = validated(CreateMany, await json_body(request))
        seen: set[str] = set()
        for i, m in enumerate(body.mailboxes):
            key = m.address.lower()
            if key in seen or svc.registry.get(m.address) is not None:
                raise Invalid(
                    409,
                    [{"field": f"mailboxes.{i}.address", "message": f"{m.address!r} exists"}],
                )
            seen.add(key)
        made = [
            svc.create_mailbox(m.provider, m.address, m.messages, m.seed) for m in body.mailboxes
        ]
        return JSONResponse([svc.credentials(m) for m in made], status_code=201)

    async def populate(request: Request) -> Any:
        spec = validated(PopulateSpec, await json_body(request))
        try:
            created = svc.populate(spec)
        except DuplicateMailbox as exc:
            raise Invalid(
                409, [{"field": "domain", "message": f"mailbox {exc.args[0]!r} exists"}]
            ) from None
        return [svc.credentials(m) for m in created]

    async def list_mailboxes(request: Request) -> Any:
        try:
            offset = int(request.query_params.get("offset", "0"))
            limit = int(request.query_params.get("limit", "1000"))
        except ValueError:
            raise Invalid(422, [{"field": "offset/limit", "message": "must be integers"}]) from None
        boxes = svc.registry.mailboxes
        by_provider: dict[str, int] = {}
        for m in boxes:
            by_provider[m.provider] = by_provider.get(m.provider, 0) + 1
        return {
            "count": len(boxes),
            "by_provider": by_provider,
            "messages_total": sum(m.count() for m in boxes),
            "mailboxes": [
                {"address": m.address, "provider": m.provider, "messages": m.count(),
                 "revoked": m.revoked}
                for m in boxes[offset : offset + max(0, limit)]
            ],
        }  # fmt: skip

    return [
        ("/_mock/mailboxes", create, "POST"),
        ("/_mock/mailboxes", list_mailboxes, "GET"),
        ("/_mock/mailboxes/bulk", create_many, "POST"),
        ("/_mock/populate", populate, "POST"),
    ]


def _mailbox_routes(svc: MockService) -> RouteTable:
    """One mailbox: read it, change its messages, expire its cursors, revoke its token."""

    async def show(request: Request) -> Any:
        mbx = mailbox_of(svc, request)
        mbx.trim(svc.now_ms(), svc.retention)
        out = mbx.summary()
        cursor = request.query_params.get("cursor")
        if cursor is not None:
            out["cursor_valid"] = mbx.cursor_valid(cursor)
        return out

    async def messages(request: Request) -> Any:
        mbx = mailbox_of(svc, request)
        return {"address": mbx.address, "messages": mbx.listing()}

    async def deliver(request: Request) -> Any:
        mbx = mailbox_of(svc, request)
        body = validated(Deliver, await json_body(request, required=False))
        idxs = mbx.deliver(body.count, _folder(mbx, body.folder), svc.now_ms())
        svc.after_change(mbx)
        return change_reply(mbx, idxs)

    async def flags(request: Request) -> Any:
        mbx = mailbox_of(svc, request)
        body = validated(Flags, await json_body(request))
        idxs = select_messages(svc, mbx, body, lambda i: mbx.unread(i) == body.read)
        changed = mbx.set_read(idxs, body.read, svc.now_ms())
        svc.after_change(mbx)
        return change_reply(mbx, changed)

    async def labels(request: Request) -> Any:
        mbx = mailbox_of(svc, request)
        if not isinstance(mbx, GmailMailbox):
            raise Invalid(
                422, [{"field": "address", "message": "labels are Gmail's; use flags on Graph"}]
            )
        body = validated(Labels, await json_body(request))

        def eligible(i: int) -> bool:
            fits = all(mbx.can_take(i, label) for label in body.add)
            return fits and mbx.would_relabel(i, body.add, body.remove)

        idxs = select_messages(svc, mbx, body, eligible)
        bad = [
            {"field": f"ids.{n}", "message": f"{label} goes on inbox or archived mail only"}
            for n, idx in enumerate(idxs)
            for label in body.add
            if not mbx.can_take(idx, label)
        ]
        if bad:
            raise Invalid(422, bad)
        changed = mbx.relabel(idxs, body.add, body.remove, svc.now_ms())
        svc.after_change(mbx)
        return change_reply(mbx, changed)

    async def delete(request: Request) -> Any:
        mbx = mailbox_of(svc, request)
        body = validated(Selection, await json_body(request))
        idxs = select_messages(svc, mbx, body, lambda i: True)
        gone = mbx.delete(idxs, svc.now_ms())
        svc.after_change(mbx)
        return change_reply(mbx, gone)

    async def expire(request: Request) -> Any:
        mbx = mailbox_of(svc, request)
        mbx.expire_cursors()
        return mbx.summary()

    async def revoke(request: Request) -> Any:
        mbx = mailbox_of(svc, request)
        svc.registry.revoke(mbx)
        return {"address": mbx.address, "revoked": True}

    return [
        ("/_mock/mailboxes/{address}", show, "GET"),
        ("/_mock/mailboxes/{address}/messages", messages, "GET"),
        ("/_mock/mailboxes/{address}/deliver", deliver, "POST"),
        ("/_mock/mailboxes/{address}/flags", flags, "POST"),
        ("/_mock/mailboxes/{address}/labels", labels, "POST"),
        ("/_mock/mailboxes/{address}/delete", delete, "POST"),
        ("/_mock/mailboxes/{address}/expire-cursor", expire, "POST"),
        ("/_mock/mailboxes/{address}/revoke", revoke, "POST"),
    ]


def _service_routes(svc: MockService) -> RouteTable:
    """The whole mock: its config, its statistics, resets."""

    async def get_config(request: Request) -> Any:
        return svc.config.model_dump()

    async def put_config(request: Request) -> Any:
        patch = await json_body(request)
        if not isinstance(patch, dict):
            raise Invalid(422, [{"field": "(body)", "message": "must be a JSON object"}])
        try:
            return svc.update_config(patch).model_dump()
        except ConfigError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                raise Invalid(422, describe_errors(cause)) from exc
            raise Invalid(422, [{"field": "(body)", "message": str(exc)}]) from exc

    async def stats(request: Request) -> Any:
        return svc.stats.report(svc.quotas.peaks)

    async def reset_stats(request: Request) -> Any:
        svc.reset_stats()
        return {"reset": "stats"}

    async def reset(request: Request) -> Any:
        svc.reset()
        return {"reset": "all"}

    return [
        ("/_mock/config", get_config, "GET"),
        ("/_mock/config", put_config, "PUT"),
        ("/_mock/stats", stats, "GET"),
        ("/_mock/stats/reset", reset_stats, "POST"),
        ("/_mock/reset", reset, "POST"),
    ]


def routes(svc: MockService) -> list[Route]:
    """All control endpoints."""
    # In this order: /_mock/mailboxes/bulk is matched before /_mock/mailboxes/{address}.
    table = [*_registration_routes(svc), *_mailbox_routes(svc), *_service_routes(svc)]
    return [Route(path, _guarded(fn), methods=[method]) for path, fn, method in table]

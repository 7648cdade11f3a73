"""Microsoft Graph provider: one delta query per synced folder, the deltaLink stored as the
folder's cursor; an expired delta token (410 / syncStateNotFound) resyncs that folder."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from daemon.errors import BadResponse, CursorExpired
from daemon.policy import SyncKind
from daemon.providers.base import MailboxContext, MessageRecord, SyncResult
from daemon.providers.http import HttpProvider, field, json_object

_SELECT = (
    "subject,from,receivedDateTime,isRead,isDraft,flag,categories,internetMessageId,"
    "conversationId,parentFolderId,hasAttachments,importance"
)
_EXPIRED_CODES = {"syncstatenotfound", "resyncrequired", "syncstateinvalid"}
_WHAT = "messages.delta"


def is_throttle(resp: httpx.Response) -> bool:
    """Graph throttles with 429; 503 with Retry-After means the same."""
    return resp.status_code == 429 or (resp.status_code == 503 and "retry-after" in resp.headers)


def _error_code(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return ""
    err = body.get("error") if isinstance(body, dict) else None
    return str(err.get("code", "")) if isinstance(err, dict) else ""


def _iso(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def to_record(item: Mapping[str, Any], folder: str) -> MessageRecord:
    """A stored record from a delta item; ``BadResponse`` if it has no id."""
    mid = field(item, "id", str, "graph", _WHAT)
    problems: list[str] = []
    sender = None
    frm = item.get("from")
    if isinstance(frm, dict) and isinstance(frm.get("emailAddress"), dict):
        sender = frm["emailAddress"].get("address")
    received = _iso(item.get("receivedDateTime"))
    if item.get("receivedDateTime") and received is None:
        problems.append("receivedDateTime is not ISO 8601")
    flags: list[str] = []
    if item.get("isRead") is True:
        flags.append("\\Seen")
    if item.get("isDraft") is True:
        flags.append("\\Draft")
    flag = item.get("flag")
    if isinstance(flag, dict) and flag.get("flagStatus") == "flagged":
        flags.append("\\Flagged")
    cats = item.get("categories") or []
    if isinstance(cats, list):
        flags += [f"category:{c}" for c in cats if isinstance(c, str)]
    return MessageRecord(
        provider_id=mid,
        folder=folder,
        thread_id=item.get("conversationId")
        if isinstance(item.get("conversationId"), str)
        else None,
        internet_message_id=item.get("internetMessageId")
        if isinstance(item.get("internetMessageId"), str)
        else None,
        subject=item.get("subject") if isinstance(item.get("subject"), str) else None,
        sender=sender if isinstance(sender, str) else None,
        received_at=received,
        size=None,
        flags=tuple(sorted(flags)),
        parse_error="; ".join(problems) or None,
    )


class GraphProvider(HttpProvider):
    """Syncs Outlook mailboxes through Microsoft Graph delta queries."""

    name = "graph"
    is_throttle = staticmethod(is_throttle)
    # Immutable ids survive moves between folders within the mailbox.
    headers: ClassVar[Mapping[str, str]] = MappingProxyType({"Prefer": 'IdType="ImmutableId"'})

    async def sync(
        self, mailbox: MailboxContext, kind: SyncKind, cursor: Mapping[str, Any] | None
    ) -> SyncResult:
        """Delta round per folder; folders without a usable deltaLink start over."""
        folders = list(mailbox.config.get("folders") or self._shape.graph_folders)
        links: Mapping[str, Any] = (cursor or {}).get("folders") or {}
        new_links: dict[str, str] = {}
        result = SyncResult(kind=kind, cursor={})
        any_full = False
        for folder in folders:
            link = links.get(folder) if kind is SyncKind.INCREMENTAL else None
            if isinstance(link, str) and link:
                try:
                    new_links[folder] = await self._round(mailbox, folder, link, result, False)
                    continue
                except CursorExpired:
                    result.fell_back_to_full = True
            any_full = True
            result.full_scopes.append(folder)
            new_links[folder] = await self._round(mailbox, folder, None, result, True)
        if kind is SyncKind.INCREMENTAL and any_full and not result.fell_back_to_full:
            # A folder added to the configuration since the last sync: listed in full.
            result.fell_back_to_full = True
        if kind is SyncKind.FULL:
            result.fell_back_to_full = False
        elif len(result.full_scopes) == len(folders):
            # Every folder had to start over: in effect a full sync.
            result.kind = SyncKind.FULL
        upserted = {r.provider_id for r in result.upserts}
        # A message moved between synced folders shows as removed in one, added in another.
        result.deletes = [d for d in dict.fromkeys(result.deletes) if d not in upserted]
        result.cursor = {"folders": new_links}
        result.api_calls = mailbox.gate.calls
        return result

    async def _round(
        self,
        mailbox: MailboxContext,
        folder: str,
        link: str | None,
        result: SyncResult,
        initial: bool,
    ) -> str:
        """Follow nextLinks to the deltaLink, collecting changes into ``result``."""
        url = link or (
            f"{self._base}/me/mailFolders/{quote(folder, safe='')}/messages/delta?$select={_SELECT}"
        )
        headers = {"Prefer": f'IdType="ImmutableId", odata.maxpagesize={self._shape.graph_page}'}
        while True:
            resp = await self._api.call(
                mailbox, _WHAT, "GET", url, headers=headers, pass_through=(400, 404, 410)
            )
            if resp.status_code in (400, 404, 410):
                code = _error_code(resp).lower()
                if resp.status_code == 410 or code in _EXPIRED_CODES:
                    if initial:
                        raise BadResponse(
                            f"delta of {folder}: fresh round refused ({code})",
                            provider="graph",
                            status=resp.status_code,
                        )
                    raise CursorExpired(
                        f"delta token of {folder} expired ({code or 410})",
                        provider="graph",
                        status=resp.status_code,
                    )
                if resp.status_code == 404:
                    result.skipped.append((folder, f"folder {folder!r} not found"))
                    return ""
                raise BadResponse(
                    f"delta of {folder}: HTTP 400 {code}", provider="graph", status=400
                )
            page = json_object(resp, "graph", _WHAT)
            for item in field(page, "value", list, "graph", _WHAT):
                if not isinstance(item, dict):
                    raise BadResponse("delta: an item is not an object", provider="graph")
                if "@removed" in item:
                    result.deletes.append(field(item, "id", str, "graph", _WHAT))
                    continue
                try:
                    result.upserts.append(to_record(item, folder))
                except BadResponse as exc:
                    result.skipped.append(("?", str(exc)))
            next_link = page.get("@odata.nextLink")
            delta_link = page.get("@odata.deltaLink")
            if isinstance(next_link, str) and next_link:
                url = next_link
                continue
            if isinstance(delta_link, str) and delta_link:
                return delta_link
            raise BadResponse(
                "delta: page has neither @odata.nextLink nor @odata.deltaLink", provider="graph"
            )

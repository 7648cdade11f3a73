"""One page of a Microsoft Graph delta round, read: its messages as stored records, its
removals, and where the round goes next (a nextLink, its deltaLink, or the folder is gone
or its token expired). Pure functions over the answer; ``graph.py`` sends the requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from daemon.errors import BadResponse, CursorExpired
from daemon.providers.base import MessageRecord, SyncResult
from daemon.providers.http import field, json_object
from daemon.providers.httpclient import HttpResponse

# The quota method of a delta page.
WHAT = "messages.delta"
# Delta answers read here rather than by the shared call rules.
PASSED = (400, 404, 410)
_EXPIRED_CODES = {"syncstatenotfound", "resyncrequired", "syncstateinvalid"}


def _error_code(resp: HttpResponse) -> str:
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
    mid = field(item, "id", str, "graph", WHAT)
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


def take(folder: str, resp: HttpResponse, result: SyncResult, initial: bool) -> tuple[str, bool]:
    """One delta page's changes into ``result``: (the nextLink, False) while the round
    goes on, (its deltaLink, True) at its end, ("", True) for a folder that is gone."""
    if resp.status_code in PASSED:
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
            # Deleted since it was listed (or a configured name that does not exist):
            # nothing of it stays stored, and no link is kept.
            result.skipped.append((folder, f"folder {folder!r} not found"))
            if folder not in result.full_scopes:
                result.full_scopes.append(folder)
            return "", True
        raise BadResponse(f"delta of {folder}: HTTP 400 {code}", provider="graph", status=400)
    page = json_object(resp, "graph", WHAT)
    for item in field(page, "value", list, "graph", WHAT):
        if not isinstance(item, dict):
            raise BadResponse("delta: an item is not an object", provider="graph")
        if "@removed" in item:
            # Deleted, or moved to another folder: the row goes only if it is still
            # filed under this one (see SyncResult.removals).
            result.removals.append((field(item, "id", str, "graph", WHAT), folder))
            continue
        try:
            result.upserts.append(to_record(item, folder))
        except BadResponse as exc:
            result.skipped.append(("?", str(exc)))
    next_link = page.get("@odata.nextLink")
    delta_link = page.get("@odata.deltaLink")
    if isinstance(next_link, str) and next_link:
        return next_link, False
    if isinstance(delta_link, str) and delta_link:
        return delta_link, True
    raise BadResponse(
        "delta: page has neither @odata.nextLink nor @odata.deltaLink", provider="graph"
    )


__all__ = ["PASSED", "WHAT", "take", "to_record"]

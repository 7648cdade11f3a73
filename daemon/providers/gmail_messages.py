"""Gmail's answers read, as pure functions: a message resource (``format=metadata``) as a
stored record, and whether an error answer is Google's throttling (429, or 403 with a
rate or quota reason). ``gmail.py`` sends the requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daemon.providers.base import MessageRecord
from daemon.providers.http import field
from daemon.providers.httpclient import HttpResponse

# The quota method of a metadata get.
WHAT_GET = "messages.get"
_RATE_REASONS = {
    "ratelimitexceeded",
    "userratelimitexceeded",
    "dailylimitexceeded",
    "quotaexceeded",
}


def rate_reason(body: Any) -> bool:
    """Whether an error body names one of Google's rate or quota reasons."""
    if not isinstance(body, dict):
        return False
    err = body.get("error")
    if not isinstance(err, dict):
        return False
    if err.get("status") == "RESOURCE_EXHAUSTED":
        return True
    for item in err.get("errors") or ():
        if isinstance(item, dict) and str(item.get("reason", "")).lower() in _RATE_REASONS:
            return True
    return False


def is_throttle(resp: HttpResponse) -> bool:
    """429, or 403 with a usageLimits reason: Google uses both for the same quotas."""
    if resp.status_code == 429:
        return True
    if resp.status_code != 403:
        return False
    try:
        return rate_reason(resp.json())
    except ValueError:
        return False


def to_record(msg: Mapping[str, Any]) -> MessageRecord:
    """A stored record from a message resource (format=metadata); ``BadResponse`` if unusable."""
    mid = field(msg, "id", str, "gmail", WHAT_GET)
    payload = field(msg, "payload", dict, "gmail", WHAT_GET, default={})
    headers: dict[str, str] = {}
    for h in field(payload, "headers", list, "gmail", WHAT_GET, default=[]):
        if isinstance(h, dict) and isinstance(h.get("name"), str):
            headers.setdefault(h["name"].lower(), str(h.get("value", "")))
    problems: list[str] = []
    received: float | None = None
    raw_date = msg.get("internalDate")
    if raw_date is not None:
        try:
            received = int(raw_date) / 1000.0
        except (TypeError, ValueError):
            problems.append(f"internalDate {str(raw_date)[:40]!r} is not epoch milliseconds")
    size = msg.get("sizeEstimate")
    if size is not None and not isinstance(size, int):
        problems.append("sizeEstimate is not an integer")
        size = None
    # Absent when the message has no label at all (Gmail omits empty repeated fields).
    labels = msg.get("labelIds") or []
    if not isinstance(labels, list):
        problems.append("labelIds is not a list")
        labels = []
    return MessageRecord(
        provider_id=mid,
        folder="",
        thread_id=msg.get("threadId") if isinstance(msg.get("threadId"), str) else None,
        internet_message_id=headers.get("message-id"),
        subject=headers.get("subject"),
        sender=headers.get("from"),
        received_at=received,
        size=size,
        flags=tuple(sorted(str(x) for x in labels)),
        parse_error="; ".join(problems) or None,
    )


__all__ = ["WHAT_GET", "is_throttle", "rate_reason", "to_record"]

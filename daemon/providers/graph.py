"""Microsoft Graph provider: one delta query per synced folder, the deltaLink stored as the
folder's cursor; an expired delta token (410 / syncStateNotFound) resyncs that folder.

By default every folder of the mailbox is synced, found by listing the folder tree on each
sync (``graph_folders.py``); ``graph.folders`` or a mailbox's ``config.folders`` narrow it
to named folders. Messages are stored under the folder's key (its id, or the configured
name); a move shows as a removal in one folder and an addition in the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar
from urllib.parse import quote

from daemon.errors import BadResponse, CursorExpired
from daemon.policy import SyncKind
from daemon.providers import graph_batch
from daemon.providers.base import ALL_FOLDERS, MailboxContext, MessageRecord, SyncResult
from daemon.providers.graph_folders import LIST_METHOD, WHOLE_MAILBOX, list_folders, selection
from daemon.providers.http import HttpProvider, field, json_object
from daemon.providers.httpclient import HttpResponse
from daemon.settings import GraphSettings

_SELECT = (
    "subject,from,receivedDateTime,isRead,isDraft,flag,categories,internetMessageId,"
    "conversationId,parentFolderId,hasAttachments,importance"
)
_EXPIRED_CODES = {"syncstatenotfound", "resyncrequired", "syncstateinvalid"}
_WHAT = "messages.delta"
# Delta answers read by the provider itself rather than the shared call rules.
_PASSED = (400, 404, 410)


def is_throttle(resp: HttpResponse) -> bool:
    """Graph throttles with 429; 503 with Retry-After means the same."""
    return resp.status_code == 429 or (resp.status_code == 503 and "retry-after" in resp.headers)


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

    def _selection(self, mailbox: MailboxContext) -> str | list[str]:
        settings = self._api.settings
        default = settings.folders if isinstance(settings, GraphSettings) else WHOLE_MAILBOX
        return selection(mailbox.config, default)

    async def _keys(self, mailbox: MailboxContext, chosen: str | list[str]) -> list[str]:
        """Keys of the folders to sync: folder ids of the listed tree, or the configured
        names / ids as given (no listing calls)."""
        if chosen == WHOLE_MAILBOX:
            page = self._shape.graph_folder_page
            found = await list_folders(self._api, mailbox, self._base, page)
            return [f.key for f in found]
        return list(dict.fromkeys(chosen))

    async def sync(
        self, mailbox: MailboxContext, kind: SyncKind, cursor: Mapping[str, Any] | None
    ) -> SyncResult:
        """Delta round per folder; folders without a usable deltaLink start over."""
        links: Mapping[str, Any] = (cursor or {}).get("folders") or {}
        chosen = self._selection(mailbox)
        if kind is SyncKind.INCREMENTAL and links:
            # The calls this sync will make if the folders are those of the last one: the
            # root list and one delta page per folder, admitted in one quota call instead of
            # one each. Child lists and further pages are admitted as they come.
            await mailbox.gate.reserve(
                {LIST_METHOD: 1 if chosen == WHOLE_MAILBOX else 0, _WHAT: len(links)}
            )
        keys = await self._keys(mailbox, chosen)
        known: dict[str, str] = {}
        if kind is SyncKind.INCREMENTAL:
            known = {k: v for k in keys if isinstance(v := links.get(k), str) and v}
        # Each folder's changes are gathered apart and joined in folder order, so batching
        # (which interleaves the folders' pages) yields the same result as one at a time.
        parts = {key: SyncResult(kind=kind, cursor={}) for key in keys}
        new_links: dict[str, str] = {}
        batchable = {
            k: v
            for k, v in known.items()
            if self._shape.graph_batch > 0 and graph_batch.relative(v, self._base)
        }
        expired = await self._batched_rounds(mailbox, batchable, parts, new_links)
        result = SyncResult(kind=kind, cursor={})
        restarted = 0
        for key in keys:
            part = parts[key]
            if key not in new_links:
                link = known.get(key)
                if link and key not in expired:
                    try:
                        new_links[key] = await self._round(mailbox, key, link, part, False)
                    except CursorExpired:
                        expired.add(key)
            if key not in new_links:
                # No link: a new folder (or a full sync); an expired one: the folder starts
                # over.
                result.fell_back_to_full |= key in expired
                restarted += 1
                result.full_scopes.append(key)
                new_links[key] = await self._round(mailbox, key, None, part, True)
            result.upserts += part.upserts
            result.removals += part.removals
            result.skipped += part.skipped
            result.full_scopes += [f for f in part.full_scopes if f not in result.full_scopes]
        if kind is SyncKind.FULL or restarted == len(keys):
            # Every synced folder was listed whole: anything stored and not seen is gone,
            # including folders synced before and no longer now.
            result.kind = SyncKind.FULL
            result.full_scopes = [ALL_FOLDERS]
        else:
            # Folders synced last time and not now (deleted, or no longer selected) are
            # empty as far as this mailbox's store goes.
            result.full_scopes += [k for k in links if k not in new_links]
        if kind is SyncKind.FULL:
            result.fell_back_to_full = False
        result.cursor = {"folders": {k: v for k, v in new_links.items() if v}}
        result.api_calls = mailbox.gate.calls
        return result

    def _delta_headers(self) -> dict[str, str]:
        return {"Prefer": f'IdType="ImmutableId", odata.maxpagesize={self._shape.graph_page}'}

    async def _batched_rounds(
        self,
        mailbox: MailboxContext,
        links: Mapping[str, str],
        parts: Mapping[str, SyncResult],
        new_links: dict[str, str],
    ) -> set[str]:
        """Delta rounds of the folders with a deltaLink, their pages sent in JSON batches of
        up to ``FetchShape.graph_batch`` (about two HTTP calls per sync instead of one per
        folder).

        Each inner request is quota-charged as a call of its own, and each inner answer is
        judged by the rule of a whole call (``ApiClient.judge``): a throttled or failed one
        is sent again in the next batch after its wait, up to the same retry limits. Fills
        ``new_links``; returns the folders whose delta token expired (they start over).
        """
        pending = dict(links)  # folder -> URL of its next page
        ids = {key: str(i) for i, key in enumerate(pending)}
        sends: dict[str, int] = {}  # sends of each folder's current page
        refreshed: set[str] = set()
        expired: set[str] = set()
        headers = self._delta_headers()
        while pending:
            chunk = list(pending)[: min(self._shape.graph_batch, graph_batch.MAX_REQUESTS)]
            body = graph_batch.encode(
                [
                    (ids[k], graph_batch.relative(pending[k], self._base) or "", headers)
                    for k in chunk
                ]
            )
            resp = await self._api.call(
                mailbox,
                _WHAT,
                "POST",
                f"{self._base}/$batch",
                count=len(chunk),
                headers={"Content-Type": "application/json"},
                content=body,
            )
            answers = graph_batch.decode(resp, [ids[k] for k in chunk])
            waits: list[float] = []
            refresh = False
            for key in chunk:
                answer = answers[ids[key]]
                sends[key] = sends.get(key, 0) + 1
                again = self._api.judge(
                    mailbox, _WHAT, answer, sends[key], key in refreshed, pass_through=_PASSED
                )
                if again is not None:
                    # Sent again in the next batch, after the longest wait asked for.
                    if again.refresh:
                        refreshed.add(key)
                        refresh = True
                    else:
                        waits.append(again.wait_s)
                    continue
                sends.pop(key)
                refreshed.discard(key)
                try:
                    url, done = self._take(key, answer, parts[key], False)
                except CursorExpired:
                    expired.add(key)
                    del pending[key]
                    continue
                if done:
                    new_links[key] = url
                    del pending[key]
                elif graph_batch.relative(url, self._base) is None:
                    # A nextLink elsewhere than the batch's root: the round goes on alone.
                    del pending[key]
                    try:
                        new_links[key] = await self._round(mailbox, key, url, parts[key], False)
                    except CursorExpired:
                        expired.add(key)
                else:
                    pending[key] = url
            if refresh:
                await mailbox.tokens.get(force_refresh=True)
            if waits:
                await self._sleep(max(waits))
        return expired

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
        headers = self._delta_headers()
        while True:
            resp = await self._api.call(
                mailbox, _WHAT, "GET", url, headers=headers, pass_through=_PASSED
            )
            url, done = self._take(folder, resp, result, initial)
            if done:
                return url

    def _take(
        self, folder: str, resp: HttpResponse, result: SyncResult, initial: bool
    ) -> tuple[str, bool]:
        """One delta page's changes into ``result``: (the nextLink, False) while the round
        goes on, (its deltaLink, True) at its end, ("", True) for a folder that is gone."""
        if resp.status_code in _PASSED:
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
        page = json_object(resp, "graph", _WHAT)
        for item in field(page, "value", list, "graph", _WHAT):
            if not isinstance(item, dict):
                raise BadResponse("delta: an item is not an object", provider="graph")
            if "@removed" in item:
                # Deleted, or moved to another folder: the row goes only if it is still
                # filed under this one (see SyncResult.removals).
                result.removals.append((field(item, "id", str, "graph", _WHAT), folder))
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

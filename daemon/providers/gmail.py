"""Gmail API provider: full sync by messages.list + batched metadata gets, incremental by
history.list from the stored historyId (a 404 there falls back to a full sync)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

from daemon.errors import BadResponse, CursorExpired, QuotaDeferred, RateLimited, TransientError
from daemon.policy import SyncKind
from daemon.providers import gmail_batch
from daemon.providers.base import ALL_FOLDERS, MailboxContext, MessageRecord, SyncResult
from daemon.providers.gmail_messages import WHAT_GET, is_throttle, rate_reason, to_record
from daemon.providers.http import (
    HttpProvider,
    backoff_s,
    field,
    json_object,
    parse_retry_after,
    throttle_gives_up,
)

_HEADERS = ("From", "Subject", "Message-ID", "Date")
# The authenticated user: the access token says whose mailbox it is.
_USER = "/gmail/v1/users/me"


class _Retry(NamedTuple):
    """Items of a batch to send again, the longest Retry-After among them, and whether any
    was throttled (429 or 403 usageLimits) rather than failed otherwise."""

    ids: list[str]
    wait: float | None
    throttled: bool


# The cursor key of a full sync stopped for quota; the first page has the empty token.
_RESUME = "full_sync"
_FIRST_PAGE = ""


@dataclass(slots=True)
class _FullState:
    """Where a full sync stands: the historyId it started from, the next messages.list page
    (``None`` once every page is listed) and listed ids not fetched yet."""

    history_id: str
    page_token: str | None
    pending: list[str]

    @classmethod
    def of(cls, raw: Any) -> _FullState | None:
        """From a stored cursor; None when it is not one of ours."""
        if not isinstance(raw, dict):
            return None
        hid, token, pending = raw.get("history_id"), raw.get("page_token"), raw.get("pending")
        if (
            not isinstance(hid, str)
            or not (token is None or isinstance(token, str))
            or not isinstance(pending, list)
            or not all(isinstance(x, str) for x in pending)
        ):
            return None
        return cls(hid, token, list(pending))

    def as_dict(self) -> dict[str, Any]:
        """The cursor form."""
        return {
            "history_id": self.history_id,
            "page_token": self.page_token,
            "pending": self.pending,
        }


class GmailProvider(HttpProvider):
    """Syncs Gmail mailboxes over the REST API."""

    name = "gmail"
    is_throttle = staticmethod(is_throttle)

    async def sync(
        self, mailbox: MailboxContext, kind: SyncKind, cursor: Mapping[str, Any] | None
    ) -> SyncResult:
        """Incremental from the stored historyId when asked and possible, else full; a full
        sync stopped for quota resumes where it stopped, whatever was asked."""
        if cursor and _RESUME in cursor:
            # An unreadable position (not written by this version) means starting over.
            return await self._full(mailbox, _FullState.of(cursor[_RESUME]))
        history_id = (cursor or {}).get("history_id")
        if kind is SyncKind.INCREMENTAL and history_id:
            try:
                return await self._incremental(mailbox, str(history_id))
            except CursorExpired:
                result = await self._full(mailbox)
                result.fell_back_to_full = True
                return result
        return await self._full(mailbox)

    # --- full ----------------------------------------------------------------------------------

    async def _full(self, mailbox: MailboxContext, state: _FullState | None = None) -> SyncResult:
        """List every message and fetch its metadata, batch by batch.

        Inside ``gate.chunked()``: when the quota the next call needs is further away than
        the run may wait, the messages fetched so far are returned with the listing's
        position as the cursor, and the next run goes on from there.
        """
        resumed = state is not None
        records: list[MessageRecord] = []
        skipped: list[tuple[str, str]] = []
        with mailbox.gate.chunked():
            try:
                if state is None:
                    state = await self._full_start(mailbox)
                while state.pending or state.page_token is not None:
                    if state.pending:
                        batch = state.pending[: self._shape.gmail_batch]
                        # Ids deleted between listing and fetching are simply absent.
                        got, _gone, bad = await self._get_many(mailbox, batch)
                        records += got
                        skipped += bad
                        state.pending = state.pending[len(batch) :]
                        continue
                    page = await self._list_page(mailbox, state.page_token)
                    if page is None:
                        # The stored page token is no longer accepted: start over.
                        return await self._full(mailbox)
                    state.pending, state.page_token = page
            except QuotaDeferred as deferred:
                if state is None:
                    raise
                return SyncResult(
                    kind=SyncKind.FULL,
                    cursor={_RESUME: state.as_dict()},
                    upserts=records,
                    skipped=skipped,
                    api_calls=mailbox.gate.calls,
                    resume_in_s=deferred.delay_s,
                    resumed=resumed,
                )
        return SyncResult(
            kind=SyncKind.FULL,
            cursor={"history_id": state.history_id},
            upserts=records,
            full_scopes=[ALL_FOLDERS],
            skipped=skipped,
            api_calls=mailbox.gate.calls,
            resumed=resumed,
        )

    async def _full_start(self, mailbox: MailboxContext) -> _FullState:
        # The profile's historyId is read before listing, so every change after it is
        # seen by the next incremental sync even if the listing races with new mail.
        resp = await self._api.call(mailbox, "getProfile", "GET", self._base + _USER + "/profile")
        profile = json_object(resp, "gmail", "getProfile")
        history_id = str(field(profile, "historyId", (str, int), "gmail", "getProfile"))
        return _FullState(history_id, _FIRST_PAGE, [])

    async def _list_page(
        self, mailbox: MailboxContext, token: str | None
    ) -> tuple[list[str], str | None] | None:
        """Ids of one messages.list page and the next page's token (None: last page); None
        when a resumed page token is refused (400)."""
        params: dict[str, Any] = {
            "maxResults": self._shape.gmail_list_page,
            "includeSpamTrash": "true",
        }
        if token:
            params["pageToken"] = token
        resp = await self._api.call(
            mailbox,
            "messages.list",
            "GET",
            self._base + _USER + "/messages",
            params=params,
            pass_through=(400,) if token else (),
        )
        if resp.status_code == 400:
            return None
        page = json_object(resp, "gmail", "messages.list")
        ids: list[str] = []
        for item in field(page, "messages", list, "gmail", "messages.list", default=[]):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise BadResponse("messages.list: an entry lacks a string id", provider="gmail")
            ids.append(item["id"])
        nxt = page.get("nextPageToken")
        return list(dict.fromkeys(ids)), (str(nxt) if nxt else None)

    # --- incremental -----------------------------------------------------------------------------

    async def _incremental(self, mailbox: MailboxContext, start: str) -> SyncResult:
        to_fetch: dict[str, None] = {}
        deleted: dict[str, None] = {}
        labels: dict[str, tuple[str, ...]] = {}
        latest = start
        params = {"startHistoryId": start, "maxResults": self._shape.gmail_history_page}
        async for page in self._pages(mailbox, "history.list", "/history", params, True):
            latest = str(field(page, "historyId", (str, int), "gmail", "history.list"))
            for record in field(page, "history", list, "gmail", "history.list", default=[]):
                if not isinstance(record, dict):
                    raise BadResponse(
                        "history.list: a history record is not an object", provider="gmail"
                    )
                self._apply_history(record, to_fetch, deleted, labels)
        records, missing, skipped = await self._get_many(mailbox, list(to_fetch))
        fetched = {r.provider_id for r in records}
        flag_updates = [
            (mid, fl) for mid, fl in labels.items() if mid not in fetched and mid not in deleted
        ]
        return SyncResult(
            kind=SyncKind.INCREMENTAL,
            cursor={"history_id": latest},
            upserts=records,
            flag_updates=flag_updates,
            deletes=list(deleted) + missing,
            skipped=skipped,
            api_calls=mailbox.gate.calls,
        )

    async def _pages(
        self,
        mailbox: MailboxContext,
        method: str,
        path: str,
        params: dict[str, Any],
        expires: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every page of a paged list call, following ``nextPageToken``.

        With ``expires`` a 404 means the start point is gone (history.list's historyId):
        ``CursorExpired``, and the caller falls back to a full sync.
        """
        token: str | None = None
        while True:
            query = {**params, "pageToken": token} if token else params
            resp = await self._api.call(
                mailbox,
                method,
                "GET",
                self._base + _USER + path,
                params=query,
                pass_through=(404,) if expires else (),
            )
            if resp.status_code == 404:
                raise CursorExpired(f"{method}: start point expired", provider="gmail", status=404)
            page = json_object(resp, "gmail", method)
            yield page
            token = page.get("nextPageToken")
            if not token:
                return

    @staticmethod
    def _apply_history(
        record: Mapping[str, Any],
        to_fetch: dict[str, None],
        deleted: dict[str, None],
        labels: dict[str, tuple[str, ...]],
    ) -> None:
        def messages(key: str) -> list[Mapping[str, Any]]:
            items = record.get(key) or []
            if not isinstance(items, list):
                raise BadResponse(f"history.list: {key} is not a list", provider="gmail")
            out: list[Mapping[str, Any]] = []
            for it in items:
                msg = it.get("message") if isinstance(it, dict) else None
                if not isinstance(msg, dict) or not isinstance(msg.get("id"), str):
                    raise BadResponse(
                        f"history.list: an entry of {key} lacks message.id", provider="gmail"
                    )
                out.append(msg)
            return out

        for msg in messages("messagesAdded"):
            deleted.pop(msg["id"], None)
            to_fetch[msg["id"]] = None
        for msg in messages("messagesDeleted"):
            to_fetch.pop(msg["id"], None)
            labels.pop(msg["id"], None)
            deleted[msg["id"]] = None
        for key in ("labelsAdded", "labelsRemoved"):
            for msg in messages(key):
                # The message's labels after the change. Gmail leaves an empty repeated
                # field out, so no labelIds means the last label was removed: store none.
                ids = field(msg, "labelIds", list, "gmail", f"history.list {key}", default=[])
                labels[msg["id"]] = tuple(sorted(str(x) for x in ids))

    # --- batched metadata gets -------------------------------------------------------------------

    async def _get_many(
        self, mailbox: MailboxContext, ids: Sequence[str]
    ) -> tuple[list[MessageRecord], list[str], list[tuple[str, str]]]:
        """Metadata of ``ids`` via HTTP batches; returns records, ids gone, skipped ids."""
        records: list[MessageRecord] = []
        missing: list[str] = []
        skipped: list[tuple[str, str]] = []
        size = self._shape.gmail_batch
        for start in range(0, len(ids), size):
            chunk = list(ids[start : start + size])
            attempt = 0
            while chunk:
                attempt += 1
                retry = await self._batch(mailbox, chunk, records, missing, skipped)
                if not retry.ids:
                    break
                # Throttled parts follow the rule of a throttled call: a Retry-After beyond
                # max_inline_wait_s fails the sync at once instead of holding the worker.
                settings = self._api.settings
                if retry.throttled and throttle_gives_up(attempt, retry.wait, settings):
                    raise RateLimited(
                        "messages.get: batch items throttled",
                        provider="gmail",
                        retry_after=retry.wait,
                    )
                if attempt > settings.max_call_retries:
                    raise TransientError("messages.get: batch items kept failing", provider="gmail")
                wait = retry.wait
                await self._sleep(wait if wait is not None else backoff_s(attempt, self._rng))
                chunk = retry.ids
        return records, missing, skipped

    async def _batch(
        self,
        mailbox: MailboxContext,
        chunk: list[str],
        records: list[MessageRecord],
        missing: list[str],
        skipped: list[tuple[str, str]],
    ) -> _Retry:
        query = "format=metadata&" + "&".join(f"metadataHeaders={h}" for h in _HEADERS)
        paths = [f"{_USER}/messages/{quote(mid, safe='')}?{query}" for mid in chunk]
        boundary = f"batch_{uuid.uuid4().hex}"
        token = await mailbox.tokens.get()
        body = gmail_batch.encode(paths, boundary, f"Bearer {token}")
        resp = await self._api.call(
            mailbox,
            WHAT_GET,
            "POST",
            self._base + "/batch/gmail/v1",
            count=len(chunk),
            headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
            content=body,
        )
        parts = gmail_batch.decode(resp.headers.get("content-type", ""), resp.content)
        answered: set[int] = set()
        retry: list[str] = []
        wait: float | None = None
        throttled = refresh = False
        for part in parts:
            idx = gmail_batch.item_index(part.content_id)
            if idx is None or idx >= len(chunk):
                raise BadResponse(
                    f"batch: unknown Content-ID {part.content_id!r}", provider="gmail"
                )
            answered.add(idx)
            mid = chunk[idx]
            if part.status == 200 and isinstance(part.body, dict):
                try:
                    records.append(to_record(part.body))
                except BadResponse as exc:
                    skipped.append((mid, str(exc)))
            elif part.status == 404:
                missing.append(mid)
            elif part.status == 429 or (part.status == 403 and rate_reason(part.body)):
                ra = parse_retry_after(part.headers.get("retry-after"), self._clock())
                mailbox.gate.throttled(ra)
                wait = max(wait or 0.0, ra) if ra is not None else wait
                throttled = True
                retry.append(mid)
            elif part.status == 401:
                refresh = True
                retry.append(mid)
            elif part.status >= 500:
                retry.append(mid)
            elif part.status == 200:
                skipped.append((mid, "messages.get: body is not a JSON object"))
            else:
                skipped.append((mid, f"messages.get: HTTP {part.status}"))
        retry += [mid for i, mid in enumerate(chunk) if i not in answered]
        if refresh:
            await mailbox.tokens.get(force_refresh=True)
        return _Retry(retry, wait, throttled)


__all__ = ["GmailProvider"]

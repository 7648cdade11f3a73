"""Microsoft Graph provider: one delta query per synced folder, the deltaLink stored as the
folder's cursor; an expired delta token (410 / syncStateNotFound) resyncs that folder.

By default every folder of the mailbox is synced, found by listing the folder tree on each
sync (``graph_folders.py``); ``graph.folders`` or a mailbox's ``config.folders`` narrow it
to named folders. Messages are stored under the folder's key (its id, or the configured
name); a move shows as a removal in one folder and an addition in the other.

A delta page is read by ``graph_delta.py``; the folder tree is listed by
``graph_folders.py``; JSON batches are encoded and decoded by ``graph_batch.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar
from urllib.parse import quote

from daemon.errors import CursorExpired
from daemon.policy import SyncKind
from daemon.provider_settings import GraphSettings
from daemon.providers import graph_batch
from daemon.providers.base import ALL_FOLDERS, MailboxContext, SyncResult
from daemon.providers.graph_delta import PASSED, WHAT, take
from daemon.providers.graph_folders import (
    LIST_METHOD,
    WHOLE_MAILBOX,
    list_folders,
    root_list_url,
    selection,
)
from daemon.providers.http import Again, HttpProvider
from daemon.providers.httpclient import HttpResponse

_SELECT = (
    "subject,from,receivedDateTime,isRead,isDraft,flag,categories,internetMessageId,"
    "conversationId,parentFolderId,hasAttachments,importance"
)
# The id of the root folder list inside the first batch (delta pages are numbered).
_LEAD_ID = "folders"


def is_throttle(resp: HttpResponse) -> bool:
    """Graph throttles with 429; 503 with Retry-After means the same."""
    return resp.status_code == 429 or (resp.status_code == 503 and "retry-after" in resp.headers)


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

    async def _keys(
        self, mailbox: MailboxContext, chosen: str | list[str], root: HttpResponse | Again | None
    ) -> list[str]:
        """Keys of the folders to sync: folder ids of the listed tree (``root``: the root
        list's first page when a batch already brought it, or how to ask again), or the
        configured names / ids as given (no listing calls)."""
        if chosen == WHOLE_MAILBOX:
            page = self._shape.graph_folder_page
            found = await list_folders(self._api, mailbox, self._base, page, root)
            return [f.key for f in found]
        return list(dict.fromkeys(chosen))

    def _batchable(self, links: Mapping[str, Any]) -> dict[str, str]:
        """The deltaLinks that can go in a JSON batch to this provider's root."""
        if self._shape.graph_batch <= 0:
            return {}
        return {
            k: v
            for k, v in links.items()
            if isinstance(v, str) and v and graph_batch.relative(v, self._base)
        }

    async def _lead(
        self, mailbox: MailboxContext, links: Mapping[str, str]
    ) -> tuple[HttpResponse | Again, dict[str, HttpResponse]]:
        """The root folder list and the first delta pages of the folders synced last time,
        in one JSON batch: a sync whose folders did not change is this one HTTP request.

        Returns the list's answer (or, when it must be asked again on its own: throttled,
        token refused, server error, how: its wait is taken here) and the delta answers by
        folder, not yet judged. A folder that is no longer listed has its answer dropped
        (its call stays charged).
        """
        page = self._shape.graph_folder_page
        lead = graph_batch.relative(root_list_url(self._base, page), self._base) or ""
        room = min(self._shape.graph_batch, graph_batch.MAX_REQUESTS) - 1
        pages = [(k, links[k]) for k in list(links)[:room]]
        answers, listed = await self._send(mailbox, pages, self._delta_headers(), lead)
        assert listed is not None  # asked for with ``lead``
        # Judged as the list's own first send would be; to send again, it goes alone after
        # the wait it was given.
        again = self._api.judge(mailbox, LIST_METHOD, listed, 1, False)
        if again is None:
            return listed, answers
        if again.wait_s > 0:
            await self._sleep(again.wait_s)
        return again, answers

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
                {LIST_METHOD: 1 if chosen == WHOLE_MAILBOX else 0, WHAT: len(links)}
            )
        root: HttpResponse | Again | None = None
        first: dict[str, HttpResponse] = {}
        ahead = self._batchable(links) if kind is SyncKind.INCREMENTAL else {}
        if chosen == WHOLE_MAILBOX and ahead and self._shape.graph_batch > 1:
            root, first = await self._lead(mailbox, ahead)
        keys = await self._keys(mailbox, chosen, root)
        known: dict[str, str] = {}
        if kind is SyncKind.INCREMENTAL:
            known = {k: v for k in keys if isinstance(v := links.get(k), str) and v}
        # Each folder's changes are gathered apart and joined in folder order, so batching
        # (which interleaves the folders' pages) yields the same result as one at a time.
        parts = {key: SyncResult(kind=kind, cursor={}) for key in keys}
        new_links: dict[str, str] = {}
        batchable = self._batchable(known)
        expired = await self._batched_rounds(mailbox, batchable, parts, new_links, first)
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
        first: Mapping[str, HttpResponse],
    ) -> set[str]:
        """Delta rounds of the folders with a deltaLink, their pages sent in JSON batches of
        up to ``FetchShape.graph_batch`` (about two HTTP calls per sync instead of one per
        folder).

        Each inner request is quota-charged as a call of its own, and each inner answer is
        judged by the rule of a whole call (``ApiClient.judge``): a throttled or failed one
        is sent again in the next batch after its wait, up to the same retry limits.
        ``first``: answers to folders' first pages that came already (``_lead``), judged
        in the first round; the other folders are sent from the next one. Fills
        ``new_links``; returns the folders whose delta token expired (they start over).
        """
        pending = dict(links)  # folder -> URL of its next page
        sends: dict[str, int] = {}  # sends of each folder's current page
        refreshed: set[str] = set()
        expired: set[str] = set()
        headers = self._delta_headers()
        came = {k: r for k, r in first.items() if k in pending}
        while pending:
            if came:
                chunk, answers, came = list(came), came, {}
            else:
                chunk = list(pending)[: min(self._shape.graph_batch, graph_batch.MAX_REQUESTS)]
                answers, _ = await self._send(mailbox, [(k, pending[k]) for k in chunk], headers)
            waits: list[float] = []
            refresh = False
            for key in chunk:
                answer = answers[key]
                sends[key] = sends.get(key, 0) + 1
                again = self._api.judge(
                    mailbox, WHAT, answer, sends[key], key in refreshed, pass_through=PASSED
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
                    url, done = take(key, answer, parts[key], False)
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

    async def _send(
        self,
        mailbox: MailboxContext,
        pages: list[tuple[str, str]],
        headers: Mapping[str, str],
        lead: str | None = None,
    ) -> tuple[dict[str, HttpResponse], HttpResponse | None]:
        """One JSON batch of delta pages ``(folder, URL)``, and first the root folder list's
        page when ``lead`` (its URL relative to the version root) is given: the answers by
        folder, and the list's (None without ``lead``)."""
        requests = [
            (str(i), graph_batch.relative(url, self._base) or "", headers)
            for i, (_, url) in enumerate(pages)
        ]
        if lead is not None:
            requests.insert(0, (_LEAD_ID, lead, {}))
        resp = await self._api.call(
            mailbox,
            WHAT,
            "POST",
            f"{self._base}/$batch",
            count=len(pages),
            headers={"Content-Type": "application/json"},
            content=graph_batch.encode(requests),
            riders=None if lead is None else {LIST_METHOD: 1},
        )
        answers = graph_batch.decode(resp, [rid for rid, _, _ in requests])
        by_folder: dict[str, HttpResponse] = {
            key: answers[str(i)] for i, (key, _) in enumerate(pages)
        }
        listed: HttpResponse | None = None if lead is None else answers[_LEAD_ID]
        return by_folder, listed

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
                mailbox, WHAT, "GET", url, headers=headers, pass_through=PASSED
            )
            url, done = take(folder, resp, result, initial)
            if done:
                return url

"""Full and incremental sync of one IMAP folder over an authenticated connection.

Three ways to find changes, chosen by what the server offers (see docs/imap.md):

* ``QRESYNC``: one ``SELECT folder (QRESYNC (uidvalidity modseq))`` returns the UIDs
  expunged since the cursor (``VANISHED (EARLIER)``) and FETCH lines of every message
  changed since, new ones included; then the new messages' headers are fetched.
* ``CONDSTORE``: SELECT, headers of UIDs >= the stored UIDNEXT, ``UID FETCH ... (FLAGS)
  (CHANGEDSINCE modseq)`` when HIGHESTMODSEQ moved, and ``UID SEARCH ALL`` only when EXISTS
  differs from (known + new).
* ``PLAIN``: like CONDSTORE, but flags come from a ``UID FETCH <known> (FLAGS)`` scan
  compared with the flag map kept in the cursor; the scan also reveals deletions.

Every mode ends with the same check: EXISTS must equal the UIDs we now believe exist,
otherwise a ``UID SEARCH ALL`` reconciles.

A SELECT answered ``NO`` means a deleted folder only when the absence is confirmed
(``imap_refusal``); otherwise the sync fails as transient and its session is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

import structlog

from daemon.errors import BadResponse, PermanentError, TransientError
from daemon.providers.base import CallGate, MessageRecord
from daemon.providers.imap_client import PROVIDER, ImapConnection, Reply
from daemon.providers.imap_cursor import FolderState
from daemon.providers.imap_message import fetch_items, provider_id, record_from_fetch
from daemon.providers.imap_parse import (
    FetchItem,
    ListEntry,
    ParseError,
    SelectInfo,
    encode_mailbox,
    flags_of,
    mailbox_wire_name,
    parse_fetch,
    parse_list,
    parse_search,
    parse_select,
    response_code,
)
from daemon.providers.imap_refusal import Refusal, needs_listing, select_refusal
from daemon.providers.imap_uidset import chunks, format_uid_set, in_ranges

log = structlog.get_logger(__name__)

_UID_IN_LINE_RE = re.compile(rb"\bUID (\d+)")


class Mode(StrEnum):
    """How a folder's changes are found."""

    QRESYNC = "qresync"
    CONDSTORE = "condstore"
    PLAIN = "plain"


@dataclass(slots=True)
class FolderResult:
    """What one folder's sync found; ``state`` is None when the folder is unavailable."""

    state: FolderState | None
    full: bool
    fell_back: bool = False
    upserts: list[MessageRecord] = field(default_factory=list)
    flag_updates: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Fetched:
    records: dict[int, MessageRecord] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    skipped_uids: set[int] = field(default_factory=set)

    @property
    def present(self) -> set[int]:
        return set(self.records) | self.skipped_uids


@dataclass(slots=True)
class FolderSyncer:
    """Runs folder syncs on one connection, passing every round trip through the gate."""

    conn: ImapConnection
    gate: CallGate
    mode: Mode
    fetch_chunk: int
    flag_scan_chunk: int
    max_header_bytes: int
    calls: int = 0

    async def _cmd(self, method: str, call: Callable[..., Awaitable[Reply]], *args: str) -> Reply:
        await self.gate.acquire(method)
        self.calls += 1
        return await call(*args)

    # --- commands -----------------------------------------------------------------------

    async def _select(self, folder: str, modifier: str = "") -> SelectInfo | None:
        """SELECT; None only when the folder is confirmed absent (see ``imap_refusal``)."""
        arg = encode_mailbox(folder) + (f" {modifier}" if modifier else "")
        reply = await self._cmd("imap.select", self.conn.select, arg)
        if reply.result == "NO":
            code = response_code(reply.text)
            listing = await self._list(folder) if needs_listing(code) else None
            if select_refusal(code, listing, mailbox_wire_name(folder)) is Refusal.GONE:
                return None
            # The folder exists but this session cannot open it (Dovecot keeps refusing a
            # folder whose index was rebuilt under the session): never reuse the session.
            self.conn.broken = True
            raise TransientError(
                f"SELECT {folder!r} refused although the folder exists: "
                f"{reply.text.decode('utf-8', 'replace').strip()[:200]}",
                provider=PROVIDER,
            )
        if not reply.ok:
            raise PermanentError(f"SELECT {folder!r} rejected: {reply.text!r}", provider=PROVIDER)
        try:
            info = parse_select(reply.untagged)
        except ParseError as e:
            raise BadResponse(f"SELECT {folder!r}: {e}", provider=PROVIDER) from e
        if info.uidvalidity is None:
            raise BadResponse(f"SELECT {folder!r}: no UIDVALIDITY", provider=PROVIDER)
        if self.mode is not Mode.PLAIN and info.nomodseq:
            info.highestmodseq = None
        return info

    async def _list(self, folder: str) -> list[ListEntry] | None:
        """LIST of exactly ``folder``; None when LIST failed (absence stays unconfirmed)."""
        reply = await self._cmd("imap.list", self.conn.list, encode_mailbox(folder))
        if not reply.ok:
            return None
        try:
            return parse_list(reply.untagged)
        except ParseError as e:
            log.warning("imap.list_unparsed", folder=folder, reason=str(e))
            return None

    async def _search(self, folder: str, *criteria: str) -> list[int]:
        reply = await self._cmd("imap.search", self.conn.uid_search, *criteria)
        if reply.result == "BAD":
            raise PermanentError(
                f"UID SEARCH in {folder!r} rejected: {reply.text!r}", provider=PROVIDER
            )
        if not reply.ok:
            raise BadResponse(f"UID SEARCH in {folder!r} failed: {reply.text!r}", provider=PROVIDER)
        try:
            return parse_search(reply.untagged)
        except ParseError as e:
            raise BadResponse(f"UID SEARCH in {folder!r}: {e}", provider=PROVIDER) from e

    async def _fetch(self, folder: str, uid_set: str, items: str) -> list[FetchItem]:
        reply = await self._cmd("imap.fetch", self.conn.uid_fetch, uid_set, items)
        if reply.result == "BAD":
            raise PermanentError(
                f"UID FETCH in {folder!r} rejected: {reply.text!r}", provider=PROVIDER
            )
        if reply.result == "NO":
            # Dovecot answers NO when some messages vanished meanwhile; the rest is valid.
            log.info(
                "imap.fetch_partial", folder=folder, text=reply.text[:120].decode(errors="replace")
            )
        parsed = parse_fetch(reply.untagged)
        for first, why in parsed.errors:
            log.warning("imap.fetch_unparsed", folder=folder, line=first[:80], reason=why)
        return parsed.items

    async def _fetch_records(
        self, folder: str, uv: int, sets: list[str], wanted: Callable[[int], bool]
    ) -> _Fetched:
        out = _Fetched()
        items = fetch_items(self.max_header_bytes)
        for uid_set in sets:
            reply = await self._cmd("imap.fetch", self.conn.uid_fetch, uid_set, items)
            if reply.result == "BAD":
                raise PermanentError(f"UID FETCH rejected: {reply.text!r}", provider=PROVIDER)
            parsed = parse_fetch(reply.untagged)
            best: dict[int, FetchItem] = {}
            for item in parsed.items:
                uid = item.uid
                # Unsolicited FETCHes (flag changes by other clients) carry no header data.
                if uid is not None and wanted(uid) and (uid not in best or item.body() is not None):
                    best[uid] = item
            for uid, item in best.items():
                out.records[uid] = record_from_fetch(item, folder, uv, self.max_header_bytes)
            for first, why in parsed.errors:
                m = _UID_IN_LINE_RE.search(first)
                if m and wanted(int(m.group(1))):
                    uid = int(m.group(1))
                    out.skipped_uids.add(uid)
                    out.skipped.append((provider_id(folder, uv, uid), f"unparseable FETCH: {why}"))
                else:
                    out.skipped.append((f"{folder}:{uv}:?", f"FETCH item without UID: {why}"))
        return out

    # --- full ---------------------------------------------------------------------------

    def _modifier(self) -> str:
        return "" if self.mode is Mode.PLAIN else "(CONDSTORE)"

    async def full(self, folder: str, info: SelectInfo | None = None) -> FolderResult:
        """List the whole folder (SELECT, UID SEARCH ALL, chunked UID FETCH)."""
        if info is None:
            info = await self._select(folder, self._modifier())
            if info is None:
                return _missing(folder)
        assert info.uidvalidity is not None
        uv = info.uidvalidity
        uids = await self._search(folder, "ALL") if info.exists != 0 else []
        got = await self._fetch_records(
            folder,
            uv,
            [format_uid_set(c) for c in chunks(uids, self.fetch_chunk)],
            set(uids).__contains__,
        )
        present = sorted(got.present)
        state = FolderState(
            uv,
            max(info.uidnext or 1, present[-1] + 1 if present else 1),
            info.highestmodseq,
            present,
        )
        if self.mode is Mode.PLAIN:
            state.flags = {uid: rec.flags for uid, rec in got.records.items()}
        return FolderResult(state, True, upserts=list(got.records.values()), skipped=got.skipped)

    # --- incremental --------------------------------------------------------------------

    async def incremental(self, folder: str, prev: FolderState) -> FolderResult:
        """Changes since ``prev``; a full listing if UIDVALIDITY changed."""
        qresync = self.mode is Mode.QRESYNC and prev.highestmodseq is not None
        if qresync:
            modifier = f"(QRESYNC ({prev.uidvalidity} {prev.highestmodseq}))"
        else:
            modifier = self._modifier()
        info = await self._select(folder, modifier)
        if info is None:
            return _missing(folder)
        if info.uidvalidity != prev.uidvalidity or (
            self.mode is not Mode.PLAIN
            and (prev.highestmodseq is None or info.highestmodseq is None)
        ):
            # A server ignores QRESYNC parameters whose UIDVALIDITY does not match, so the
            # SELECT above is a plain one and the full listing can continue from it.
            log.info(
                "imap.folder_resync", folder=folder, old=prev.uidvalidity, new=info.uidvalidity
            )
            res = await self.full(folder, info)
            res.fell_back = True
            return res
        uv = prev.uidvalidity
        known = set(prev.uids)
        gone: set[int] = set()
        changed: dict[int, tuple[str, ...]] = {}
        new_uids: list[int] | None = None
        if qresync:
            gone = {u for u in known if in_ranges(info.vanished, u)}
            new_found = set()
            for item in info.fetch.items:
                uid = item.uid
                if uid is None:
                    continue
                if uid >= prev.uidnext:
                    new_found.add(uid)
                elif uid in known and uid not in gone and "FLAGS" in item.attrs:
                    changed[uid] = flags_of(item.attrs["FLAGS"])
            new_uids = sorted(new_found)
        got = await self._fetch_new(folder, uv, prev, info, new_uids)
        scanned = False
        if self.mode is Mode.CONDSTORE and known and info.highestmodseq != prev.highestmodseq:
            upto = f"1:{prev.uidnext - 1}" if prev.uidnext > 1 else "1"
            items = await self._fetch(
                folder, upto, f"(UID FLAGS) (CHANGEDSINCE {prev.highestmodseq})"
            )
            for item in items:
                if item.uid in known and "FLAGS" in item.attrs:
                    changed[item.uid] = flags_of(item.attrs["FLAGS"])
        elif self.mode is Mode.PLAIN and known:
            seen: set[int] = set()
            for part in chunks(sorted(known), self.flag_scan_chunk):
                for item in await self._fetch(folder, format_uid_set(part), "(UID FLAGS)"):
                    if item.uid in known and "FLAGS" in item.attrs:
                        seen.add(item.uid)
                        flags = flags_of(item.attrs["FLAGS"])
                        if prev.flags is None or prev.flags.get(item.uid) != flags:
                            changed[item.uid] = flags
            gone |= known - seen
            scanned = True
        now_known = (known - gone) | got.present
        if info.exists is not None and info.exists != len(now_known) and not scanned:
            # Counts disagree: something was expunged (or arrived) unseen. Reconcile.
            all_uids = set(await self._search(folder, "ALL"))
            gone |= known - all_uids
            missing_new = sorted(u for u in all_uids - now_known if u >= prev.uidnext)
            if missing_new:
                more = await self._fetch_records(
                    folder,
                    uv,
                    [format_uid_set(c) for c in chunks(missing_new, self.fetch_chunk)],
                    set(missing_new).__contains__,
                )
                got.records.update(more.records)
                got.skipped.extend(more.skipped)
                got.skipped_uids |= more.skipped_uids
            now_known = ((known - gone) | got.present) & all_uids
        present = sorted(now_known)
        state = FolderState(
            uv,
            max(info.uidnext or prev.uidnext, present[-1] + 1 if present else 1, prev.uidnext),
            info.highestmodseq,
            present,
        )
        if self.mode is Mode.PLAIN:
            base = dict(prev.flags or {})
            base.update(changed)
            base.update({uid: rec.flags for uid, rec in got.records.items()})
            state.flags = {uid: base[uid] for uid in present if uid in base}
        return FolderResult(
            state,
            False,
            upserts=list(got.records.values()),
            flag_updates=[
                (provider_id(folder, uv, u), f) for u, f in sorted(changed.items()) if u not in gone
            ],
            deletes=[provider_id(folder, uv, u) for u in sorted(gone)],
            skipped=got.skipped,
        )

    async def _fetch_new(
        self, folder: str, uv: int, prev: FolderState, info: SelectInfo, new_uids: list[int] | None
    ) -> _Fetched:
        """Headers of messages with UID >= the stored UIDNEXT."""
        start = prev.uidnext
        if new_uids is not None:
            uids = new_uids
        elif info.uidnext is not None and info.uidnext <= start:
            uids = []
        elif info.uidnext is not None and info.uidnext - start <= self.fetch_chunk:
            # Few enough to take in one round trip without listing them first; n:* always
            # returns the last message, so anything below ``start`` is filtered out.
            return await self._fetch_records(folder, uv, [f"{start}:*"], lambda u: u >= start)
        else:
            uids = [u for u in await self._search(folder, "UID", f"{start}:*") if u >= start]
        return await self._fetch_records(
            folder,
            uv,
            [format_uid_set(c) for c in chunks(uids, self.fetch_chunk)],
            set(uids).__contains__,
        )


def _missing(folder: str) -> FolderResult:
    log.warning("imap.folder_unavailable", folder=folder)
    return FolderResult(None, True, skipped=[(f"folder:{folder}", "folder does not exist")])

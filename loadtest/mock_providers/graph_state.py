"""A Microsoft Graph mailbox: folders, immutable ids and per-folder change logs for delta.

Every change gets the mailbox's next sequence number and lands in its folder's log. A
delta token names a (generation, folder, sequence) point: the next round returns what
changed after it. ``expire_cursors`` bumps the generation, which invalidates every token
handed out (Graph's ``SyncStateNotFound``); retention raises a folder's floor, below
which tokens are refused the same way.
"""

from __future__ import annotations

import base64
import binascii
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from loadtest.mock_providers import synth
from loadtest.mock_providers.graph_folders import FolderError, FolderTree, MockFolder
from loadtest.mock_providers.state import Mailbox, MsgState, Retention, parse_hex_index

_ID_HEAD, _ID_TAIL = "AAMkAD", "AAA="


@dataclass(slots=True)
class FolderLog:
    """Changes of one folder: parallel lists of sequence number, entry and time.

    An entry is ``idx * 2 + 1`` for a deletion and ``idx * 2`` for a creation or update.
    """

    seqs: array[int] = field(default_factory=lambda: array("q"))
    entries: array[int] = field(default_factory=lambda: array("q"))
    times_ms: array[int] = field(default_factory=lambda: array("q"))
    # Tokens older than this sequence number can no longer be served.
    floor: int = 0


@dataclass(frozen=True, slots=True)
class DeltaToken:
    """State carried by a Graph ``$deltatoken`` or ``$skiptoken``.

    ``kind`` is ``D`` (a finished round: changes after ``a``), ``I`` (paging an initial
    round: snapshot sequence ``a``, indices below ``b``, after index ``c``) or ``R`` (paging
    a change round: sequences in ``(a, b]``, from offset ``c``).
    """

    kind: str
    mailbox: int
    generation: int
    folder: int
    a: int
    b: int
    c: int
    top: int
    select: str

    def encode(self) -> str:
        """Opaque URL-safe text."""
        raw = "|".join(
            map(
                str,
                (
                    self.kind,
                    self.mailbox,
                    self.generation,
                    self.folder,
                    self.a,
                    self.b,
                    self.c,
                    self.top,
                    self.select,
                ),
            )
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> DeltaToken | None:
        """The token, or None when ``text`` is not one of ours."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            kind, mbx, gen, folder, a, b, c, top, select = raw.split("|", 8)
            if kind not in ("D", "I", "R"):
                return None
            return cls(
                kind, int(mbx), int(gen), int(folder), int(a), int(b), int(c), int(top), select
            )
        except (ValueError, UnicodeDecodeError, binascii.Error):
            return None


def token_from_cursor(cursor: str) -> DeltaToken | None:
    """A delta token from a full deltaLink / nextLink URL or the bare token."""
    if "?" in cursor:
        query = parse_qs(urlsplit(cursor).query)
        values = query.get("$deltatoken") or query.get("$skiptoken")
        if not values:
            return None
        cursor = values[0]
    return DeltaToken.decode(cursor)


class GraphMailbox(Mailbox):
    """A mailbox served by the Microsoft Graph mock."""

    __slots__ = ("_counts", "generation", "logs", "seq", "tree")

    def __init__(self, num: int, address: str, seed: int, size: int) -> None:
        super().__init__(num, "graph", address, seed, size)
        self.seq = 0
        self.generation = 1
        self.tree = FolderTree(self.prefix)
        self.logs = [FolderLog() for _ in self.tree.folders]
        # Messages and unread messages per folder code, counted on first use and then kept
        # up to date by every change (folder lists are read on every sync).
        self._counts: tuple[list[int], list[int]] | None = None

    # --- ids -----------------------------------------------------------------------------

    def message_id(self, idx: int) -> str:
        """Immutable-id-looking text; case matters, as with Graph."""
        return f"{_ID_HEAD}{self.prefix:08x}{idx:08x}{_ID_TAIL}"

    def parse_id(self, message_id: str) -> int | None:
        """Index of a Graph id of this mailbox."""
        if not (message_id.startswith(_ID_HEAD) and message_id.endswith(_ID_TAIL)):
            return None
        return parse_hex_index(self.prefix, message_id[len(_ID_HEAD) : -len(_ID_TAIL)])

    def folder_id(self, folder: int) -> str:
        """Opaque id of a folder."""
        return self.tree.folder_id(folder)

    def root_folder_id(self) -> str:
        """Id of the invisible root (``msgfolderroot``), parent of the top-level folders."""
        return self.tree.root_id()

    def resolve_folder(self, ref: str) -> int | None:
        """Code of a live folder from a well-known name (any case) or a folder id."""
        return self.tree.resolve(ref)

    def find_folder(self, ref: str) -> int | None:
        """Like ``resolve_folder``, also taking the Gmail aliases the control API has always
        accepted (``sent``, ``trash``, ...) and a user folder's path (``Projects/2026``)."""
        code = self.tree.resolve(ref)
        if code is None:
            code = synth.GMAIL_FOLDER_ALIASES.get(ref.lower())
        if code is None:
            code = next((f.code for f in self.tree.live() if self.tree.path(f.code) == ref), None)
        return code

    def conversation_id(self, idx: int) -> str:
        """Shared by the messages of one thread."""
        root = synth.thread_root(self.seed, idx) if idx < self.n_initial else idx
        return f"AAQkAD{self.prefix:08x}{root:08x}AAA="

    def change_key(self, idx: int, version: int) -> str:
        """Changes whenever the message does."""
        return f"CQAAABYAAAD{self.prefix:08x}{idx:08x}{version:06x}"

    # --- change log ----------------------------------------------------------------------

    def _log(self, idx: int, folder: int, deleted: bool, now_ms: int) -> int:
        self.seq += 1
        log = self.logs[folder]
        log.seqs.append(self.seq)
        log.entries.append(idx * 2 + int(deleted))
        log.times_ms.append(now_ms)
        return self.seq

    def _count(self, folder: int, total: int, unread: int) -> None:
        if self._counts is not None:
            self._counts[0][folder] += total
            self._counts[1][folder] += unread

    def _record_add(self, idx: int, st: MsgState, now_ms: int) -> None:
        st.born_seq = self._log(idx, st.folder, False, now_ms)
        self._count(st.folder, 1, int(st.unread))

    def _record_read(self, idx: int, st: MsgState, read: bool, now_ms: int) -> None:
        self._log(idx, st.folder, False, now_ms)
        self._count(st.folder, 0, -1 if read else 1)

    def _record_delete(self, idx: int, st: MsgState, now_ms: int) -> None:
        self._log(idx, st.folder, True, now_ms)
        self._count(st.folder, -1, -int(st.unread))

    def move(self, idxs: list[int], folder: int, now_ms: int) -> list[int]:
        """Move messages to ``folder``; returns those that were elsewhere.

        As Graph reports it: the old folder's delta removes the message, the new folder's
        delta lists it in full; the immutable id stays the same.
        """
        out = []
        for idx in idxs:
            if not self.exists(idx) or self.folder(idx) == folder:
                continue
            st = self._mutable(idx)
            self._log(idx, st.folder, True, now_ms)
            self._count(st.folder, -1, -int(st.unread))
            st.folder = folder
            st.version += 1
            st.modified_ms = now_ms
            self._log(idx, folder, False, now_ms)
            self._count(folder, 1, int(st.unread))
            out.append(idx)
        return out

    # --- folders -------------------------------------------------------------------------

    def counts(self) -> tuple[list[int], list[int]]:
        """Messages and unread messages per folder code."""
        if self._counts is None:
            n = len(self.tree.folders)
            total, unread = [0] * n, [0] * n
            for idx in self.indices():
                f = self.folder(idx)
                total[f] += 1
                unread[f] += self.unread(idx)
            self._counts = (total, unread)
        return self._counts

    def create_folder(
        self, name: str, parent: int | None, hidden: bool = False, search: bool = False
    ) -> MockFolder:
        """A new (empty) folder under ``parent``; None puts it directly under the root."""
        folder = self.tree.create(name, parent, hidden, search)
        self.logs.append(FolderLog())
        if self._counts is not None:
            self._counts[0].append(0)
            self._counts[1].append(0)
        return folder

    def delete_folder(self, code: int, now_ms: int) -> tuple[list[int], list[int]]:
        """Delete a user folder, its child folders and every message in them for good;
        returns (folder codes, message indices)."""
        if self.tree.folders[code].well_known is not None:
            raise FolderError("well-known folders cannot be deleted")
        codes = set(self.tree.subtree(code))
        doomed = [idx for idx in self.indices() if self.folder(idx) in codes]
        self.delete(doomed, now_ms)
        self.tree.remove(code)
        return sorted(codes), doomed

    def born_seq(self, idx: int) -> int:
        """Sequence number at which message ``idx`` was delivered (-1: initial)."""
        st = self.states.get(idx)
        if st is not None:
            return st.born_seq
        return -1 if idx < self.n_initial else self.seq + 1

    def trim(self, now_ms: int, retention: Retention) -> None:
        """Drop per-folder records beyond the retained count or age."""
        for log in self.logs:
            n = 0
            if retention.max_records is not None:
                n = max(n, len(log.seqs) - retention.max_records)
            if retention.max_age_s is not None and log.times_ms:
                n = max(n, bisect_right(log.times_ms, now_ms - int(retention.max_age_s * 1000)))
            if n > 0:
                log.floor = max(log.floor, log.seqs[n - 1])
                del log.seqs[:n], log.entries[:n], log.times_ms[:n]

    def expire_cursors(self) -> None:
        """Invalidate every delta token handed out so far."""
        self.generation += 1
        for log in self.logs:
            del log.seqs[:], log.entries[:], log.times_ms[:]
            log.floor = self.seq

    def token_problem(self, token: DeltaToken) -> str | None:
        """Why a token cannot be served (the reason for a 410), or None."""
        if token.mailbox != self.num:
            return "the token belongs to another mailbox"
        if token.generation != self.generation:
            return f"generation={token.generation}"
        if not 0 <= token.folder < len(self.logs):
            return "unknown folder"
        # A finished round continues after ``a``; a change round re-reads from ``a`` too.
        if token.kind in ("D", "R") and token.a < self.logs[token.folder].floor:
            return f"generation={token.generation};sequence={token.a}"
        return None

    def cursor_valid(self, cursor: str) -> bool:
        """A Graph cursor is a deltaLink (or its bare token)."""
        token = token_from_cursor(cursor)
        return token is not None and self.token_problem(token) is None

    # --- delta rounds --------------------------------------------------------------------

    def initial_page(
        self, folder: int, after_idx: int, below_idx: int, page: int
    ) -> tuple[list[int], int | None]:
        """Up to ``page`` messages of ``folder`` with ``after_idx < idx < below_idx`` in
        index order, and the index to continue after when more follow (else None)."""
        out: list[int] = []
        for idx in self.indices(start=after_idx + 1):
            if idx >= below_idx:
                break
            if self.folder(idx) != folder:
                continue
            if len(out) == page:
                return out, out[-1]
            out.append(idx)
        return out, None

    def changes(self, folder: int, after_seq: int, upto_seq: int) -> list[tuple[int, bool]]:
        """Net changes of ``folder`` with sequence in ``(after_seq, upto_seq]``: each message
        once, as (idx, removed), ordered by its last change. Messages both delivered and
        deleted in the window are left out."""
        log = self.logs[folder]
        lo = bisect_right(log.seqs, after_seq)
        hi = bisect_right(log.seqs, upto_seq)
        last: dict[int, None] = {}
        for entry in log.entries[lo:hi]:
            idx = entry >> 1
            # Re-inserting moves the message to the end: order by its last change.
            last.pop(idx, None)
            last[idx] = None
        out = []
        for idx in last:
            if self.exists(idx) and self.folder(idx) == folder:
                out.append((idx, False))
            elif self.born_seq(idx) <= after_seq:
                out.append((idx, True))
        return out

    # --- control views -------------------------------------------------------------------

    def summary(self) -> dict[str, object]:
        """Counts per folder and delta state."""
        total, unread = self.counts()
        return {
            "provider": "graph",
            "address": self.address,
            "messages": self.count(),
            "folders": {
                self.tree.label(f.code): {"total": total[f.code], "unread": unread[f.code]}
                for f in self.tree.live()
            },
            "delta_generation": self.generation,
            "change_seq": self.seq,
            "change_records": sum(len(log.seqs) for log in self.logs),
            "revoked": self.revoked,
        }

    def listing(self) -> list[dict[str, object]]:
        """Every current message with id, folder and read state."""
        out: list[dict[str, object]] = []
        for idx in self.indices():
            st = self.view(idx)
            out.append(
                {
                    "id": self.message_id(idx),
                    "folder": self.tree.label(st.folder),
                    "parentFolderId": self.folder_id(st.folder),
                    "isRead": not st.unread,
                    "changeKey": self.change_key(idx, st.version),
                }
            )
        return out

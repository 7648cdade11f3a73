"""A Gmail mailbox: labels, history ids and the retained history records.

History ids grow by a pseudo-random gap of 1-5 per change (never contiguous, as Gmail's),
derived from the mailbox seed and the change count, so a mailbox needs no random state
of its own. A ``startHistoryId`` is valid while it is at or above ``floor``: records up to
the floor have been dropped (retention or ``expire_cursors``).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Collection, Iterable, Iterator
from typing import Literal, NamedTuple, get_args

from loadtest.mock_providers import synth
from loadtest.mock_providers.state import (
    Mailbox,
    MsgState,
    Retention,
    hex_index,
    parse_hex_index,
)

MESSAGE_ADDED, MESSAGE_DELETED, LABEL_ADDED, LABEL_REMOVED = range(4)
HISTORY_TYPES = {
    "messageAdded": MESSAGE_ADDED,
    "messageDeleted": MESSAGE_DELETED,
    "labelAdded": LABEL_ADDED,
    "labelRemoved": LABEL_REMOVED,
}
# Labels the mock can add or remove (``relabel``): read state, and archive <-> inbox.
ChangeableLabel = Literal["INBOX", "UNREAD"]
CHANGEABLE_LABELS: tuple[str, ...] = get_args(ChangeableLabel)
# Flag bits of a label record: which of those labels the change touched.
_UNREAD_BIT, _INBOX_BIT = 1 << 6, 1 << 7
_IDX_SHIFT = 8


class HistoryRecord(NamedTuple):
    """One change: its kind, the message, its labels after the change, and for label
    changes the labels added or removed."""

    kind: int
    idx: int
    labels: tuple[str, ...]
    changed: tuple[str, ...]


class GmailMailbox(Mailbox):
    """A mailbox served by the Gmail API mock."""

    __slots__ = ("changes", "floor", "history_id", "rec_ids", "rec_ms", "records", "start_hid")

    # Records are packed into three int64 arrays (24 bytes each): id, time and
    # ``idx << 8 | inbox changed << 7 | unread changed << 6 | folder << 3 | unread << 2 |
    # kind``; labels are derived again on reading.

    def __init__(self, num: int, address: str, seed: int, size: int) -> None:
        super().__init__(num, "gmail", address, seed, size)
        # Room below the start for the initial messages' own (older) history ids.
        self.start_hid = 10_000 + 3 * size + synth.mix64(seed) % 100_000
        self.history_id = self.start_hid
        self.floor = self.start_hid
        self.changes = 0
        self.rec_ids = array("q")
        self.rec_ms = array("q")
        self.records = array("q")

    # --- ids and labels ------------------------------------------------------------------

    def message_id(self, idx: int) -> str:
        """Gmail-style 16-hex-digit id."""
        return hex_index(self.prefix, idx)

    def parse_id(self, message_id: str) -> int | None:
        """Index of a Gmail id of this mailbox."""
        return parse_hex_index(self.prefix, message_id)

    def thread_id(self, idx: int) -> str:
        """Id of the thread: the id of its first message, as Gmail does."""
        if idx >= self.n_initial:
            return self.message_id(idx)
        return self.message_id(synth.thread_root(self.seed, idx))

    def initial_hid(self, idx: int) -> int:
        """Unchanged initial messages carry increasing history ids below the start."""
        return self.start_hid - 3 * (self.n_initial - idx)

    def labels_of(self, idx: int, folder: int, unread: bool) -> tuple[str, ...]:
        """System labels of a message in ``folder``."""
        out: list[str] = []
        if unread:
            out.append("UNREAD")
        if idx < self.n_initial:
            # Categories belong to the message, not its folder: archiving keeps them, as
            # Gmail's does.
            first = synth.initial_folder(synth.message_hash(self.seed, idx))
            out.extend(synth.gmail_extra_labels(self.seed, idx, first))
        label = synth.GMAIL_FOLDER_LABEL[folder]
        if label:
            out.append(label)
        return tuple(out)

    def labels(self, idx: int) -> tuple[str, ...]:
        """Current label ids of message ``idx``."""
        return self.labels_of(idx, self.folder(idx), self.unread(idx))

    # --- change log ----------------------------------------------------------------------

    def _bump(self) -> int:
        self.changes += 1
        self.history_id += 1 + synth.mix64(self.seed ^ (self.changes * 0x9E3779B1)) % 5
        return self.history_id

    def _append(self, kind: int, idx: int, st: MsgState, now_ms: int, touched: int = 0) -> None:
        hid = self._bump()
        if kind != MESSAGE_DELETED:
            st.hid = hid
        self.rec_ids.append(hid)
        self.rec_ms.append(now_ms)
        self.records.append(
            idx << _IDX_SHIFT | touched | st.folder << 3 | int(st.unread) << 2 | kind
        )

    def _record_add(self, idx: int, st: MsgState, now_ms: int) -> None:
        self._append(MESSAGE_ADDED, idx, st, now_ms)

    def _record_read(self, idx: int, st: MsgState, read: bool, now_ms: int) -> None:
        self._append(LABEL_REMOVED if read else LABEL_ADDED, idx, st, now_ms, _UNREAD_BIT)

    def _record_delete(self, idx: int, st: MsgState, now_ms: int) -> None:
        self._append(MESSAGE_DELETED, idx, st, now_ms)

    def _unpack(self, packed: int) -> HistoryRecord:
        kind = packed & 3
        idx = packed >> _IDX_SHIFT
        labels = self.labels_of(idx, (packed >> 3) & 7, bool(packed & 4))
        changed: tuple[str, ...] = ()
        if kind in (LABEL_ADDED, LABEL_REMOVED):
            changed = tuple(
                name
                for bit, name in ((_INBOX_BIT, "INBOX"), (_UNREAD_BIT, "UNREAD"))
                if packed & bit
            )
        return HistoryRecord(kind, idx, labels, changed)

    # --- label changes (messages.modify of INBOX and UNREAD) ---------------------------

    def can_take(self, idx: int, label: str) -> bool:
        """Whether ``label`` can be added to message ``idx``: the mock moves mail only
        between inbox and archive, so INBOX goes on archived or inbox mail alone."""
        return label != "INBOX" or self.folder(idx) in (synth.INBOX, synth.ARCHIVE)

    def _touches(self, idx: int, labels: Collection[str], adding: bool) -> int:
        """Record bits of the labels among ``labels`` that adding (or removing) would change."""
        touched = 0
        if "UNREAD" in labels and self.unread(idx) != adding:
            touched |= _UNREAD_BIT
        if "INBOX" in labels and self.folder(idx) == (synth.ARCHIVE if adding else synth.INBOX):
            touched |= _INBOX_BIT
        return touched

    def would_relabel(self, idx: int, add: Collection[str], remove: Collection[str]) -> bool:
        """Whether ``relabel`` would change message ``idx``."""
        return bool(self._touches(idx, remove, False) or self._touches(idx, add, True))

    def relabel(
        self, idxs: Iterable[int], add: Collection[str], remove: Collection[str], now_ms: int
    ) -> list[int]:
        """Add and remove ``CHANGEABLE_LABELS`` (removing INBOX archives, adding it moves
        archived mail back); removals, then additions, each one history record when it
        changed anything. Returns the messages whose labels changed."""
        out = []
        for idx in idxs:
            if not self.exists(idx):
                continue
            changed = False
            for labels, adding in ((remove, False), (add, True)):
                touched = self._touches(idx, labels, adding)
                if not touched:
                    continue
                st = self._mutable(idx)
                if touched & _UNREAD_BIT:
                    st.unread = adding
                if touched & _INBOX_BIT:
                    st.folder = synth.INBOX if adding else synth.ARCHIVE
                st.version += 1
                st.modified_ms = now_ms
                self._append(LABEL_ADDED if adding else LABEL_REMOVED, idx, st, now_ms, touched)
                changed = True
            if changed:
                out.append(idx)
        return out

    def _drop(self, n: int) -> None:
        if n <= 0:
            return
        self.floor = max(self.floor, self.rec_ids[n - 1])
        del self.rec_ids[:n], self.rec_ms[:n], self.records[:n]

    def trim(self, now_ms: int, retention: Retention) -> None:
        """Drop records beyond the retained count or age; raises the floor accordingly."""
        if retention.max_records is not None and len(self.records) > retention.max_records:
            self._drop(len(self.records) - retention.max_records)
        if retention.max_age_s is not None and self.rec_ms:
            cutoff = now_ms - int(retention.max_age_s * 1000)
            self._drop(bisect_right(self.rec_ms, cutoff))

    def expire_cursors(self) -> None:
        """Forget all history; the id moves on so a fresh full sync gets a valid cursor."""
        self._bump()
        self.floor = self.history_id
        del self.rec_ids[:], self.rec_ms[:], self.records[:]

    def history_valid(self, start: int) -> bool:
        """Whether ``history.list`` accepts this ``startHistoryId``."""
        return start >= self.floor

    def history_after(self, after: int) -> Iterator[tuple[int, HistoryRecord]]:
        """Records with an id above ``after``, in increasing order."""
        i = bisect_right(self.rec_ids, after)
        ids, recs = self.rec_ids, self.records
        for j in range(i, len(recs)):
            yield ids[j], self._unpack(recs[j])

    def cursor_valid(self, cursor: str) -> bool:
        """A Gmail cursor is a history id."""
        try:
            return self.history_valid(int(cursor))
        except ValueError:
            return False

    # --- control views -------------------------------------------------------------------

    def summary(self) -> dict[str, object]:
        """Counts and history state."""
        label_counts: dict[str, int] = {}
        for idx in self.indices():
            for label in self.labels(idx):
                label_counts[label] = label_counts.get(label, 0) + 1
        return {
            "provider": "gmail",
            "address": self.address,
            "messages": self.count(),
            "labels": dict(sorted(label_counts.items())),
            "history_id": str(self.history_id),
            "oldest_valid_history_id": str(self.floor),
            "history_records": len(self.records),
            "revoked": self.revoked,
        }

    def listing(self) -> list[dict[str, object]]:
        """Every current message with id, thread, labels and read state."""
        out: list[dict[str, object]] = []
        for idx in self.indices():
            folder = self.folder(idx)
            unread = self.unread(idx)
            out.append(
                {
                    "id": self.message_id(idx),
                    "threadId": self.thread_id(idx),
                    "folder": synth.FOLDER_NAMES[folder],
                    "labelIds": list(self.labels_of(idx, folder, unread)),
                    "isRead": not unread,
                }
            )
        return out

"""The mailbox model common to both mock providers.

Message ``idx`` of a mailbox is identified by its index: initial messages are ``0 ..
n_initial-1`` and derived on demand (``synth.py``), deliveries get the next indices. Only
what changed is stored: a ``MsgState`` per delivered or modified message and a set of
deleted indices, so 10,000 mailboxes of thousands of messages cost little memory. The
provider subclasses (``gmail_state.GmailMailbox``, ``graph_state.GraphMailbox``) record each
change in their own change log.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from loadtest.mock_providers import synth


@dataclass(slots=True)
class MsgState:
    """Mutable state of one delivered or changed message."""

    folder: int
    unread: bool
    # Bumped on every change; Graph's changeKey and etag derive from it.
    version: int
    created_ms: int
    modified_ms: int
    # Gmail: history id of the message's last change.
    hid: int
    # Graph: change sequence number at delivery; -1 for initial messages.
    born_seq: int
    # Folder the message was created in; its content (sender, draft) derives from it, so a
    # message moved to another folder keeps what it says.
    origin: int


@dataclass(frozen=True, slots=True)
class Retention:
    """How much change log a mailbox keeps (``None``: unlimited)."""

    max_records: int | None = None
    max_age_s: float | None = None


class Mailbox:
    """One mailbox: the current message set and the changes made to it."""

    __slots__ = (
        "address",
        "client_id",
        "deleted",
        "in_flight",
        "n_initial",
        "next_idx",
        "num",
        "prefix",
        "provider",
        "revoked",
        "seed",
        "states",
    )

    def __init__(self, num: int, provider: str, address: str, seed: int, size: int) -> None:
        self.num = num
        self.provider = provider
        self.address = address
        self.seed = seed
        # Leading bits of every id of this mailbox; makes ids unique across mailboxes.
        self.prefix = 0x18000000 | (synth.mix64(seed) & 0x07FFFFFF)
        self.n_initial = size
        self.next_idx = size
        self.deleted: set[int] = set()
        self.states: dict[int, MsgState] = {}
        self.revoked = False
        self.in_flight = 0
        self.client_id = ""

    # --- reading -------------------------------------------------------------------------

    def exists(self, idx: int) -> bool:
        """Whether message ``idx`` is currently in the mailbox."""
        return 0 <= idx < self.next_idx and idx not in self.deleted

    def count(self) -> int:
        """Messages currently in the mailbox."""
        return self.next_idx - len(self.deleted)

    def folder(self, idx: int) -> int:
        """Folder code of message ``idx``."""
        st = self.states.get(idx)
        if st is not None:
            return st.folder
        return synth.initial_folder(synth.message_hash(self.seed, idx))

    def unread(self, idx: int) -> bool:
        """Whether message ``idx`` is unread."""
        st = self.states.get(idx)
        if st is not None:
            return st.unread
        h = synth.message_hash(self.seed, idx)
        return synth.initial_unread(h, synth.initial_folder(h))

    def initial_hid(self, idx: int) -> int:
        """History id an unchanged initial message reports (Gmail only)."""
        return 0

    def view(self, idx: int) -> MsgState:
        """The state of message ``idx``: stored, or derived for an unchanged initial one
        (a fresh object that must not be modified)."""
        st = self.states.get(idx)
        if st is not None:
            return st
        h = synth.message_hash(self.seed, idx)
        folder = synth.initial_folder(h)
        date = synth.initial_date_ms(h, idx)
        return MsgState(
            folder=folder,
            unread=synth.initial_unread(h, folder),
            version=1,
            created_ms=date,
            modified_ms=date,
            hid=self.initial_hid(idx),
            born_seq=-1,
            origin=folder,
        )

    def indices(self, descending: bool = False, start: int | None = None) -> Iterator[int]:
        """Current message indices in order, from ``start`` (inclusive) when given."""
        deleted = self.deleted
        if descending:
            first = self.next_idx - 1 if start is None else min(start, self.next_idx - 1)
            return (i for i in range(first, -1, -1) if i not in deleted)
        return (i for i in range(start or 0, self.next_idx) if i not in deleted)

    def pick(self, count: int, rng: random.Random, eligible: Callable[[int], bool]) -> list[int]:
        """Up to ``count`` distinct random current messages satisfying ``eligible``.

        Random probing keeps this O(count) on big mailboxes; a scan finishes the job when
        few messages qualify.
        """
        chosen: dict[int, None] = {}
        if self.next_idx == 0 or count <= 0:
            return []
        for _ in range(count * 8):
            if len(chosen) >= count:
                break
            idx = rng.randrange(self.next_idx)
            if idx not in chosen and self.exists(idx) and eligible(idx):
                chosen[idx] = None
        if len(chosen) < count:
            rest = [i for i in self.indices() if i not in chosen and eligible(i)]
            rng.shuffle(rest)
            chosen.update(dict.fromkeys(rest[: count - len(chosen)]))
        return list(chosen)

    # --- changing ------------------------------------------------------------------------

    def _mutable(self, idx: int) -> MsgState:
        st = self.states.get(idx)
        if st is None:
            st = self.view(idx)
            self.states[idx] = st
        return st

    def deliver(self, count: int, folder: int, now_ms: int) -> list[int]:
        """Add ``count`` new unread messages to ``folder``; returns their indices."""
        out = []
        for _ in range(count):
            idx = self.next_idx
            self.next_idx += 1
            st = MsgState(
                folder, folder not in (synth.SENT, synth.DRAFTS), 1, now_ms, now_ms, 0, -1, folder
            )
            self.states[idx] = st
            self._record_add(idx, st, now_ms)
            out.append(idx)
        return out

    def set_read(self, idxs: Iterable[int], read: bool, now_ms: int) -> list[int]:
        """Mark messages read or unread; returns those whose state actually changed."""
        out = []
        for idx in idxs:
            if not self.exists(idx) or self.unread(idx) != read:
                continue
            st = self._mutable(idx)
            st.unread = not read
            st.version += 1
            st.modified_ms = now_ms
            self._record_read(idx, st, read, now_ms)
            out.append(idx)
        return out

    def delete(self, idxs: Iterable[int], now_ms: int) -> list[int]:
        """Delete messages for good; returns those that existed."""
        out = []
        for idx in idxs:
            if not self.exists(idx):
                continue
            st = self.view(idx)
            self.deleted.add(idx)
            self._record_delete(idx, st, now_ms)
            out.append(idx)
        return out

    # --- provider hooks ------------------------------------------------------------------

    def message_id(self, idx: int) -> str:
        """The provider's id of message ``idx``."""
        raise NotImplementedError

    def parse_id(self, message_id: str) -> int | None:
        """Index of a provider message id of this mailbox, or None."""
        raise NotImplementedError

    def _record_add(self, idx: int, st: MsgState, now_ms: int) -> None:
        raise NotImplementedError

    def _record_read(self, idx: int, st: MsgState, read: bool, now_ms: int) -> None:
        raise NotImplementedError

    def _record_delete(self, idx: int, st: MsgState, now_ms: int) -> None:
        raise NotImplementedError

    def expire_cursors(self) -> None:
        """Make every cursor handed out so far invalid."""
        raise NotImplementedError

    def trim(self, now_ms: int, retention: Retention) -> None:
        """Drop change-log records beyond the retention."""
        raise NotImplementedError

    def cursor_valid(self, cursor: str) -> bool:
        """Whether a cursor (Gmail historyId, Graph deltaLink or token) is still usable."""
        raise NotImplementedError

    def summary(self) -> dict[str, object]:
        """Counts and cursor state for the control API."""
        raise NotImplementedError

    def listing(self) -> list[dict[str, object]]:
        """Every current message in a provider-neutral form for tests."""
        raise NotImplementedError


def hex_index(prefix: int, idx: int) -> str:
    """16 hex digits: the mailbox prefix then the message index."""
    return f"{prefix:08x}{idx:08x}"


def parse_hex_index(prefix: int, text: str) -> int | None:
    """Inverse of ``hex_index`` for this prefix; None for anything else."""
    if len(text) != 16:
        return None
    try:
        if int(text[:8], 16) != prefix:
            return None
        return int(text[8:], 16)
    except ValueError:
        return None

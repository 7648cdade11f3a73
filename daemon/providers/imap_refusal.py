"""What a SELECT answered ``NO`` means for a folder's stored messages (pure).

Only a confirmed absence may remove a folder's rows: the server says so with the RFC 5530
code ``[NONEXISTENT]``, or ``LIST`` of that exact name returns nothing (or only a
``\\NonExistent``/``\\Noselect`` placeholder). Dovecot 2.3 gives no code for a missing folder
(``NO Mailbox doesn't exist: X``) and also answers ``NO`` for folders that exist: ``NO
[SERVERBUG] Internal error occurred`` when the folder's index was rebuilt under a session
that had it open, ``NO Mailbox was deleted under us`` when its index files were removed. So
any ``NO`` without ``[NONEXISTENT]`` is checked with LIST, and a listed folder means the
refusal is transient: the sync is retried later on a new connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from daemon.providers.imap_parse import ListEntry

# LIST flags of a name that holds no messages (RFC 5258 \NonExistent, RFC 3501 \Noselect).
_PLACEHOLDER_FLAGS = frozenset({"\\NONEXISTENT", "\\NOSELECT"})


class Refusal(StrEnum):
    """The folder's fate after a refused SELECT."""

    GONE = "gone"  # confirmed absent: its stored messages go
    RETRY = "retry"  # it exists (or absence is unconfirmed): transient, rows kept


def needs_listing(code: str | None) -> bool:
    """Whether a ``NO`` with this response code must be checked with LIST."""
    return code != "NONEXISTENT"


def listed(entries: Sequence[ListEntry], wire_name: str) -> bool:
    """Whether LIST shows ``wire_name`` (modified UTF-7) as a selectable mailbox."""
    for e in entries:
        same = e.name.upper() == "INBOX" if wire_name.upper() == "INBOX" else e.name == wire_name
        if same and not e.flags & _PLACEHOLDER_FLAGS:
            return True
    return False


def select_refusal(
    code: str | None, listing: Sequence[ListEntry] | None, wire_name: str
) -> Refusal:
    """``GONE`` for ``[NONEXISTENT]`` or a LIST without the folder; otherwise ``RETRY``
    (``listing`` is None when LIST was not asked or failed: absence is then unconfirmed)."""
    if not needs_listing(code):
        return Refusal.GONE
    if listing is not None and not listed(listing, wire_name):
        return Refusal.GONE
    return Refusal.RETRY

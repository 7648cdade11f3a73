"""Pure: LIST answers and what a refused SELECT means for a folder's stored messages."""

from __future__ import annotations

from daemon.providers.imap_parse import ListEntry, mailbox_wire_name, parse_list
from daemon.providers.imap_refusal import Refusal, listed, needs_listing, select_refusal


def test_list_lines_parse_with_or_without_the_command_name() -> None:
    lines = [
        b'(\\HasNoChildren) "." Work',
        b'LIST (\\Noselect \\HasChildren) "/" "Old \\"stuff\\""',
        b"(\\HasNoChildren) NIL {5}",
        bytearray(b"Lit&-"),
        b'(\\NonExistent) "." Gone',
    ]
    assert parse_list(lines) == [
        ListEntry("Work", frozenset({"\\HASNOCHILDREN"})),
        ListEntry('Old "stuff"', frozenset({"\\NOSELECT", "\\HASCHILDREN"})),
        ListEntry("Lit&-", frozenset({"\\HASNOCHILDREN"})),
        ListEntry("Gone", frozenset({"\\NONEXISTENT"})),
    ]
    assert parse_list([]) == []
    assert mailbox_wire_name("Grüße & Co") == "Gr&APwA3w-e &- Co"


def test_only_a_confirmed_absence_is_a_deleted_folder() -> None:
    work = [ListEntry("Work", frozenset())]
    # [NONEXISTENT] is the server saying so; no LIST needed.
    assert not needs_listing("NONEXISTENT")
    assert select_refusal("NONEXISTENT", None, "Work") is Refusal.GONE
    # Anything else is checked with LIST: listed means the refusal is transient.
    for code in (None, "SERVERBUG", "UNAVAILABLE", "NOPERM", "TRYCREATE", "X-UNKNOWN"):
        assert needs_listing(code)
        assert select_refusal(code, work, "Work") is Refusal.RETRY
        assert select_refusal(code, [], "Work") is Refusal.GONE
        assert select_refusal(code, None, "Work") is Refusal.RETRY  # LIST failed: unconfirmed
    # Placeholders of deleted parents hold no messages; INBOX is case-insensitive.
    assert not listed([ListEntry("Work", frozenset({"\\NOSELECT"}))], "Work")
    assert not listed([ListEntry("Work", frozenset({"\\NONEXISTENT"}))], "Work")
    assert listed([ListEntry("INBOX", frozenset())], "inbox")
    assert not listed([ListEntry("work", frozenset())], "Work")

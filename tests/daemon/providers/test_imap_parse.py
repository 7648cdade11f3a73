"""Pure IMAP parsing: tokens, FETCH items, SELECT/SEARCH/STATUS, UID sets, names, headers."""

from __future__ import annotations

import pytest

from daemon.providers.imap_cursor import FolderState
from daemon.providers.imap_message import parse_headers, record_from_fetch, split_fields
from daemon.providers.imap_parse import (
    ParseError,
    encode_mailbox,
    parse_capabilities,
    parse_fetch,
    parse_internaldate,
    parse_search,
    parse_select,
    parse_status,
    response_code,
)
from daemon.providers.imap_uidset import (
    chunks,
    format_uid_set,
    in_ranges,
    parse_uid_ranges,
    parse_uid_set,
)

HEADER = b"From: A <a@x.test>\r\nSubject: hi (there\r\n\r\n"


def fetch_lines(uid: int, header: bytes = HEADER) -> list[bytes]:
    return [
        f"{uid} FETCH (UID {uid} RFC822.SIZE 1234 FLAGS (\\Seen \\Recent $Work) "
        f'INTERNALDATE " 1-Feb-2024 10:00:00 +0100" '
        f"BODY[HEADER.FIELDS (FROM SUBJECT MESSAGE-ID DATE)]<0> {{{len(header)}}}".encode(),
        bytearray(header),
        b")",
    ]


def test_fetch_item_with_literal_and_unbalanced_paren_inside() -> None:
    parsed = parse_fetch([*fetch_lines(7), *fetch_lines(8), b"Fetch completed."])
    assert not parsed.errors and [i.uid for i in parsed.items] == [7, 8]
    rec = record_from_fetch(parsed.items[0], "INBOX", 99, 65536)
    assert rec.provider_id == "INBOX:99:7" and rec.size == 1234
    assert rec.flags == ("$Work", "\\Seen")  # \Recent is session state, dropped
    assert rec.subject == "hi (there" and rec.sender == "A <a@x.test>"
    assert rec.received_at == 1706778000.0 and rec.parse_error is None


def test_fetch_errors_are_reported_per_item() -> None:
    broken = [b"3 FETCH (UID 3 FLAGS (\\Seen)"]  # never closed
    parsed = parse_fetch([*fetch_lines(2), *broken, *fetch_lines(4)])
    assert [i.uid for i in parsed.items] == [2, 4]
    assert len(parsed.errors) == 1 and "unclosed" in parsed.errors[0][1]


def test_fetch_item_quoted_strings_nil_and_flag_only_lines() -> None:
    lines = [b'5 FETCH (UID 5 FLAGS () MODSEQ (12) X-NAME "a \\"q\\" b" X-NIL NIL)']
    (item,) = parse_fetch(lines).items
    assert item.attrs["FLAGS"] == [] and item.attrs["MODSEQ"] == ["12"]
    assert item.attrs["X-NAME"] == b'a "q" b' and item.attrs["X-NIL"] is None


def test_select_with_qresync_data() -> None:
    lines = [
        b"FLAGS (\\Answered \\Seen)",
        b"OK [PERMANENTFLAGS (\\Answered \\Seen \\*)] Flags permitted.",
        b"42 EXISTS",
        b"0 RECENT",
        b"OK [UIDVALIDITY 1700000001] UIDs valid",
        b"OK [UIDNEXT 77] Predicted next UID",
        b"OK [HIGHESTMODSEQ 915] Highest",
        b"VANISHED (EARLIER) 3:5,9",
        b"12 FETCH (UID 30 FLAGS (\\Seen) MODSEQ (900))",
    ]
    info = parse_select(lines)
    assert (info.exists, info.uidvalidity, info.uidnext, info.highestmodseq) == (
        42,
        1700000001,
        77,
        915,
    )
    assert info.vanished == [(3, 5), (9, 9)]
    assert [i.uid for i in info.fetch.items] == [30]


def test_search_status_capabilities_codes() -> None:
    assert parse_search([b"1 2 3 10"]) == [1, 2, 3, 10]
    assert parse_search([b"SEARCH 4 5 (MODSEQ 9)"]) == [4, 5]
    assert parse_search([b""]) == []
    with pytest.raises(ParseError):
        parse_search([b"1 x"])
    assert parse_status([b'"INBOX" (MESSAGES 3 UIDNEXT 9)']) == {"MESSAGES": 3, "UIDNEXT": 9}
    caps = parse_capabilities(b"[CAPABILITY IMAP4rev1 CONDSTORE qresync] Logged in")
    assert caps == frozenset({"IMAP4REV1", "CONDSTORE", "QRESYNC"})
    assert parse_capabilities(b"Logged in") is None
    assert response_code(b"[AUTHENTICATIONFAILED] Authentication failed.") == "AUTHENTICATIONFAILED"
    assert response_code(b"no code") is None


def test_internaldate() -> None:
    assert parse_internaldate(b"17-Jul-1996 02:44:25 -0700") == 837596665.0
    with pytest.raises(ParseError):
        parse_internaldate(b"1996-07-17")


def test_mailbox_names_are_modified_utf7_and_quoted() -> None:
    assert encode_mailbox("INBOX") == '"INBOX"'
    assert encode_mailbox("Entwürfe") == '"Entw&APw-rfe"'
    assert encode_mailbox("Tom & Jerry") == '"Tom &- Jerry"'
    assert encode_mailbox('a"b\\c') == '"a\\"b\\\\c"'
    assert encode_mailbox("日本語") == '"&ZeVnLIqe-"'
    with pytest.raises(ValueError):
        encode_mailbox("bad\r\nname")


def test_uid_sets() -> None:
    assert format_uid_set([5, 1, 2, 3, 9, 10]) == "1:3,5,9:10"
    assert parse_uid_set("9:10,1:3,5,2") == [1, 2, 3, 5, 9, 10]
    assert parse_uid_ranges("7:5,6,1") == [(1, 1), (5, 7)]
    ranges = parse_uid_ranges("1:3,10:20")
    assert [u for u in (0, 1, 3, 4, 10, 15, 20, 21) if in_ranges(ranges, u)] == [1, 3, 10, 15, 20]
    assert list(chunks([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    with pytest.raises(ValueError, match="not a number"):
        parse_uid_set("1:x")
    with pytest.raises(ValueError, match="more than"):
        parse_uid_set("1:4294967295")


def test_folder_state_round_trip_keeps_flag_map_compact() -> None:
    flags = {u: ("\\Seen",) for u in range(1, 1001)}
    flags[500] = ()
    state = FolderState(7, 1001, None, list(range(1, 1001)), flags)
    data = state.to_json()
    assert data["uids"] == "1:1000"
    assert data["flags"] == {"": "500", "\\Seen": "1:499,501:1000"}
    assert FolderState.from_json(data) == state
    with pytest.raises(ValueError, match="lacks uidnext"):
        FolderState.from_json({"uidvalidity": 1})


def test_header_parsing_is_defensive() -> None:
    h = parse_headers(b"Subject: =?iso-8859-1?q?caf=E9?=\r\nFrom: x\x00y <u@h.test>\r\n")
    assert h.subject == "café" and h.sender == "x\ufffdy <u@h.test>"
    assert any("control characters" in p for p in h.problems)
    folded = parse_headers(
        b"Subject: a\r\n  folded\r\n\tline\r\nDate: Thu, 1 Feb 2024 10:00:00 +0000\r\n"
    )
    assert folded.subject == "a folded line" and folded.date == 1706781600.0
    fields, problems = split_fields(b"Subject: one\r\nSubject: two\r\nnot a header\r\n")
    assert fields == {"subject": b"one"} and problems == ["header line 3 is not a field"]
    assert parse_headers(b"\r\n").problems == ["no From, Subject, Message-ID or Date header"]

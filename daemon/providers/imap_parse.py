"""Pure parsers for the IMAP responses the sync reads (aioimaplib returns raw lines).

Input is what aioimaplib hands back: untagged lines with the leading ``* `` removed, as
``bytes``, and each literal as a separate ``bytearray`` element right after the line that
announced it with ``{n}``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Union

from daemon.providers.imap_uidset import parse_uid_ranges

# A parsed IMAP value: atom/number (str), string or literal (bytes), NIL (None) or a list.
Value = Union[str, bytes, None, list["Value"]]  # noqa: UP007  # a recursive alias needs Union


class ParseError(ValueError):
    """A response part does not follow the IMAP grammar; the message says where."""


_CODE_RE = re.compile(rb"^\s*\[([A-Za-z0-9-]+)[\] ]")
_CAPS_RE = re.compile(rb"(?:^|\[)CAPABILITY ([^\]\r\n]*)", re.IGNORECASE)
_FETCH_START_RE = re.compile(rb"^(\d+) FETCH \(", re.IGNORECASE)
_LITERAL_END_RE = re.compile(rb"\{(\d+)\+?\}$")
_TOKEN_RE = re.compile(
    rb"""\s*(?:
        (?P<open>\()|(?P<close>\))
        |"(?P<quoted>(?:[^"\\]|\\.)*)"
        |(?P<atom>[^\s()"\[\]{]+(?:\[[^\]]*\](?:<[0-9.]+>)?)?)
    )""",
    re.VERBOSE | re.DOTALL,
)
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    )
}
_INTERNALDATE_RE = re.compile(
    r"^\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\s*$"
)


def response_code(text: bytes) -> str | None:
    """The bracketed response code of a status text (``AUTHENTICATIONFAILED``), upper-case."""
    m = _CODE_RE.match(text)
    return m.group(1).decode().upper() if m else None


def parse_capabilities(text: bytes) -> frozenset[str] | None:
    """Capabilities from a ``[CAPABILITY ...]`` code or a ``CAPABILITY ...`` line, if any."""
    m = _CAPS_RE.search(text)
    if m is None:
        return None
    return frozenset(c.upper() for c in m.group(1).decode("ascii", "replace").split())


# --- mailbox names --------------------------------------------------------------------------


def encode_mailbox(name: str) -> str:
    """``name`` in IMAP's modified UTF-7 (RFC 3501 5.1.3), quoted for a command argument."""
    encoded = mailbox_wire_name(name)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mailbox_wire_name(name: str) -> str:
    """``name`` in modified UTF-7, unquoted: how the server spells it in LIST answers."""
    if any(c in name for c in "\r\n\0"):
        raise ValueError(f"mailbox name {name!r} contains a line break or NUL")
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            b64 = base64.b64encode(raw).decode().rstrip("=").replace("/", ",")
            out.append(f"&{b64}-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One ``LIST`` answer line: the mailbox name as sent (modified UTF-7) and its flags."""

    name: str
    flags: frozenset[str]


def parse_list(lines: Sequence[bytes]) -> list[ListEntry]:
    """``LIST (flags) delimiter name`` lines (with or without the ``LIST`` name, which
    aioimaplib strips); names may be atoms, quoted strings or literals."""
    out: list[ListEntry] = []
    i = 0
    while i < len(lines):
        group = [lines[i]]
        while _LITERAL_END_RE.search(bytes(group[-1])) and i + 1 < len(lines):
            i += 1
            group.append(lines[i])
        i += 1
        if isinstance(group[0], bytearray):
            continue
        values = build_values(tokenize(group))
        if values and isinstance(values[0], str) and values[0].upper() == "LIST":
            values = values[1:]
        if len(values) != 3 or not isinstance(values[0], list):
            raise ParseError(f"LIST line {bytes(group[0])[:80]!r} is not (flags) delimiter name")
        name = values[2]
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if not isinstance(name, str):
            raise ParseError(f"LIST line {bytes(group[0])[:80]!r} has no mailbox name")
        flags = frozenset(f.upper() for f in values[0] if isinstance(f, str))
        out.append(ListEntry(name, flags))
    return out


# --- generic tokenizer ----------------------------------------------------------------------


def tokenize(parts: Sequence[bytes]) -> list[Value | tuple[str]]:
    """Tokens of a response spread over lines and literals; parens become ``("(",)``/``(")",)``."""
    tokens: list[Value | tuple[str]] = []
    expect_literal = False
    for part in parts:
        if isinstance(part, bytearray):
            if not expect_literal:
                raise ParseError("literal data without a preceding {n} marker")
            tokens.append(bytes(part))
            expect_literal = False
            continue
        if expect_literal:
            raise ParseError("a {n} marker is not followed by literal data")
        text = bytes(part)
        m = _LITERAL_END_RE.search(text)
        if m:
            text = text[: m.start()]
            expect_literal = True
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == b"":
                break
            tm = _TOKEN_RE.match(text, pos)
            if tm is None or tm.end() == pos:
                raise ParseError(f"unexpected data at {text[pos : pos + 40]!r}")
            pos = tm.end()
            if tm.group("open"):
                tokens.append(("(",))
            elif tm.group("close"):
                tokens.append((")",))
            elif tm.group("quoted") is not None:
                tokens.append(re.sub(rb"\\(.)", rb"\1", tm.group("quoted")))
            else:
                atom = tm.group("atom").decode("utf-8", "replace")
                tokens.append(None if atom.upper() == "NIL" else atom)
    if expect_literal:
        raise ParseError("response ends where literal data was announced")
    return tokens


def build_values(tokens: list[Value | tuple[str]]) -> list[Value]:
    """Nest tokens into lists at parentheses; unbalanced input raises ``ParseError``."""
    stack: list[list[Value]] = [[]]
    for tok in tokens:
        if tok == ("(",):
            stack.append([])
        elif tok == (")",):
            if len(stack) == 1:
                raise ParseError("unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
        else:
            assert not isinstance(tok, tuple)
            stack[-1].append(tok)
    if len(stack) != 1:
        raise ParseError("unclosed '('")
    return stack[0]


# --- FETCH ----------------------------------------------------------------------------------


@dataclass(slots=True)
class FetchItem:
    """One ``n FETCH (...)`` response: attributes by upper-case name (``BODY[...]`` keys keep
    their section text)."""

    seq: int
    attrs: dict[str, Value]

    @property
    def uid(self) -> int | None:
        """The UID attribute, if present and numeric."""
        v = self.attrs.get("UID")
        return int(v) if isinstance(v, str) and v.isdigit() else None

    def body(self) -> bytes | None:
        """The first ``BODY[...]`` section's data."""
        for key, value in self.attrs.items():
            if key.startswith("BODY["):
                return value if isinstance(value, bytes) else None
        return None


@dataclass(slots=True)
class FetchParse:
    """Items that parsed and (first line, reason) of those that did not."""

    items: list[FetchItem] = field(default_factory=list)
    errors: list[tuple[bytes, str]] = field(default_factory=list)


def split_fetch_items(lines: Sequence[bytes]) -> list[list[bytes]]:
    """Group a response's elements into FETCH items (other untagged lines are dropped)."""
    groups: list[list[bytes]] = []
    current: list[bytes] | None = None
    for part in lines:
        if not isinstance(part, bytearray) and _FETCH_START_RE.match(part):
            current = [part]
            groups.append(current)
        elif current is not None and (isinstance(part, bytearray) or _continues(current)):
            current.append(part)
        else:
            current = None
    return groups


def _continues(group: list[bytes]) -> bool:
    # A text line belongs to the item while the previous element was a literal.
    return isinstance(group[-1], bytearray)


def parse_fetch_item(group: Sequence[bytes]) -> FetchItem:
    """One FETCH item from its lines and literals."""
    m = _FETCH_START_RE.match(group[0])
    if m is None:
        raise ParseError(f"not a FETCH response: {bytes(group[0][:40])!r}")
    first = bytes(group[0])[len(m.group(1)) + len(b" FETCH ") :]
    values = build_values(tokenize([first, *group[1:]]))
    if len(values) != 1 or not isinstance(values[0], list):
        raise ParseError("FETCH data is not one parenthesised list")
    flat = values[0]
    if len(flat) % 2:
        raise ParseError("FETCH attributes are not name/value pairs")
    attrs: dict[str, Value] = {}
    for name, value in zip(flat[::2], flat[1::2], strict=True):
        if not isinstance(name, str):
            raise ParseError(f"FETCH attribute name {name!r} is not an atom")
        attrs[name.upper()] = value
    return FetchItem(int(m.group(1)), attrs)


def parse_fetch(lines: Sequence[bytes]) -> FetchParse:
    """Every FETCH item of a response; a broken item is reported, not raised."""
    out = FetchParse()
    for group in split_fetch_items(lines):
        try:
            out.items.append(parse_fetch_item(group))
        except ParseError as e:
            out.errors.append((bytes(group[0][:200]), str(e)))
    return out


def flags_of(value: Value) -> tuple[str, ...]:
    """A FLAGS list as a sorted tuple without the session-only ``\\Recent``."""
    if not isinstance(value, list):
        raise ParseError(f"FLAGS is not a list: {value!r}")
    flags = {v for v in value if isinstance(v, str) and v.lower() != "\\recent"}
    return tuple(sorted(flags))


def parse_internaldate(value: Value) -> float:
    """INTERNALDATE (``"17-Jul-1996 02:44:25 -0700"``) as epoch seconds."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    m = _INTERNALDATE_RE.match(text)
    if m is None or m.group(2).upper() not in _MONTHS:
        raise ParseError(f"INTERNALDATE {text!r} is not DD-Mon-YYYY HH:MM:SS +ZZZZ")
    day, _, year, hh, mm, ss, sign, zh, zm = m.groups()
    offset = timedelta(hours=int(zh), minutes=int(zm)) * (1 if sign == "+" else -1)
    dt = datetime(
        int(year),
        _MONTHS[m.group(2).upper()],
        int(day),
        int(hh),
        int(mm),
        int(ss),
        tzinfo=timezone(offset),
    )
    return dt.timestamp()


# --- SELECT, SEARCH, STATUS -----------------------------------------------------------------


@dataclass(slots=True)
class SelectInfo:
    """What SELECT (with CONDSTORE or QRESYNC) said about a mailbox."""

    exists: int | None = None
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None
    nomodseq: bool = False
    vanished: list[tuple[int, int]] = field(default_factory=list)
    fetch: FetchParse = field(default_factory=FetchParse)


_EXISTS_RE = re.compile(rb"^(\d+) EXISTS\b", re.IGNORECASE)
_OKCODE_RE = re.compile(rb"^OK \[(UIDVALIDITY|UIDNEXT|HIGHESTMODSEQ) (\d+)\]", re.IGNORECASE)
_VANISHED_RE = re.compile(rb"^VANISHED (?:\(EARLIER\) )?([0-9:,]+)\s*$", re.IGNORECASE)


def parse_select(lines: Sequence[bytes]) -> SelectInfo:
    """SELECT's untagged data: counts, UID/modseq codes, QRESYNC's VANISHED and FETCHes."""
    info = SelectInfo()
    for part in lines:
        if isinstance(part, bytearray):
            continue
        if m := _EXISTS_RE.match(part):
            info.exists = int(m.group(1))
        elif m := _OKCODE_RE.match(part):
            setattr(info, m.group(1).decode().lower(), int(m.group(2)))
        elif part.upper().startswith(b"OK [NOMODSEQ]"):
            info.nomodseq = True
        elif m := _VANISHED_RE.match(part):
            try:
                info.vanished.extend(parse_uid_ranges(m.group(1).decode()))
            except ValueError as e:
                raise ParseError(f"VANISHED: {e}") from None
    info.fetch = parse_fetch(lines)
    return info


def parse_search(lines: Sequence[bytes]) -> list[int]:
    """UIDs of a ``SEARCH`` response (an optional trailing ``(MODSEQ n)`` is ignored).

    aioimaplib strips the ``SEARCH`` name from the untagged line; both forms are accepted.
    """
    uids: list[int] = []
    for part in lines:
        if isinstance(part, bytearray):
            continue
        body = part[6:] if part.upper().startswith(b"SEARCH") else part
        for tok in body.split(b"(", 1)[0].split():
            if not tok.isdigit():
                raise ParseError(f"SEARCH result {tok[:40]!r} is not a number")
            uids.append(int(tok))
    return sorted(set(uids))


def parse_status(lines: Sequence[bytes]) -> dict[str, int]:
    """``STATUS "box" (MESSAGES n UIDNEXT n ...)`` as a dict of upper-case names (with or
    without the ``STATUS`` name, which aioimaplib strips)."""
    for part in lines:
        if isinstance(part, bytearray):
            continue
        start, end = part.rfind(b"("), part.rfind(b")")
        if start < 0 or end < start:
            continue
        toks = part[start + 1 : end].split()
        if len(toks) % 2:
            raise ParseError("STATUS items are not name/value pairs")
        try:
            return {k.decode().upper(): int(v) for k, v in zip(toks[::2], toks[1::2], strict=True)}
        except ValueError:
            raise ParseError(f"STATUS value is not a number: {part[:80]!r}") from None
    raise ParseError("no STATUS item list in the response")

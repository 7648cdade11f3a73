"""Turning one FETCH item into a ``MessageRecord``, whatever the message looks like.

Only the header fields the daemon stores are fetched (``BODY.PEEK[HEADER.FIELDS (...)]``,
capped with a partial fetch), so broken MIME structure and huge bodies never reach this
code. Header bytes are decoded defensively: UTF-8 first (RFC 6532), Latin-1 for other
8-bit data, RFC 2047 encoded words with replacement for unknown charsets. Whatever could
not be read is named in ``parse_error``; only an item without a usable UID is skipped.
"""

from __future__ import annotations

import email.errors
import email.header
import email.utils
import re
from dataclasses import dataclass, field

from daemon.providers.base import MessageRecord
from daemon.providers.imap_parse import FetchItem, ParseError, flags_of, parse_internaldate

HEADER_FIELDS = ("FROM", "SUBJECT", "MESSAGE-ID", "DATE")
# Longest subject / sender / Message-ID kept; longer values are cut and noted.
MAX_FIELD_CHARS = 1000
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FIELD_NAME_RE = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$", re.DOTALL)


def fetch_items(max_header_bytes: int) -> str:
    """The FETCH attribute list the sync asks for."""
    fields = " ".join(HEADER_FIELDS)
    return (
        f"(UID FLAGS RFC822.SIZE INTERNALDATE "
        f"BODY.PEEK[HEADER.FIELDS ({fields})]<0.{max_header_bytes}>)"
    )


@dataclass(slots=True)
class Headers:
    """The decoded header fields we store, plus what went wrong reading them."""

    subject: str | None = None
    sender: str | None = None
    message_id: str | None = None
    date: float | None = None
    problems: list[str] = field(default_factory=list)


def split_fields(raw: bytes) -> tuple[dict[str, bytes], list[str]]:
    """Unfolded header fields by lower-case name (first occurrence wins) and problems."""
    fields: dict[str, bytes] = {}
    problems: list[str] = []
    name: str | None = None
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    for no, line in enumerate(lines, 1):
        if not line.strip():
            if name is None and any(ln.strip() for ln in lines[no:]):
                problems.append(f"empty line {no} before any header field")
            if name is not None:
                break
            continue
        if line[:1] in (b" ", b"\t") and name is not None:
            fields[name] += b" " + line.strip()
            continue
        m = _FIELD_NAME_RE.match(line)
        if m is None:
            problems.append(f"header line {no} is not a field")
            name = None
            continue
        key = m.group(1).decode("ascii").lower()
        if key in fields:
            name = None  # a repeated field: keep the first, ignore continuation lines too
            continue
        name = key
        fields[name] = m.group(2).strip()
    return fields, problems


def decode_value(raw: bytes, what: str, problems: list[str]) -> str:
    """Header bytes to text: UTF-8 or Latin-1, then RFC 2047 words; controls removed."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        problems.append(f"{what}: 8-bit data that is not UTF-8, read as Latin-1")
    if "=?" in text:
        try:
            parts = email.header.decode_header(text)
            out = []
            for chunk, charset in parts:
                if isinstance(chunk, str):
                    out.append(chunk)
                    continue
                try:
                    out.append(chunk.decode(charset or "ascii", "replace"))
                except LookupError:
                    out.append(chunk.decode("utf-8", "replace"))
                    problems.append(f"{what}: unknown charset {charset!r}")
            text = "".join(out)
        except (ValueError, email.errors.HeaderParseError) as e:
            problems.append(f"{what}: bad encoded word ({e})")
    if _CONTROL_RE.search(text):
        text = _CONTROL_RE.sub("\ufffd", text)
        problems.append(f"{what}: control characters replaced")
    text = " ".join(text.split())
    if len(text) > MAX_FIELD_CHARS:
        text = text[:MAX_FIELD_CHARS]
        problems.append(f"{what}: cut to {MAX_FIELD_CHARS} characters")
    return text


def parse_headers(raw: bytes) -> Headers:
    """The stored fields of a ``HEADER.FIELDS`` block; never raises."""
    fields, problems = split_fields(raw)
    h = Headers(problems=problems)
    if not fields:
        h.problems.append("no From, Subject, Message-ID or Date header")
        return h
    if "subject" in fields:
        h.subject = decode_value(fields["subject"], "Subject", h.problems)
    if "from" in fields:
        decoded = decode_value(fields["from"], "From", h.problems)
        name, addr = email.utils.parseaddr(decoded)
        if addr and "@" in addr:
            h.sender = f"{name} <{addr}>" if name else addr
        else:
            h.sender = decoded or None
            h.problems.append("From: no address found")
    if "message-id" in fields:
        mid = decode_value(fields["message-id"], "Message-ID", h.problems)
        h.message_id = mid.split()[0] if mid else None
    if "date" in fields:
        text = decode_value(fields["date"], "Date", h.problems)
        try:
            h.date = email.utils.parsedate_to_datetime(text).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            h.problems.append(f"Date: unreadable {text[:60]!r}")
    return h


def provider_id(folder: str, uidvalidity: int, uid: int) -> str:
    """Stable per-mailbox message id: a UID is only meaningful with its folder and UIDVALIDITY."""
    return f"{folder}:{uidvalidity}:{uid}"


def record_from_fetch(
    item: FetchItem, folder: str, uidvalidity: int, max_header_bytes: int
) -> MessageRecord:
    """A record from a FETCH item that has a UID; unreadable parts go into ``parse_error``."""
    uid = item.uid
    if uid is None:
        raise ParseError("FETCH item without a UID")
    problems: list[str] = []
    rec = MessageRecord(provider_id=provider_id(folder, uidvalidity, uid), folder=folder)
    try:
        rec.flags = flags_of(item.attrs.get("FLAGS"))
    except ParseError as e:
        problems.append(str(e))
    size = item.attrs.get("RFC822.SIZE")
    if isinstance(size, str) and size.isdigit():
        rec.size = int(size)
    else:
        problems.append(f"RFC822.SIZE missing or not a number: {size!r}")
    raw = item.body()
    if raw is None:
        problems.append("no header data returned")
        headers = Headers()
    else:
        headers = parse_headers(raw)
        problems.extend(headers.problems)
        if len(raw) >= max_header_bytes:
            problems.append(f"headers cut at {max_header_bytes} bytes")
    rec.subject, rec.sender, rec.internet_message_id = (
        headers.subject,
        headers.sender,
        headers.message_id,
    )
    if "INTERNALDATE" in item.attrs:
        try:
            rec.received_at = parse_internaldate(item.attrs["INTERNALDATE"])
        except ParseError as e:
            problems.append(str(e))
    if rec.received_at is None:
        rec.received_at = headers.date
    rec.parse_error = "; ".join(problems) if problems else None
    return rec

"""Seeded generation of test messages, well-formed and deliberately broken."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

from loadtest.dovecot.maildir import MaildirMessage

_WORDS = (
    "invoice", "meeting", "report", "quarterly", "update", "lunch", "review", "draft",
    "budget", "travel", "offer", "schedule", "project", "release", "notes", "holiday",
    "photos", "contract", "agenda", "feedback", "reminder",
)  # fmt: skip
_NAMES = ("Alice Martin", "Bob Chen", "Chloé Dubois", "Dmitri Ivanov", "Eva Novak", "Farid Haddad")


def subject_for(index: int, rng: random.Random) -> str:
    """Subjects carry the message index so tests can match UIDs back to what they wrote."""
    return f"Message {index:06d} {rng.choice(_WORDS)} {rng.choice(_WORDS)}"


def generate_message(
    rng: random.Random,
    index: int,
    received_at: float,
    *,
    size: int = 2048,
    domain: str = "example.test",
) -> MaildirMessage:
    """One plain-text message of roughly ``size`` bytes with random system flags."""
    name = rng.choice(_NAMES)
    local = name.split()[0].lower()
    date = format_datetime(datetime.fromtimestamp(received_at - rng.randint(1, 600), UTC))
    headers = (
        f"From: {name} <{local}@{domain}>\r\n"
        f"To: user@{domain}\r\n"
        f"Subject: {subject_for(index, rng)}\r\n"
        f"Date: {date}\r\n"
        f"Message-ID: <m{index}.{rng.getrandbits(32):08x}@{domain}>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
    ).encode()
    body_len = max(16, size - len(headers))
    line = b" ".join(w.encode() for w in rng.choices(_WORDS, k=12)) + b"\r\n"
    body = (line * (body_len // len(line) + 1))[:body_len]
    flags: set[str] = set()
    if rng.random() < 0.7:
        flags.add("\\Seen")
    if rng.random() < 0.05:
        flags.add("\\Flagged")
    if rng.random() < 0.1:
        flags.add("\\Answered")
    return MaildirMessage(headers + body, received_at, frozenset(flags))


def generate_mailbox(
    rng: random.Random,
    count: int,
    *,
    start: float,
    end: float,
    size_median: int = 4096,
    size_sigma: float = 1.0,
    size_cap: int = 200_000,
    first_index: int = 0,
) -> Iterator[MaildirMessage]:
    """``count`` messages with arrival times spread over [start, end) in order and
    lognormal sizes (median, sigma), capped."""
    if count < 0 or end < start:
        raise ValueError("count must be >= 0 and end >= start")
    step = (end - start) / max(count, 1)
    for i in range(count):
        size = min(size_cap, max(300, int(rng.lognormvariate(math.log(size_median), size_sigma))))
        yield generate_message(rng, first_index + i, start + i * step, size=size)


def malformed_messages(received_at: float) -> dict[str, MaildirMessage]:
    """Messages a real mailbox eventually contains, keyed by what is wrong with them."""
    big_body = b"x" * 76 + b"\r\n"
    return {
        "broken-mime": MaildirMessage(
            b"From: Broken <broken@example.test>\r\n"
            b"Subject: broken mime\r\n"
            b"Message-ID: <broken@example.test>\r\n"
            b'Content-Type: multipart/mixed; boundary="never-closed\r\n'
            b"\r\n--never-closed\r\nContent-Type: text/plain\r\n\r\nbody without end\r\n",
            received_at,
        ),
        "8bit-headers": MaildirMessage(
            "From: Jürgen Größe <jg@example.test>\r\n".encode("latin-1")
            + "Subject: Grüße aus Köln – 8bit\r\n".encode()
            + b"Message-ID: <8bit@example.test>\r\n"
            + b"Subject-Extra: \xff\xfe\x00garbage\r\n\r\nbody\r\n",
            received_at,
            frozenset({"\\Seen"}),
        ),
        "encoded-words": MaildirMessage(
            b"From: =?utf-8?q?Ren=C3=A9e?= <renee@example.test>\r\n"
            b"Subject: =?utf-8?b?w6l0w6k=?= and =?bogus-charset?q?x?= =?utf-8?q?broken\r\n"
            b"Message-ID: <ew@example.test>\r\n\r\nbody\r\n",
            received_at,
        ),
        "no-headers": MaildirMessage(b"\r\njust a body, no header at all\r\n", received_at),
        "garbage-header-lines": MaildirMessage(
            b"this is not a header\r\n: empty name\r\nSubject no colon\r\n\r\nbody\r\n",
            received_at,
        ),
        "huge-subject": MaildirMessage(
            b"From: big@example.test\r\nSubject: " + b"long " * 40_000 + b"\r\n"
            b"Message-ID: <hugesubject@example.test>\r\n\r\nbody\r\n",
            received_at,
        ),
        "large": MaildirMessage(
            b"From: Large <large@example.test>\r\nSubject: a 12 MB message\r\n"
            b"Message-ID: <large@example.test>\r\nContent-Type: text/plain\r\n\r\n"
            + big_body
            * (12 * 1024 * 1024 // len(big_body)),
            received_at,
        ),
        "bad-date": MaildirMessage(
            b"From: d@example.test\r\nSubject: bad date\r\nDate: yesterday-ish\r\n"
            b"Message-ID: <baddate@example.test>\r\n\r\nbody\r\n",
            received_at,
        ),
    }

"""Deterministic, lazily derived mailbox content.

A mailbox of n messages stores nothing per message at creation: every attribute of message
``idx`` (folder, unread, thread, date, sender, subject, size) is a pure function of the
mailbox seed and ``idx``, computed when asked. Only later changes are stored (see
``state.py``). Sizes of populated mailboxes are drawn from a seeded ``random.Random``.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from loadtest.mock_providers.config import ConstantSize, EmpiricalSize, LognormalSize

MASK64 = (1 << 64) - 1

# Folder codes shared by both providers; Gmail sees them as system labels.
INBOX, SENT, DRAFTS, DELETED, ARCHIVE, JUNK = range(6)
FOLDER_NAMES: tuple[str, ...] = (
    "inbox",
    "sentitems",
    "drafts",
    "deleteditems",
    "archive",
    "junkemail",
)
FOLDER_DISPLAY: tuple[str, ...] = (
    "Inbox",
    "Sent Items",
    "Drafts",
    "Deleted Items",
    "Archive",
    "Junk Email",
)
# Archived Gmail mail carries no system label (it is simply not in INBOX).
GMAIL_FOLDER_LABEL: tuple[str | None, ...] = ("INBOX", "SENT", "DRAFT", "TRASH", None, "SPAM")
GMAIL_FOLDER_ALIASES: dict[str, int] = {
    **{name: code for code, name in enumerate(FOLDER_NAMES)},
    **{lab.lower(): code for code, lab in enumerate(GMAIL_FOLDER_LABEL) if lab},
    "sent": SENT,
    "trash": DELETED,
    "spam": JUNK,
}
# Per mille of the initial messages per folder: mostly inbox and sent, as in real mailboxes.
_FOLDER_CUMULATIVE = (720, 920, 935, 950, 990, 1000)

# Initial messages are spread one per hour (plus jitter) from this instant on.
BASE_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HOUR_MS = 3_600_000

_FIRST = (
    "Ada", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Kira", "Luca", "Maya", "Nils", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara",
)  # fmt: skip
_LAST = (
    "Adams", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito",
    "Jensen", "Kowalski", "Lopez", "Moreau", "Novak", "Olsen", "Petrov", "Rossi", "Silva",
)  # fmt: skip
_DOMAINS = ("example.org", "example.net", "mail.example.com", "corp.example")
_WORDS = (
    "quarterly", "report", "meeting", "invoice", "update", "project", "review", "draft",
    "schedule", "budget", "release", "notes", "lunch", "offer", "travel", "contract",
    "feedback", "design", "launch", "reminder", "question", "summary", "plan", "team",
)  # fmt: skip


def mix64(x: int) -> int:
    """SplitMix64 finaliser: a fast, well-spread 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts, identical across runs and platforms."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def draw_size(dist: ConstantSize | LognormalSize | EmpiricalSize, rng: random.Random) -> int:
    """One mailbox size from ``dist``, capped at its ``max``."""
    if isinstance(dist, ConstantSize):
        value = dist.value
    elif isinstance(dist, LognormalSize):
        value = round(rng.lognormvariate(math.log(dist.median), dist.sigma))
    else:
        value = rng.choice(dist.values)
    return max(0, min(value, dist.max))


def message_hash(seed: int, idx: int) -> int:
    """The 64 random bits every derived attribute of message ``idx`` comes from."""
    return mix64(seed ^ mix64(idx))


def initial_folder(h: int) -> int:
    """Folder of an initial message from its hash."""
    pm = (h & 0xFFFF) * 1000 >> 16
    for code, bound in enumerate(_FOLDER_CUMULATIVE):
        if pm < bound:
            return code
    return JUNK


def initial_unread(h: int, folder: int) -> bool:
    """About a third of inbox and junk mail starts unread; sent mail and drafts are read."""
    return folder in (INBOX, JUNK) and ((h >> 16) & 0xFF) < 85


def thread_root(seed: int, idx: int) -> int:
    """Index of the first message of ``idx``'s thread: threads live within blocks of four
    consecutive messages, so the root is found in at most three steps."""
    start = idx - (idx & 3)
    for j in range(idx, start, -1):
        if (message_hash(seed, j) >> 24) & 3 == 0:
            return j
    return start


def initial_date_ms(h: int, idx: int) -> int:
    """Receive time of an initial message: strictly increasing with ``idx``."""
    return BASE_EPOCH_MS + idx * HOUR_MS + ((h >> 26) % HOUR_MS)


@dataclass(frozen=True, slots=True)
class Content:
    """The descriptive fields of one message, derived on demand."""

    sender_name: str
    sender_address: str
    subject: str
    preview: str
    size: int
    has_attachments: bool
    importance: str


def content(seed: int, idx: int, owner: str, folder: int) -> Content:
    """Sender, subject and the like of message ``idx``; sent mail and drafts come from
    the owner."""
    h = message_hash(seed, idx)
    h2 = mix64(h)
    first = _FIRST[h2 % len(_FIRST)]
    last = _LAST[(h2 >> 8) % len(_LAST)]
    if folder in (SENT, DRAFTS):
        name, address = owner.split("@", 1)[0], owner
    else:
        name = f"{first} {last}"
        address = f"{first.lower()}.{last.lower()}@{_DOMAINS[(h2 >> 16) % len(_DOMAINS)]}"
    words = [_WORDS[(h2 >> (20 + 5 * i)) % len(_WORDS)] for i in range(4)]
    subject = f"{words[0].capitalize()} {words[1]} {words[2]} #{idx}"
    preview = f"Hi, about the {words[1]} {words[3]}: see the notes below. Regards, {first}"
    size = 1_500 + (h2 >> 40) % 80_000
    attach = (h2 >> 60) < 2  # 2 in 16
    imp_bits = (h2 >> 34) & 0x3F
    importance = "high" if imp_bits < 2 else "low" if imp_bits < 3 else "normal"
    return Content(name, address, subject, preview, size, attach, importance)


_CATEGORIES = ("CATEGORY_PERSONAL", "CATEGORY_UPDATES", "CATEGORY_PROMOTIONS")
_EXTRA_LABELS: tuple[tuple[str, ...], ...] = (
    *((c,) for c in _CATEGORIES),
    *(("IMPORTANT", c) for c in _CATEGORIES),
)


def gmail_extra_labels(seed: int, idx: int, folder: int) -> tuple[str, ...]:
    """Category (and sometimes IMPORTANT) labels of an inbox message; none elsewhere."""
    if folder != INBOX:
        return ()
    h2 = mix64(message_hash(seed, idx))
    important = 3 if (h2 >> 46) & 3 == 0 else 0
    return _EXTRA_LABELS[important + (h2 >> 44) % 3]

"""IMAP UID sets (``1:5,7,9:12``): parsing, building and chunking.

The sync cursor stores a folder's known UIDs in this form: real mailboxes have long runs
of consecutive UIDs, so a folder of 100,000 messages with a few hundred deletions fits in
a few kilobytes, and the same string can be sent to the server as it is.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

# A cursor listing more UIDs than this is treated as corrupt rather than expanded.
MAX_EXPANDED = 20_000_000
# Above every valid UID (they are 32-bit), so a bisect lands after all ranges starting at uid.
_UID_CEILING = 2**32


def parse_uid_ranges(text: str) -> list[tuple[int, int]]:
    """Inclusive (first, last) ranges of a sequence set without ``*``, sorted and merged;
    ``ValueError`` names the offending part."""
    raw: list[tuple[int, int]] = []
    text = text.strip()
    if not text:
        return []
    for part in text.split(","):
        lo_s, sep, hi_s = part.partition(":")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if sep else lo
        except ValueError:
            raise ValueError(f"UID set part {part!r} is not a number or range") from None
        if lo < 1 or hi < 1:
            raise ValueError(f"UID set part {part!r}: UIDs start at 1")
        raw.append((min(lo, hi), max(lo, hi)))
    raw.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in raw:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


def parse_uid_set(text: str) -> list[int]:
    """Sorted distinct UIDs of a sequence set without ``*``; ``ValueError`` names the part."""
    ranges = parse_uid_ranges(text)
    if sum(hi - lo + 1 for lo, hi in ranges) > MAX_EXPANDED:
        raise ValueError(f"UID set lists more than {MAX_EXPANDED} UIDs")
    return [uid for lo, hi in ranges for uid in range(lo, hi + 1)]


def in_ranges(ranges: list[tuple[int, int]], uid: int) -> bool:
    """Whether ``uid`` lies in sorted, merged ``ranges``."""
    i = bisect.bisect_right(ranges, (uid, _UID_CEILING)) - 1
    return i >= 0 and ranges[i][0] <= uid <= ranges[i][1]


def uid_ranges(uids: Iterable[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive UIDs as inclusive (first, last) pairs."""
    ranges: list[tuple[int, int]] = []
    for uid in sorted(set(uids)):
        if ranges and uid == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], uid)
        else:
            ranges.append((uid, uid))
    return ranges


def format_uid_set(uids: Iterable[int]) -> str:
    """The shortest sequence-set text of ``uids`` (empty string for none)."""
    return ",".join(f"{a}" if a == b else f"{a}:{b}" for a, b in uid_ranges(uids))


def chunks(uids: list[int], size: int) -> Iterator[list[int]]:
    """Consecutive slices of at most ``size`` UIDs."""
    if size < 1:
        raise ValueError("chunk size must be >= 1")
    for i in range(0, len(uids), size):
        yield uids[i : i + size]

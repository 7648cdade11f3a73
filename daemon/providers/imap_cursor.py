"""The IMAP cursor: per folder UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and the known UIDs
(docs/imap.md, "Cursor")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from daemon.providers.imap_uidset import format_uid_set, parse_uid_set

log = structlog.get_logger(__name__)

CURSOR_VERSION = 1


@dataclass(slots=True)
class FolderState:
    """A folder's part of the cursor."""

    uidvalidity: int
    uidnext: int
    highestmodseq: int | None
    uids: list[int]
    # UID -> flags, kept only when the server lacks CONDSTORE (to diff flag scans).
    flags: dict[int, tuple[str, ...]] | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form: UIDs and the flag map as compact UID sets."""
        out: dict[str, Any] = {
            "uidvalidity": self.uidvalidity,
            "uidnext": self.uidnext,
            "highestmodseq": self.highestmodseq,
            "uids": format_uid_set(self.uids),
        }
        if self.flags is not None:
            groups: dict[str, list[int]] = {}
            for uid, flags in self.flags.items():
                groups.setdefault(" ".join(flags), []).append(uid)
            out["flags"] = {k: format_uid_set(v) for k, v in sorted(groups.items())}
        return out

    @classmethod
    def from_json(cls, data: Any) -> FolderState:
        """Parse a cursor entry; ``ValueError`` names the bad field."""
        if not isinstance(data, dict):
            raise ValueError("folder entry is not an object")
        try:
            uv, un, hm = data["uidvalidity"], data["uidnext"], data.get("highestmodseq")
        except KeyError as e:
            raise ValueError(f"folder entry lacks {e.args[0]}") from None
        if not (
            isinstance(uv, int) and isinstance(un, int) and (hm is None or isinstance(hm, int))
        ):
            raise ValueError("uidvalidity/uidnext/highestmodseq must be integers")
        uids = parse_uid_set(str(data.get("uids", "")))
        flags = None
        if isinstance(data.get("flags"), dict):
            flags = {}
            for key, uidset in data["flags"].items():
                value = tuple(str(key).split())
                flags.update(dict.fromkeys(parse_uid_set(str(uidset)), value))
        return cls(uv, un, hm, uids, flags)


def parse_cursor(cursor: Mapping[str, Any] | None) -> dict[str, FolderState] | None:
    """Folder states of a stored cursor; None if absent or unreadable (then: full sync)."""
    if not cursor:
        return None
    if cursor.get("v") != CURSOR_VERSION or not isinstance(cursor.get("folders"), dict):
        log.warning("imap.cursor_unreadable", reason="unknown version or no folders")
        return None
    out: dict[str, FolderState] = {}
    for name, entry in cursor["folders"].items():
        try:
            out[name] = FolderState.from_json(entry)
        except ValueError as e:
            log.warning("imap.cursor_unreadable", folder=name, reason=str(e))
    return out

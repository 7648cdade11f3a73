"""Writing messages straight into Maildir++ folders, as Dovecot expects to find them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# Maildir info letters of the system flags, in the ASCII order Maildir requires.
FLAG_LETTERS: dict[str, str] = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}


@dataclass(frozen=True, slots=True)
class MaildirMessage:
    """A raw RFC 5322 message, its arrival time (becomes INTERNALDATE) and system flags."""

    data: bytes
    received_at: float
    flags: frozenset[str] = field(default_factory=frozenset)


def folder_dir(maildir: Path, folder: str) -> Path:
    """Directory of ``folder`` in a Maildir++ tree (INBOX is the root, others ``.Name``)."""
    if folder.upper() == "INBOX":
        return maildir
    if not folder.isascii() or any(c in folder for c in "/\\\0") or folder.startswith("."):
        raise ValueError(f"folder {folder!r}: only plain ASCII names are supported here")
    return maildir / f".{folder}"


def maildir_name(msg: MaildirMessage, unique: str) -> str:
    """File name with size hints (S= bytes on disk, W= size with CRLF line ends) and flags."""
    for flag in msg.flags:
        if flag not in FLAG_LETTERS:
            raise ValueError(f"flag {flag!r}: only system flags {sorted(FLAG_LETTERS)} can be set")
    letters = "".join(sorted(FLAG_LETTERS[f] for f in msg.flags))
    size = len(msg.data)
    vsize = size + msg.data.count(b"\n") - msg.data.count(b"\r\n")
    return f"{int(msg.received_at)}.{unique}.mailsync,S={size},W={vsize}:2,{letters}"


def write_maildir_message(cur: Path, msg: MaildirMessage, unique: str) -> Path:
    """Write one message into ``cur`` with its mtime set to the arrival time."""
    path = cur / maildir_name(msg, unique)
    with path.open("xb") as f:
        f.write(msg.data)
    os.utime(path, (msg.received_at, msg.received_at))
    return path


def rebuild_index(folder: Path, uidvalidity: int, first_uid: int) -> None:
    """Give a Maildir folder a new UIDVALIDITY and new UIDs, as an index rebuild does.

    ``dovecot-uidlist`` is rewritten (version 3 format: ``3 V<uidvalidity> N<next uid> ...``
    then ``<uid> [fields] :<file name>`` per message) with the messages renumbered from
    ``first_uid``, and the transaction log is emptied. Sessions opened afterwards see the
    new UIDVALIDITY; a Dovecot 2.3 session that had the folder open before keeps answering
    SELECT of it with ``NO [SERVERBUG]`` (its cached index no longer matches the log).
    """
    uidlist = folder / "dovecot-uidlist"
    header, *lines = uidlist.read_text().splitlines()
    fields = [f for f in header.split()[1:] if f[0] not in "VN"]
    body = [f"{first_uid + i} {line.split(' ', 1)[1]}" for i, line in enumerate(lines)]
    head = " ".join(["3", f"V{uidvalidity}", f"N{first_uid + len(body)}", *fields])
    uidlist.write_text("\n".join([head, *body]) + "\n")
    with (folder / "dovecot.index.log").open("r+b") as log:
        log.truncate(0)

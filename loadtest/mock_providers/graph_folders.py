"""The folder hierarchy of a Graph mailbox and the ``mailFolders`` / ``childFolders`` lists.

Every mailbox starts with the six well-known folders directly under the invisible root
(``msgfolderroot``); the control API adds user folders at any depth, hidden folders and
search folders, and deletes folders. Folder codes index the mailbox's per-folder change
logs; codes are never reused, so a deleted folder's id stays unknown for good.

Lists follow Graph: one level at a time (the root's children, or one folder's
``childFolders``), hidden folders only with ``includeHiddenFolders=true``, ordered by
display name, ``$top`` items per page (default 10) and ``@odata.nextLink`` with ``$skip``
while more follow.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from loadtest.mock_providers import synth

DEFAULT_PAGE = 10
MAX_PAGE = 1000
SEARCH_TYPE = "#microsoft.graph.mailSearchFolder"


@dataclass(slots=True)
class MockFolder:
    """One folder; ``parent`` is a folder code, or None directly under the root."""

    code: int
    name: str
    parent: int | None
    well_known: str | None = None
    hidden: bool = False
    search: bool = False
    deleted: bool = False


class FolderError(ValueError):
    """A folder operation the mock refuses; the message says why (for a 422)."""


class FolderTree:
    """The folders of one mailbox, addressed by code, id or well-known name."""

    __slots__ = ("folders", "prefix")

    def __init__(self, prefix: int) -> None:
        self.prefix = prefix
        self.folders = [
            MockFolder(code, synth.FOLDER_DISPLAY[code], None, synth.FOLDER_NAMES[code])
            for code in range(len(synth.FOLDER_NAMES))
        ]

    # --- naming --------------------------------------------------------------------------

    def folder_id(self, code: int) -> str:
        """Opaque id of a folder (stable, never reused)."""
        return f"AQMkAD{self.prefix:08x}AAAEM{code:04d}AAAA"

    def root_id(self) -> str:
        """Id of the invisible root (``msgfolderroot``)."""
        return f"AQMkAD{self.prefix:08x}AAAEMROOTAAAA"

    def resolve(self, ref: str) -> int | None:
        """Code of a live folder from a well-known name (any case) or an id; None if unknown.

        ``msgfolderroot`` (or the root's id) is not a folder that holds messages: None.
        """
        lowered = ref.lower()
        for f in self.folders:
            if f.deleted:
                continue
            if f.well_known == lowered or ref == self.folder_id(f.code):
                return f.code
        return None

    def path(self, code: int) -> str:
        """Display names from the top down, joined by ``/``."""
        names: list[str] = []
        cur: int | None = code
        while cur is not None:
            f = self.folders[cur]
            names.append(f.name)
            cur = f.parent
        return "/".join(reversed(names))

    def label(self, code: int) -> str:
        """The well-known name, or the path of a user folder (for the control API)."""
        f = self.folders[code]
        return f.well_known or self.path(code)

    # --- structure -----------------------------------------------------------------------

    def live(self) -> Iterator[MockFolder]:
        """Every live folder, parents before their children."""

        def walk(parent: int | None) -> Iterator[MockFolder]:
            for f in self.children(parent, include_hidden=True):
                yield f
                yield from walk(f.code)

        return walk(None)

    def children(self, parent: int | None, include_hidden: bool) -> list[MockFolder]:
        """Live folders directly under ``parent``, ordered by display name as Graph lists them."""
        out = [
            f
            for f in self.folders
            if not f.deleted and f.parent == parent and (include_hidden or not f.hidden)
        ]
        out.sort(key=lambda f: (f.name.casefold(), f.code))
        return out

    def child_count(self, code: int) -> int:
        """Live direct children of a folder, hidden ones included (Graph's childFolderCount)."""
        return sum(1 for f in self.folders if not f.deleted and f.parent == code)

    def create(self, name: str, parent: int | None, hidden: bool, search: bool) -> MockFolder:
        """A new folder under ``parent`` (None: the root); sibling names must differ."""
        if parent is not None and self.folders[parent].search:
            raise FolderError("a search folder cannot hold folders")
        taken = {f.name.casefold() for f in self.children(parent, include_hidden=True)}
        if name.casefold() in taken:
            raise FolderError(f"a folder named {name!r} exists there already")
        folder = MockFolder(len(self.folders), name, parent, None, hidden, search)
        self.folders.append(folder)
        return folder

    def subtree(self, code: int) -> list[int]:
        """``code`` and every live folder below it."""
        out = [code]
        for f in self.children(code, include_hidden=True):
            out += self.subtree(f.code)
        return out

    def remove(self, code: int) -> list[int]:
        """Mark a user folder and its descendants deleted; returns their codes."""
        if self.folders[code].well_known is not None:
            raise FolderError("well-known folders cannot be deleted")
        gone = self.subtree(code)
        for c in gone:
            self.folders[c].deleted = True
        return gone

    def holds_mail(self, code: int) -> bool:
        """Whether messages can be delivered or moved into the folder."""
        return not self.folders[code].search


def folder_json(tree: FolderTree, f: MockFolder, total: int, unread: int) -> dict[str, Any]:
    """The Graph ``mailFolder`` (or ``mailSearchFolder``) resource."""
    out: dict[str, Any] = {}
    if f.search:
        out["@odata.type"] = SEARCH_TYPE
    out.update(
        {
            "id": tree.folder_id(f.code),
            "displayName": f.name,
            "parentFolderId": tree.root_id() if f.parent is None else tree.folder_id(f.parent),
            "childFolderCount": tree.child_count(f.code),
            "unreadItemCount": unread,
            "totalItemCount": total,
            "isHidden": f.hidden,
        }
    )
    if f.search:
        out.update({"isSupported": True, "filterQuery": f"contains(subject, '{f.name}')"})
    return out


def parse_paging(query: dict[str, str]) -> tuple[int, int, bool] | str:
    """(``$top``, ``$skip``, includeHiddenFolders) of a folder list, or the problem as text."""
    try:
        top = int(query.get("$top") or DEFAULT_PAGE)
        skip = int(query.get("$skip") or 0)
    except ValueError:
        return "$top and $skip must be integers"
    if not 1 <= top <= MAX_PAGE:
        return f"$top must be between 1 and {MAX_PAGE}"
    if skip < 0:
        return "$skip must not be negative"
    hidden = (query.get("includeHiddenFolders") or "false").lower()
    if hidden not in ("true", "false"):
        return "includeHiddenFolders must be true or false"
    return top, skip, hidden == "true"


def list_page(
    tree: FolderTree,
    parent: int | None,
    link: str,
    query: dict[str, str],
    counts: tuple[list[int], list[int]],
    context: str,
) -> dict[str, Any] | str:
    """One page of a folder list (the root's children or ``parent``'s), or the problem."""
    paging = parse_paging(query)
    if isinstance(paging, str):
        return paging
    top, skip, hidden = paging
    total, unread = counts
    level = tree.children(parent, include_hidden=hidden)
    value = [folder_json(tree, f, total[f.code], unread[f.code]) for f in level[skip : skip + top]]
    body: dict[str, Any] = {"@odata.context": context, "value": value}
    if skip + top < len(level):
        extra = "&includeHiddenFolders=true" if hidden else ""
        body["@odata.nextLink"] = f"{link}?$top={top}&$skip={skip + top}{extra}"
    return body

"""How the Gmail provider reads history records (pure: no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.errors import BadResponse
from daemon.providers.gmail import GmailProvider


def _apply(*records: dict[str, Any]) -> tuple[list[str], list[str], dict[str, tuple[str, ...]]]:
    to_fetch: dict[str, None] = {}
    deleted: dict[str, None] = {}
    labels: dict[str, tuple[str, ...]] = {}
    for record in records:
        GmailProvider._apply_history(record, to_fetch, deleted, labels)
    return list(to_fetch), list(deleted), labels


def test_a_label_record_without_label_ids_leaves_the_message_no_labels() -> None:
    ref = {"id": "m1", "threadId": "m1"}
    _, _, labels = _apply(
        {"id": "5", "labelsRemoved": [{"message": {**ref, "labelIds": ["INBOX"]},
                                       "labelIds": ["UNREAD"]}]},
        {"id": "9", "labelsRemoved": [{"message": ref, "labelIds": ["INBOX"]}]},
    )  # fmt: skip
    assert labels == {"m1": ()}
    # And the other way round: the latest record's labels win.
    _, _, labels = _apply(
        {"id": "5", "labelsRemoved": [{"message": ref, "labelIds": ["INBOX"]}]},
        {"id": "7", "labelsAdded": [{"message": {**ref, "labelIds": ["STARRED"]},
                                     "labelIds": ["STARRED"]}]},
    )  # fmt: skip
    assert labels == {"m1": ("STARRED",)}


def test_label_ids_that_are_not_a_list_are_a_bad_response_naming_the_field() -> None:
    record = {
        "id": "5",
        "labelsAdded": [{"message": {"id": "m1", "labelIds": "INBOX"}, "labelIds": ["INBOX"]}],
    }
    with pytest.raises(BadResponse, match="labelsAdded: field 'labelIds' has type str"):
        _apply(record)

"""Mailbox model: lazy derivation, stored changes and memory per mailbox."""

from __future__ import annotations

import random
import tracemalloc

from loadtest.mock_providers import synth
from loadtest.mock_providers.gmail_state import GmailMailbox
from loadtest.mock_providers.graph_state import DeltaToken, GraphMailbox, token_from_cursor
from loadtest.mock_providers.registry import Registry
from loadtest.mock_providers.state import Retention


def test_derived_attributes_are_stable_and_dates_increase() -> None:
    a = GmailMailbox(0, "a@x.y", seed=42, size=300)
    b = GmailMailbox(1, "b@x.y", seed=42, size=300)
    assert [a.labels(i) for i in range(300)] == [b.labels(i) for i in range(300)]
    dates = [a.view(i).created_ms for i in range(300)]
    assert dates == sorted(dates) and len(set(dates)) == 300
    folders = [a.folder(i) for i in range(300)]
    assert folders.count(synth.INBOX) > 150 and folders.count(synth.SENT) > 30
    for i in range(300):
        root = synth.thread_root(42, i)
        assert root <= i and synth.thread_root(42, root) == root


def test_ids_round_trip_and_do_not_cross_mailboxes() -> None:
    g = GmailMailbox(0, "a@x.y", seed=1, size=10)
    m = GraphMailbox(1, "b@x.y", seed=2, size=10)
    for i in (0, 9):
        assert g.parse_id(g.message_id(i)) == i
        assert m.parse_id(m.message_id(i)) == i
    assert GmailMailbox(2, "c@x.y", seed=3, size=10).parse_id(g.message_id(1)) is None
    assert m.parse_id(g.message_id(1)) is None


def test_unchanged_messages_store_nothing() -> None:
    g = GmailMailbox(0, "a@x.y", seed=5, size=1000)
    assert [g.view(i).unread for i in range(1000)]
    assert g.states == {} and g.deleted == set()
    g.set_read([1, 2, 3], read=True, now_ms=1)
    assert len(g.states) <= 3


def test_graph_changes_collapse_per_message() -> None:
    m = GraphMailbox(0, "a@x.y", seed=5, size=20)
    inbox = [i for i in range(20) if m.folder(i) == synth.INBOX]
    start = m.seq
    m.set_read(inbox[:1], read=m.unread(inbox[0]), now_ms=1)
    m.set_read(inbox[:1], read=not m.unread(inbox[0]), now_ms=2)
    (new,) = m.deliver(1, synth.INBOX, now_ms=3)
    m.delete([inbox[1]], now_ms=4)
    assert m.changes(synth.INBOX, start, m.seq) == [
        (inbox[0], False),
        (new, False),
        (inbox[1], True),
    ]


def test_graph_retention_raises_the_floor() -> None:
    m = GraphMailbox(0, "a@x.y", seed=5, size=5)
    token = DeltaToken("D", 0, m.generation, synth.INBOX, m.seq, 0, 0, 0, "")
    assert m.token_problem(token) is None
    m.deliver(4, synth.INBOX, now_ms=1)
    m.trim(now_ms=2, retention=Retention(max_records=2))
    assert m.token_problem(token) is not None
    assert token_from_cursor("http://h/v1.0/x?$deltatoken=" + token.encode()) == token


def test_ten_thousand_mailboxes_fit_in_little_memory() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        reg = Registry(random.Random(1))
        for i in range(10_000):
            provider = "gmail" if i % 2 else "graph"
            reg.add(provider, f"{provider}-{i}@x.y", size=2_000, seed=i)
        per_mailbox = (tracemalloc.get_traced_memory()[0] - before) / 10_000
    finally:
        tracemalloc.stop()
    assert per_mailbox < 3_000, per_mailbox


def test_changed_messages_cost_under_300_bytes_each_with_their_history() -> None:
    g = GmailMailbox(0, "a@x.y", seed=5, size=20_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        g.set_read(range(0, 20_000, 4), read=True, now_ms=1)
        g.set_read(range(1, 20_000, 4), read=False, now_ms=1)
        changed = len(g.states)
        per_message = (tracemalloc.get_traced_memory()[0] - before) / changed
    finally:
        tracemalloc.stop()
    # State plus one history record per change.
    assert changed > 1_000 and per_message < 300, per_message

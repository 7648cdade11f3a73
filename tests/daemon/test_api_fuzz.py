"""No request of any shape is answered 5xx (issue 13), against a daemon's API on the real
PostgreSQL and Redis.

Two property-based tests, seeded (``derandomize``) and bounded: schemathesis generates
requests from the app's OpenAPI schema, valid and invalid (ids out of range, wrong types,
missing and extra fields); a Hypothesis strategy per route adds what a schema cannot express:
raw path segments and query strings, and JSON bodies with NUL characters, lone surrogates,
NaN and Infinity, huge integers and deep nesting.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import threading
import time
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import quote

import httpx
import pytest
import redis.asyncio as aioredis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from daemon.api import ApiDeps, create_app
from tests.daemon.harness import API_TOKEN, daemon_settings, running

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def _spec() -> dict[str, Any]:
    """The OpenAPI schema: building the app (never served here) needs only the token."""
    nothing = cast(Any, None)
    deps = ApiDeps(nothing, nothing, nothing, nothing, nothing, nothing, nothing, time.time, "t")
    return create_app(deps).openapi()


SCHEMA = schemathesis.openapi.from_dict(_spec())
CASES = st.one_of(
    SCHEMA.as_strategy(GenerationMode.POSITIVE), SCHEMA.as_strategy(GenerationMode.NEGATIVE)
)
BOUNDED = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def served(
    pg_dsn: str, redis_url: str, run_id: str, redis_session: aioredis.Redis
) -> Iterator[str]:
    """A daemon (no workers, no scheduler loop) serving its API from a thread of its own,
    with one tenant and one mailbox; yields the base URL. What the requests made is deleted
    at the end (``redis_session`` removes the run's Redis keys)."""
    s = daemon_settings(
        pg_dsn,
        redis_url,
        f"mailsync-test-{run_id}-fuzz",
        "http://127.0.0.1:9",
        workers_enabled=False,
        scheduler_enabled=False,
    )
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop
        try:
            async with running(s) as d:
                ready.set()
                await stop.wait()
                assert d.pool is not None
                await d.pool.execute(
                    "TRUNCATE tenants, mailboxes, messages, sync_runs RESTART IDENTITY CASCADE"
                )
        except BaseException as exc:
            state["error"] = exc
            ready.set()
            raise

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(60) and "error" not in state, state.get("error")
    base = f"http://127.0.0.1:{s.api_port}"
    with httpx.Client(base_url=base, headers=AUTH) as c:
        tenant = c.post("/tenants", json={"name": f"fuzz-{time.time_ns()}"}).json()["id"]
        box = {"provider": "gmail", "address": "f@z.test", "credentials": {"refresh_token": "r"}}
        assert c.post(f"/tenants/{tenant}/mailboxes", json=box).status_code == 201
    yield base
    state["loop"].call_soon_threadsafe(state["stop"].set)
    thread.join(30)


@BOUNDED
@given(case=CASES)
def test_schema_generated_requests_are_never_5xx(served: str, case: Any) -> None:
    response = case.call(base_url=served, headers=AUTH, timeout=30)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])


_INTS = st.integers() | st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, 0, 1, 2])
# Everything a JSON document can hold, and what PostgreSQL or a JSON answer cannot.
_TEXT = st.text(max_size=30) | st.sampled_from(
    ["\x00", "a\x00b", "\ud800", "x\udfffy", "A@B.test", "a@b", "", " " * 5, "127.0.0.1"]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | _INTS
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([math.nan, math.inf, -math.inf])
    | _TEXT
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
# What broke the API before issue 13, drawn half of the time.
_NASTY = (
    st.sampled_from(
        [
            math.nan,
            math.inf,
            -math.inf,
            "\x00",
            "a\ud800",
            2**63,
            10**40,
            "x" * 400,
            {"\x00": 1},
            {"\udc00": "v"},
            [[[[[[[[[[1]]]]]]]]]],
            {"a": [math.nan]},
        ]
    )
    | _JSON
)
_NASTY_TEXT = st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "x" * 400, "", "A@B.C"])
_NASTY_NUMBER = st.sampled_from([math.nan, math.inf, -math.inf, 2**63, -(2**63) - 1, 0, -1, 1.5])
_GMAIL = {
    "provider": "gmail",
    "address": "g@z.test",
    "credentials": {"refresh_token": "r"},
    "config": {"folders": ["INBOX"]},
    "sync_interval_s": 60,
}
_IMAP = {
    "provider": "imap",
    "address": "i@z.test",
    "credentials": {"password": "p"},
    "config": {"host": "127.0.0.1", "port": 993, "username": "u", "folders": ["INBOX"]},
}
# A body each route accepts; the test breaks one part of it.
_VALID: dict[str, list[Any]] = {
    "/tenants": [{"name": "t", "sync_interval_s": 60}],
    "/tenants/bulk": [{"tenants": [{"name": "b", "sync_interval_s": 60, "mailboxes": [_GMAIL]}]}],
    "/tenants/{}/mailboxes": [_GMAIL, _IMAP],
    "/tenants/{}/mailboxes/bulk": [{"mailboxes": [_GMAIL, _IMAP]}],
    "/mailboxes/{}/credentials": [{"credentials": {"refresh_token": "r"}, "reactivate": True}],
}
ROUTES = [
    ("POST", "/tenants"),
    ("POST", "/tenants/bulk"),
    ("GET", "/tenants/{}"),
    ("DELETE", "/tenants/{}"),
    ("POST", "/tenants/{}/mailboxes"),
    ("POST", "/tenants/{}/mailboxes/bulk"),
    ("POST", "/tenants/{}/pause"),
    ("POST", "/tenants/{}/resume"),
    ("GET", "/mailboxes"),
    ("GET", "/mailboxes/{}"),
    ("GET", "/mailboxes/{}/runs"),
    ("DELETE", "/mailboxes/{}"),
    ("PUT", "/mailboxes/{}/credentials"),
    ("POST", "/mailboxes/{}/sync"),
]


def _quoted(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


_ID = _INTS.map(str) | _TEXT.map(_quoted)
_QUERY = st.dictionaries(
    st.sampled_from(["tenant_id", "after_id", "limit", "x"]), _INTS.map(str) | _TEXT, max_size=3
)


def _places(doc: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where a value can be replaced or a key added: every node of ``doc``."""
    yield at
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _places(v, (*at, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _places(v, (*at, i))


def _broken(doc: Any, data: st.DataObject) -> Any:
    """``doc`` with one value replaced, or one key added, by something nasty."""
    doc = copy.deepcopy(doc)
    at = data.draw(st.sampled_from(list(_places(doc))))
    if not at:
        return data.draw(_NASTY)
    parent = doc
    for step in at[:-1]:
        parent = parent[step]
    old = parent[at[-1]]
    # Half of the time something nasty of the same kind: a string for a string.
    if isinstance(old, str):
        nasty = data.draw(_NASTY_TEXT | _NASTY)
    elif isinstance(old, int | float):
        nasty = data.draw(_NASTY_NUMBER | _NASTY)
    else:
        nasty = data.draw(_NASTY)
    if isinstance(old, dict) and data.draw(st.booleans()):
        parent[at[-1]][data.draw(_TEXT)] = nasty
    else:
        parent[at[-1]] = nasty
    return doc


@pytest.mark.parametrize("route", ROUTES, ids=" ".join)
@settings(BOUNDED, max_examples=50)
@given(ident=_ID, query=_QUERY, data=st.data())
def test_raw_bodies_paths_and_queries_are_never_5xx(
    served: str, route: tuple[str, str], ident: str, query: dict[str, str], data: st.DataObject
) -> None:
    method, template = route
    valid = _VALID.get(template)
    body = _broken(data.draw(st.sampled_from(valid)), data) if valid else data.draw(_JSON)
    # json.dumps writes NaN and Infinity, and escapes lone surrogates as \udXXX: what a
    # careless client sends and Python's parser accepts.
    content = json.dumps(body).encode()
    qs = "&".join(f"{k}={_quoted(v)}" for k, v in query.items())
    with httpx.Client(base_url=served, headers=AUTH, timeout=30) as c:
        r = c.request(
            method,
            f"{template.format(ident)}?{qs}",
            content=content,
            headers={"content-type": "application/json"},
        )
    assert r.status_code < 500, (method, template, ident, query, content[:300], r.text[:300])

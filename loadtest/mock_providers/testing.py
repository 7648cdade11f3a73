"""Helpers for tests that drive the mock in-process: a stepped clock and a ready client.

async with MockHarness.start(MockConfig(seed=3)) as mock:
    creds = await mock.create("gmail", messages=50)
    headers = await mock.login(creds)
    await mock.client.get("/gmail/v1/users/me/profile", headers=headers)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette

from loadtest.mock_providers.app import create_app
from loadtest.mock_providers.config import MockConfig
from loadtest.mock_providers.service import MockService

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class ManualClock:
    """Epoch seconds that only move when told to."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class RecordingSleep:
    """Records the delays asked for and returns at once, moving ``clock`` on by each one so
    waits (latency, a client's backoff) pass in simulated time."""

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.delays: list[float] = []
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.clock is not None and seconds > 0:
            self.clock.advance(seconds)


@dataclass
class MockHarness:
    """The app, a client bound to it over ASGI, and shortcuts for the control API."""

    app: Starlette
    client: httpx.AsyncClient
    clock: ManualClock
    sleep: RecordingSleep

    @classmethod
    @asynccontextmanager
    async def start(
        cls, config: MockConfig | None = None, base_url: str = "http://mock.test"
    ) -> AsyncIterator[MockHarness]:
        """A fresh mock on a manual clock; its sleep advances that clock."""
        clock = ManualClock()
        sleep = RecordingSleep(clock)
        app = create_app(config, clock=clock, sleep=sleep)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield cls(app, client, clock, sleep)

    @property
    def svc(self) -> MockService:
        """The service behind the app."""
        svc: MockService = self.app.state.mock
        return svc

    async def create(
        self, provider: str, messages: int = 20, seed: int = 1, address: str | None = None
    ) -> dict[str, Any]:
        """Register a mailbox; returns its credentials."""
        address = address or f"{provider}-{messages}-{seed}@test.example"
        r = await self.client.post(
            "/_mock/mailboxes",
            json={"provider": provider, "address": address, "messages": messages, "seed": seed},
        )
        _check(r, 201)
        out: dict[str, Any] = r.json()
        return out

    async def token(self, creds: dict[str, Any]) -> str:
        """A fresh access token from the provider's token endpoint."""
        form = {
            "grant_type": "refresh_token",
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
            "refresh_token": creds["refresh_token"],
        }
        path = "/token" if creds["provider"] == "gmail" else "/common/oauth2/v2.0/token"
        r = await self.client.post(path, data=form)
        _check(r, 200)
        token: str = r.json()["access_token"]
        return token

    async def login(self, creds: dict[str, Any]) -> dict[str, str]:
        """Authorization headers for the mailbox."""
        return {"Authorization": f"Bearer {await self.token(creds)}"}

    async def control(self, address: str, action: str, body: dict[str, Any] | None = None) -> Any:
        """POST a mailbox control action (deliver, flags, labels, delete, expire-cursor, revoke)."""
        r = await self.client.post(f"/_mock/mailboxes/{address}/{action}", json=body or {})
        _check(r, 200)
        return r.json()

    async def create_folder(
        self, address: str, name: str, parent: str | None = None, **flags: bool
    ) -> dict[str, Any]:
        """A new Graph folder (``hidden``, ``search`` flags); returns it as the control API
        shows it (``id``, ``path``, ...)."""
        body: dict[str, Any] = {"name": name, "parent": parent, **flags}
        r = await self.client.post(f"/_mock/mailboxes/{address}/folders", json=body)
        _check(r, 201)
        out: dict[str, Any] = r.json()
        return out

    async def delete_folder(self, address: str, folder: str) -> dict[str, Any]:
        """Delete a Graph user folder (id, well-known name or path) with its contents."""
        r = await self.client.delete(f"/_mock/mailboxes/{address}/folders/{folder}")
        _check(r, 200)
        out: dict[str, Any] = r.json()
        return out

    async def folders(self, address: str) -> list[dict[str, Any]]:
        """Every live folder of a Graph mailbox, parents first."""
        r = await self.client.get(f"/_mock/mailboxes/{address}/folders")
        _check(r, 200)
        out: list[dict[str, Any]] = r.json()["folders"]
        return out

    async def config(self, patch: dict[str, Any]) -> Any:
        """PUT a partial config."""
        r = await self.client.put("/_mock/config", json=patch)
        _check(r, 200)
        return r.json()

    async def listing(self, address: str) -> list[dict[str, Any]]:
        """Every current message of a mailbox."""
        r = await self.client.get(f"/_mock/mailboxes/{address}/messages")
        _check(r, 200)
        out: list[dict[str, Any]] = r.json()["messages"]
        return out

    async def stats(self) -> dict[str, Any]:
        """The stats document."""
        r = await self.client.get("/_mock/stats")
        _check(r, 200)
        out: dict[str, Any] = r.json()
        return out


def _check(r: httpx.Response, status: int) -> None:
    if r.status_code != status:
        raise AssertionError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")

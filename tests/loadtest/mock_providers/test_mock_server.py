"""The mock behind a real uvicorn server on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from loadtest.mock_providers.app import create_app
from loadtest.mock_providers.config import MockConfig
from loadtest.mock_providers.server import uvicorn_config


@pytest.fixture
def served() -> Iterator[str]:
    """Base URL of a live mock serving from its own thread and event loop, as it would from
    its own process; the socket is bound first, so there is no port race."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(MockConfig(seed=2))
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, "warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


async def test_live_server_speaks_gmail_and_graph_with_absolute_links(served: str) -> None:
    async with httpx.AsyncClient(base_url=served, timeout=10) as client:
        creds = (await client.post("/_mock/populate", json={"gmail": 1, "graph": 1})).json()
        gmail, graph = creds
        form = {k: gmail[k] for k in ("client_id", "client_secret", "refresh_token")}
        tok = (await client.post("/token", data={**form, "grant_type": "refresh_token"})).json()
        headers = {"Authorization": f"Bearer {tok['access_token']}"}
        r = await client.get(
            "/gmail/v1/users/me/messages", headers=headers, params={"maxResults": 5}
        )
        assert r.status_code == 200 and len(r.json()["messages"]) <= 5
        form = {k: graph[k] for k in ("client_id", "client_secret", "refresh_token")}
        tok = (
            await client.post(
                "/tenant-id/oauth2/v2.0/token", data={**form, "grant_type": "refresh_token"}
            )
        ).json()
        headers = {
            "Authorization": f"Bearer {tok['access_token']}",
            "Prefer": "odata.maxpagesize=3",
        }
        url = "/v1.0/me/mailFolders/inbox/messages/delta"
        seen = 0
        while True:
            body = (await client.get(url, headers=headers)).json()
            seen += len(body["value"])
            url = body.get("@odata.nextLink") or ""
            if not url:
                assert body["@odata.deltaLink"].startswith(f"{served}/v1.0/")
                break
            assert url.startswith(f"{served}/v1.0/")
        summary = (await client.get(f"/_mock/mailboxes/{graph['address']}")).json()
        assert seen == summary["folders"]["inbox"]["total"]

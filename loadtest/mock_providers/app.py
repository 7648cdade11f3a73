"""The ASGI application: Google and Microsoft OAuth, Gmail API, Graph mail and control."""

from __future__ import annotations

import asyncio
import time

from starlette.applications import Starlette

from loadtest.mock_providers import (
    control,
    control_folders,
    gmail,
    gmail_batch,
    graph,
    graph_batch,
    oauth,
)
from loadtest.mock_providers.config import MockConfig
from loadtest.mock_providers.service import Clock, MockService, Sleep


def create_app(
    config: MockConfig | None = None,
    *,
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
) -> Starlette:
    """A fresh mock with no mailboxes; its ``MockService`` is ``app.state.mock``.

    ``clock`` (epoch seconds) and ``sleep`` are injectable so tests can step time.
    """
    svc = MockService(config, clock=clock, sleep=sleep)
    routes = [
        *oauth.routes(svc),
        *gmail.routes(svc),
        *gmail_batch.routes(svc),
        *graph.routes(svc),
        *graph_batch.routes(svc),
        *control.routes(svc),
        *control_folders.routes(svc),
    ]
    app = Starlette(routes=routes)
    app.state.mock = svc
    return app

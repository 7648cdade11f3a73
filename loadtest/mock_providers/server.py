"""Serving the mock with uvicorn (uvloop and httptools when installed, no access log)."""

from __future__ import annotations

import importlib.util

import structlog
import uvicorn
from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]  # types-tqdm may be absent

from loadtest.mock_providers.app import create_app
from loadtest.mock_providers.config import MockConfig, PopulateSpec

log = structlog.get_logger("mock_providers")


def uvicorn_config(app: object, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    """The server settings the mock runs with: fastest loop and parser available."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return uvicorn.Config(
        app,  # type: ignore[arg-type]  # uvicorn types the app loosely as ASGIApplication
        host=host,
        port=port,
        loop=loop,
        http=http,
        access_log=False,
        log_level=log_level,
        # One process: state lives in memory, so more workers would split the mailboxes.
        workers=1,
    )


def run(
    host: str = "127.0.0.1",
    port: int = 8025,
    config: MockConfig | None = None,
    populate: PopulateSpec | None = None,
    log_level: str = "info",
) -> None:
    """Start the mock and serve until interrupted."""
    app = create_app(config)
    svc = app.state.mock
    if populate is not None and populate.gmail + populate.graph:
        total = populate.gmail + populate.graph
        with tqdm(total=total, desc="populating mailboxes", disable=total < 1_000) as bar:
            svc.populate(populate, progress=bar.update)
    log.info(
        "mock_providers.start",
        host=host,
        port=port,
        mailboxes=len(svc.registry.mailboxes),
        seed=svc.config.seed,
        quota_preset=svc.config.quotas.preset,
    )
    uvicorn.Server(uvicorn_config(app, host, port, log_level)).run()

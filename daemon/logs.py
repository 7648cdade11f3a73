"""Structured logging: the one place that configures structlog's global state."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEY = re.compile(r"(pass(word)?|secret|token|authorization|credential|api_key)", re.I)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]+@")


def mask_secrets(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace values of secret-looking keys and passwords inside URLs."""
    for key, value in list(event.items()):
        if _SECRET_KEY.search(key) and value not in (None, ""):
            event[key] = "***"
        elif isinstance(value, str) and "://" in value:
            event[key] = _URL_PASSWORD.sub(r"\1***@", value)
    return event


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is now; a captured stream may be swapped or closed."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "info", fmt: str = "json") -> None:
    """Route structlog and stdlib logging to stderr as JSON lines (or console text)."""
    lvl = getattr(logging, level.upper())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]  # a TextIO duck
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(lvl, logging.WARNING), stream=sys.stderr, force=True)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger bound to a component name."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(component=name)
    return logger

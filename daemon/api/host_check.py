"""The IMAP host policy applied to registration bodies: a refused server is a 422."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from fastapi.exceptions import RequestValidationError

from daemon.api.models import MailboxIn
from daemon.providers.imap_hosts import HostPolicy, HostRefused

# Distinct IMAP hosts of one request resolved at once.
_RESOLVING = 16


async def check_imap_hosts(
    policy: HostPolicy, boxes: Sequence[tuple[tuple[str | int, ...], MailboxIn]]
) -> None:
    """422 naming ``config.host`` of every IMAP mailbox whose server the host policy refuses
    (or that cannot be resolved); ``boxes`` are (location in the body, mailbox)."""
    servers = {(m.config["host"], m.config["port"]) for _, m in boxes if m.provider == "imap"}
    if not servers:
        return
    limit = asyncio.Semaphore(_RESOLVING)

    async def verdict(host: str, port: int) -> HostRefused | None:
        async with limit:
            try:
                await policy.resolve(host, port)
            except HostRefused as exc:
                return exc
            return None

    keys = sorted(servers)
    found = await asyncio.gather(*(verdict(h, p) for h, p in keys))
    refused = {k: v for k, v in zip(keys, found, strict=True) if v is not None}
    errors = [
        {
            "type": f"imap_host_policy.{why.rule}",
            "loc": ("body", *where, "config", "host"),
            "msg": f"IMAP host policy: {why}",
        }
        for where, m in boxes
        if m.provider == "imap"
        and (why := refused.get((m.config["host"], m.config["port"]))) is not None
    ]
    if errors:
        raise RequestValidationError(errors)

"""Measures the two ways of filling a Dovecot mailbox, and a full sync of the result.

    python -m loadtest.dovecot.seed_benchmark --messages 3000

Prints seconds for (a) writing Maildir files into ``cur/`` plus Dovecot indexing them on
the first SELECT, (b) IMAP APPEND of the same messages over one connection, and (c) a
full and an (empty) incremental ``ImapProvider`` sync through the delay proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import time

from daemon.policy import SyncKind
from daemon.providers.base import Credentials, MailboxContext
from daemon.providers.imap import ImapProvider, ImapSettings
from daemon.providers.imap_client import ImapConnection
from daemon.providers.imap_hosts import LOOPBACK
from daemon.ratelimit import CountingGate
from loadtest.dovecot.delay_proxy import Delay, DelayProxy
from loadtest.dovecot.imap_admin import ImapAdmin
from loadtest.dovecot.messages import generate_mailbox
from loadtest.dovecot.server import DovecotServer, scratch_dir


async def _noop_save(_c: Credentials) -> None:
    return None


async def run(messages: int, seed: int, memory: bool, delay_ms: float) -> dict[str, float]:
    """Seconds per method; a temporary Dovecot is started and removed."""
    base = scratch_dir("mailsync-dovecot-bench-", prefer_memory=memory)
    server = DovecotServer(base)
    out: dict[str, float] = {}
    try:
        server.start()
        msgs = list(generate_mailbox(random.Random(seed), messages, start=1.7e9, end=1.71e9))
        a = server.add_user("maildir", "pw")
        t0 = time.perf_counter()
        server.write_messages(a, "INBOX", msgs)
        out["maildir_write_s"] = time.perf_counter() - t0
        conn = await ImapConnection.connect(
            server.host, server.port, ssl_context=None, timeout_s=60, now=0
        )
        await conn.login("maildir", "pw")
        await conn.select('"INBOX"')  # Dovecot indexes the new files here
        out["maildir_write_and_index_s"] = time.perf_counter() - t0
        await conn.close()

        b = server.add_user("append", "pw")
        admin = await ImapAdmin.login(server.host, server.port, b.name, "pw")
        t0 = time.perf_counter()
        for m in msgs:
            await admin.append("INBOX", m.data, sorted(m.flags))
        out["imap_append_s"] = time.perf_counter() - t0
        await admin.close()

        delay = Delay("constant", delay_ms / 1000)
        async with DelayProxy(server.host, server.port, up=delay, down=delay) as proxy:
            provider = ImapProvider(ImapSettings(allowed_networks=LOOPBACK))
            ctx = MailboxContext(
                mailbox_id=1,
                address="maildir@example.test",
                credentials=Credentials({"password": "pw"}),
                config={
                    "host": server.host,
                    "port": proxy.port,
                    "tls": "none",
                    "username": "maildir",
                },
                gate=CountingGate(),
                save_credentials=_noop_save,
            )
            t0 = time.perf_counter()
            res = await provider.sync(ctx, SyncKind.FULL, None)
            out["full_sync_s"] = time.perf_counter() - t0
            out["full_sync_calls"] = res.api_calls
            t0 = time.perf_counter()
            await provider.sync(ctx, SyncKind.INCREMENTAL, res.cursor)
            out["incremental_sync_s"] = time.perf_counter() - t0
            out["bytes_from_server"] = proxy.stats.bytes_down
            await provider.aclose()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return out


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--disk", action="store_true", help="use the temp dir, not /dev/shm")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="latency each way for syncs")
    args = ap.parse_args()
    result = asyncio.run(run(args.messages, args.seed, not args.disk, args.delay_ms))
    print(f"{'storage':28s} {'disk' if args.disk else 'tmpfs'}")
    for key, value in result.items():
        print(f"{key:28s} {value:10.3f}")
    rate = args.messages / result["imap_append_s"]
    print(f"{'append_messages_per_s':28s} {rate:10.0f}")
    rate = args.messages / result["maildir_write_and_index_s"]
    print(f"{'maildir_messages_per_s':28s} {rate:10.0f}")


if __name__ == "__main__":
    main()

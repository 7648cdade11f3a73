"""Cost of one incremental sync in each change-detection mode (QRESYNC, CONDSTORE, plain).

    python -m loadtest.dovecot.mode_benchmark --messages 10000 [--delay-ms 0]

For each mode a user gets ``--messages`` messages; after a full sync, another client
appends 5 messages, changes flags on 20 and expunges 3; the incremental sync that follows
is timed and its round trips counted. Plain mode is Outlook's (no CONDSTORE/QRESYNC).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import time

from daemon.policy import SyncKind
from daemon.providers.base import Credentials, MailboxContext
from daemon.providers.imap import ImapProvider, ImapSettings
from daemon.providers.imap_hosts import LOOPBACK
from daemon.ratelimit import CountingGate
from loadtest.dovecot.delay_proxy import Delay, DelayProxy
from loadtest.dovecot.imap_admin import ImapAdmin
from loadtest.dovecot.messages import generate_mailbox, generate_message
from loadtest.dovecot.server import DovecotServer, scratch_dir

MODES = {
    "qresync": frozenset[str](),
    "condstore": frozenset({"QRESYNC"}),
    "plain": frozenset({"QRESYNC", "CONDSTORE"}),
}


async def _noop_save(_c: Credentials) -> None:
    return None


async def run(messages: int, seed: int, delay_ms: float) -> list[dict[str, object]]:
    """One row per mode: sync time, round trips by command, changes found, cursor bytes."""
    base = scratch_dir("mailsync-dovecot-bench-")
    server = DovecotServer(base)
    rows: list[dict[str, object]] = []
    try:
        server.start()
        delay = Delay("constant", delay_ms / 1000)
        async with DelayProxy(server.host, server.port, up=delay, down=delay) as proxy:
            for mode, ignored in MODES.items():
                user = server.add_user(f"bench-{mode}", "pw")
                rng = random.Random(seed)
                server.write_messages(
                    user, "INBOX", generate_mailbox(rng, messages, start=1.7e9, end=1.71e9)
                )
                provider = ImapProvider(
                    ImapSettings(allowed_networks=LOOPBACK, ignore_capabilities=ignored)
                )

                def ctx(name: str = user.name) -> MailboxContext:
                    return MailboxContext(
                        mailbox_id=1,
                        address=f"{name}@example.test",
                        credentials=Credentials({"password": "pw"}),
                        config={
                            "host": server.host,
                            "port": proxy.port,
                            "tls": "none",
                            "username": name,
                        },
                        gate=CountingGate(),
                        save_credentials=_noop_save,
                    )

                full = await provider.sync(ctx(), SyncKind.FULL, None)
                async with await ImapAdmin.login(server.host, server.port, user.name, "pw") as a:
                    for i in range(5):
                        msg = generate_message(rng, messages + i, 1.72e9)
                        await a.append("INBOX", msg.data)
                    await a.store("INBOX", range(100, 120), "+FLAGS", ["$Bench"])
                    await a.expunge("INBOX", [5, messages // 2, messages - 1])
                c = ctx()
                t0 = time.perf_counter()
                inc = await provider.sync(c, SyncKind.INCREMENTAL, full.cursor)
                elapsed = time.perf_counter() - t0
                gate = c.gate
                assert isinstance(gate, CountingGate)
                rows.append(
                    {
                        "mode": mode,
                        "incremental_ms": round(elapsed * 1000, 1),
                        "round_trips": dict(gate.by_method),
                        "new/flags/deleted": (
                            len(inc.upserts),
                            len(inc.flag_updates),
                            len(inc.deletes),
                        ),
                        "cursor_bytes": len(json.dumps(inc.cursor)),
                    }
                )
                await provider.aclose()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return rows


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--delay-ms", type=float, default=0.0, help="latency each way")
    args = ap.parse_args()
    if args.messages < 200:
        ap.error("--messages must be >= 200 (flags change on UIDs 100-119)")
    for row in asyncio.run(run(args.messages, args.seed, args.delay_ms)):
        print("  ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()

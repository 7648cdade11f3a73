"""Throughput of the mock providers on the incremental endpoints.

Starts the mock with uvicorn in a subprocess on a free loopback port, populates mailboxes
through the control API, gives each one pending change, then drives ``history.list``
(Gmail) and ``messages/delta`` on a deltaLink (Graph) with an httpx client at a fixed
concurrency and zero mock latency. Prints requests/s, server CPU ms per request (from the
server process's CPU times) and client-side latency percentiles.

    .venv/bin/python benchmarks/mock_providers_throughput.py --requests 5000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, seed: int) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "loadtest.mock_providers.cli", "run",
        "--host", "127.0.0.1", "--port", str(port), "--seed", str(seed),
        "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"mock server exited with {proc.returncode}")
        try:
            if (await client.get("/_mock/stats")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit("mock server did not come up within 15 s")


async def gather_limited(
    jobs: Sequence[Callable[[], Awaitable[Any]]], concurrency: int, desc: str
) -> list[Any]:
    """Run ``jobs`` with at most ``concurrency`` in flight, showing progress."""
    results: list[Any] = [None] * len(jobs)
    it = iter(enumerate(jobs))
    bar = tqdm(total=len(jobs), desc=desc, leave=False)

    async def worker() -> None:
        for i, job in it:
            results[i] = await job()
            bar.update(1)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    bar.close()
    return results


@dataclass
class Figures:
    name: str
    requests: int
    seconds: float
    cpu_s: float
    latencies: list[float]
    non_200: int

    def row(self) -> str:
        lat = sorted(self.latencies)
        p50 = lat[len(lat) // 2] * 1000
        p99 = lat[int(len(lat) * 0.99) - 1] * 1000
        return (
            f"{self.name:<22} {self.requests:>8} {self.requests / self.seconds:>10.0f} "
            f"{self.cpu_s * 1000 / self.requests:>12.3f} {p50:>8.2f} {p99:>8.2f} {self.non_200:>6}"
        )


async def measure(
    name: str,
    client: httpx.AsyncClient,
    proc: psutil.Process,
    requests: list[tuple[str, dict[str, str]]],
    concurrency: int,
) -> Figures:
    latencies: list[float] = []
    bad = 0

    def job(url: str, headers: dict[str, str]) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            nonlocal bad
            t = time.perf_counter()
            r = await client.get(url, headers=headers)
            latencies.append(time.perf_counter() - t)
            if r.status_code != 200:
                bad += 1

        return run

    jobs = [job(url, h) for url, h in requests]
    cpu0 = proc.cpu_times()
    t0 = time.perf_counter()
    await gather_limited(jobs, concurrency, name)
    seconds = time.perf_counter() - t0
    cpu1 = proc.cpu_times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return Figures(name, len(jobs), seconds, cpu, latencies, bad)


async def main(args: argparse.Namespace) -> None:
    port = free_port()
    server = start_server(port, args.seed)
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    try:
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            await wait_ready(client, server)
            proc = psutil.Process(server.pid)
            body = {"gmail": args.gmail, "graph": args.graph, "seed": args.seed}
            creds = (await client.post("/_mock/populate", json=body, timeout=120)).json()

            def token_job(c: dict[str, str]) -> Callable[[], Awaitable[str]]:
                async def run() -> str:
                    path = "/token" if c["provider"] == "gmail" else "/common/oauth2/v2.0/token"
                    form = {k: c[k] for k in ("client_id", "client_secret", "refresh_token")}
                    r = await client.post(path, data={**form, "grant_type": "refresh_token"})
                    return str(r.json()["access_token"])

                return run

            tokens = await gather_limited([token_job(c) for c in creds], args.concurrency, "tokens")
            auth = [{"Authorization": f"Bearer {t}"} for t in tokens]

            def cursor_job(c: dict[str, str], h: dict[str, str]) -> Callable[[], Awaitable[str]]:
                async def run() -> str:
                    if c["provider"] == "gmail":
                        r = await client.get("/gmail/v1/users/me/profile", headers=h)
                        return str(r.json()["historyId"])
                    url = "/v1.0/me/mailFolders/inbox/messages/delta"
                    hdr = {**h, "Prefer": "odata.maxpagesize=1000"}
                    while True:
                        page = (await client.get(url, headers=hdr)).json()
                        if "@odata.deltaLink" in page:
                            return str(page["@odata.deltaLink"])
                        url = page["@odata.nextLink"]

                return run

            cursors = await gather_limited(
                [cursor_job(c, h) for c, h in zip(creds, auth, strict=True)],
                args.concurrency,
                "cursors",
            )

            def deliver_job(c: dict[str, str]) -> Callable[[], Awaitable[None]]:
                async def run() -> None:
                    await client.post(f"/_mock/mailboxes/{c['address']}/deliver", json={"count": 1})

                return run

            await gather_limited([deliver_job(c) for c in creds], args.concurrency, "deliver")
            await client.post("/_mock/stats/reset")

            gmail = [(c, h, k) for c, h, k in zip(creds, auth, cursors, strict=True)
                     if c["provider"] == "gmail"]  # fmt: skip
            graph = [(c, h, k) for c, h, k in zip(creds, auth, cursors, strict=True)
                     if c["provider"] == "graph"]  # fmt: skip
            history_reqs = [
                (f"/gmail/v1/users/me/history?startHistoryId={k}&maxResults=500", h)
                for c, h, k in itertools.islice(itertools.cycle(gmail), args.requests)
            ]
            delta_reqs = [
                (k, {**h, "Prefer": 'IdType="ImmutableId", odata.maxpagesize=100'})
                for c, h, k in itertools.islice(itertools.cycle(graph), args.requests)
            ]
            results = [
                await measure("gmail history.list", client, proc, history_reqs, args.concurrency),
                await measure("graph messages.delta", client, proc, delta_reqs, args.concurrency),
            ]
            stats = (await client.get("/_mock/stats")).json()
            rss_mb = proc.memory_info().rss / 2**20
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    print(
        f"mock providers, {args.gmail} gmail + {args.graph} graph mailboxes, "
        f"concurrency {args.concurrency}, zero latency, one pending change per mailbox"
    )
    print(f"{'endpoint':<22} {'requests':>8} {'req/s':>10} {'cpu ms/req':>12} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'!=200':>6}")  # fmt: skip
    for f in results:
        print(f.row())
    print(f"server RSS after the run: {rss_mb:.0f} MiB; throttled: {stats['throttled_total']}")
    print(f"mean client latency: {statistics.fmean(results[0].latencies) * 1000:.2f} ms (history), "
          f"{statistics.fmean(results[1].latencies) * 1000:.2f} ms (delta)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gmail", type=int, default=500)
    parser.add_argument("--graph", type=int, default=500)
    parser.add_argument("--requests", type=int, default=5_000, help="per endpoint")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    asyncio.run(main(parser.parse_args()))

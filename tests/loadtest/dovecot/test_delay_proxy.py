"""The TCP delay proxy: added latency, order, seeded distributions, byte counts."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from loadtest.dovecot.delay_proxy import Delay, DelayProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _round_trip(port: int, payload: bytes) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.perf_counter()
    writer.write(payload)
    await writer.drain()
    got = await reader.readexactly(len(payload))
    elapsed = time.perf_counter() - t0
    assert got == payload
    writer.close()
    return elapsed


async def test_adds_the_configured_latency_each_way() -> None:
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = echo.sockets[0].getsockname()[1]
    try:
        direct = min([await _round_trip(port, b"ping\r\n") for _ in range(3)])
        async with DelayProxy(
            "127.0.0.1", port, up=Delay("constant", 0.03), down=Delay("constant", 0.05)
        ) as proxy:
            proxied = [await _round_trip(proxy.port, b"ping\r\n") for _ in range(3)]
        added = min(proxied) - direct
        assert 0.08 <= added < 0.08 + 0.05, added
        assert proxy.stats.connections == 3
        assert proxy.stats.bytes_up == proxy.stats.bytes_down == 18
    finally:
        echo.close()
        await echo.wait_closed()


async def test_random_delays_never_reorder_chunks() -> None:
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = echo.sockets[0].getsockname()[1]
    try:
        async with DelayProxy(
            "127.0.0.1", port, up=Delay("exponential", 0.005), down=Delay("uniform", 0, 0.01)
        ) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            sent = b""
            for i in range(200):
                chunk = f"{i:04d}|".encode()
                sent += chunk
                writer.write(chunk)
                await writer.drain()
                if i % 7 == 0:
                    await asyncio.sleep(0.001)
            got = await asyncio.wait_for(reader.readexactly(len(sent)), 10)
            writer.close()
        assert got == sent
    finally:
        echo.close()
        await echo.wait_closed()


def test_delay_specs_and_seeded_samples() -> None:
    assert Delay.parse("50ms") == Delay("constant", 0.05)
    assert Delay.parse("0.2") == Delay("constant", 0.2)
    assert Delay.parse("uniform:10ms:80ms") == Delay("uniform", 0.01, 0.08)
    assert Delay.parse("lognormal:30ms:0.6") == Delay("lognormal", 0.03, 0.6)
    with pytest.raises(ValueError, match="takes 2"):
        Delay.parse("uniform:10ms")
    with pytest.raises(ValueError, match="not a number"):
        Delay.parse("fast")
    d = Delay("lognormal", 0.03, 0.5)
    a = [d.sample(random.Random(1)) for _ in range(3)]
    assert a == [d.sample(random.Random(1)) for _ in range(3)]
    samples = sorted(d.sample(r) for r in [random.Random(7)] for _ in range(2001))
    assert samples[1000] == pytest.approx(0.03, rel=0.1)  # the median parameter


async def test_unreachable_target_closes_the_client() -> None:
    async with DelayProxy("127.0.0.1", 1) as proxy:  # nothing listens on port 1
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()

"""The delivery HTTP client against a scripted raw TCP server: framing, keep-alive, stale connections, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from dialguard.outbound_sync.http_client import HttpClient

Script = Callable[[bytes, int], bytes | None]  # (request head + body, request number on the connection)


@asynccontextmanager
async def server(script: Script) -> AsyncIterator[tuple[str, list[bytes], list[int]]]:
    """A server that answers each request with script(request, n); None closes the connection unanswered,
    and so does an answer that says Connection: close, once sent."""
    seen: list[bytes] = []
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + (await reader.readexactly(length) if length else b"")
                seen.append(request)
                answer = script(request, n)
                n += 1
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer.split(b"\r\n\r\n")[0]:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen, connections
    finally:
        srv.close()


def ok(body: bytes = b'{"ok":true}', extra: str = "") -> bytes:
    return f"HTTP/1.1 201 Created\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def test_sends_one_buffer_and_reuses_the_connection() -> None:
    async with server(lambda req, n: ok()) as (url, seen, connections):
        client = HttpClient(limit=2, connect_timeout=1)
        for i in range(3):
            r = await client.request(
                "POST", f"{url}/outbound01/projects/Sales%20DK/dnc", {"Idempotency-Key": str(i)}, b"{}"
            )
            assert (r.status, r.body) == (201, b'{"ok":true}')
        await client.close()
    assert len(connections) == 1
    first = seen[0].decode()
    assert first.startswith("POST /outbound01/projects/Sales%20DK/dnc HTTP/1.1\r\n")
    assert "Host: 127.0.0.1:" in first
    assert "Idempotency-Key: 0\r\n" in first
    assert first.endswith("Content-Length: 2\r\n\r\n{}")


async def test_chunked_close_delimited_and_truncated_bodies() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    async with server(lambda req, n: chunked) as (url, _, _):
        client = HttpClient(limit=1, connect_timeout=1)
        assert (await client.request("GET", url, {}, None)).body == b"hello world"
        await client.close()

    big = b"x" * 10_000
    async with server(lambda req, n: ok(big)) as (url, _, connections):
        client = HttpClient(limit=1, connect_timeout=1, read_limit=100)
        r = await client.request("PUT", url, {}, b"a")
        assert r.body == b"x" * 100
        await client.request("PUT", url, {}, b"a")  # the rest was drained: the connection is reused
        await client.close()
    assert len(connections) == 1

    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"
    async with server(lambda req, n: closing if n == 0 else None) as (url, _, connections):
        client = HttpClient(limit=1, connect_timeout=1)
        r = await client.request("POST", url, {}, b"")
        assert (r.status, r.body) == (200, b"until the end")
        await client.close()


async def test_a_stale_keep_alive_connection_is_retried_once_on_a_new_one() -> None:
    # The server answers the first request, then drops the connection on the second (an idle timeout).
    async with server(lambda req, n: ok() if n == 0 else None) as (url, seen, connections):
        client = HttpClient(limit=1, connect_timeout=1)
        await client.request("POST", url, {"Idempotency-Key": "a"}, b"1")
        r = await client.request("POST", url, {"Idempotency-Key": "b"}, b"2")
        assert r.status == 201
        await client.close()
    assert len(connections) == 2
    assert [s.endswith(b"2") for s in seen] == [False, True, True]


async def test_failures_are_oserrors_and_bad_input_is_refused() -> None:
    async with server(lambda req, n: None) as (url, _, _):
        client = HttpClient(limit=1, connect_timeout=1)
        with pytest.raises(OSError):
            await client.request("POST", url, {}, b"")
        with pytest.raises(ValueError, match="cannot be sent"):
            await client.request("POST", url, {"X-Evil": "a\r\nInjected: 1"}, b"")
        with pytest.raises(ValueError, match="cannot send"):
            await client.request("POST", "ftp://example.com/x", {}, b"")
        await client.close()
    client = HttpClient(limit=1, connect_timeout=1)
    with pytest.raises(OSError):  # nothing listens there
        await client.request("POST", "http://127.0.0.1:1/x", {}, b"")


async def test_at_most_limit_connections_and_a_timed_out_request_drops_its_own() -> None:
    async with server(lambda req, n: ok()) as (url, _, connections):
        client = HttpClient(limit=2, connect_timeout=1)
        await asyncio.gather(*(client.request("POST", url, {}, b"") for _ in range(10)))
        assert len(connections) <= 2
        await client.close()

    answered: list[int] = []

    def hang_first(req: bytes, n: int) -> bytes:
        answered.append(n)
        return b"" if len(answered) == 1 else ok()  # the first request never gets an answer

    async with server(hang_first) as (url, _, connections):
        client = HttpClient(limit=1, connect_timeout=1)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await client.request("POST", url, {}, b"")
        assert (await client.request("POST", url, {}, b"")).status == 201  # not the hung connection
        await client.close()
    assert len(connections) == 2

"""Pre-encoded read-only RESP exchanges on bare asyncio streams, parsed by hiredis.

Every check sends one small atomic MULTI (see bloom.BloomCache._read_raw). Measured here with
redis-py 8 on loopback, the same bytes and replies cost ~250 µs of client CPU through a pooled
redis-py connection (a health check on checkout, an asyncio timeout and maintenance-notification
handling per reply read) and ~65 µs on a bare stream fed to hiredis' parser, the one redis-py
itself uses. At a dialer's hundreds of single checks a second that was the largest share of a
check's CPU. Only reads come here; every write, script and admin command stays on redis-py.

TLS and other connection classes are not spoken here: `for_client` then returns redis-py's own
pool behind the same `exchange`, so behaviour is the same, only slower.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

_READ_CHUNK = 1 << 16


class Exchanger(Protocol):
    """Sends pre-encoded commands and returns their replies (bytes, ints, lists; errors raised)."""

    async def exchange(self, payload: bytes, replies: int) -> list[Any]: ...

    async def aclose(self) -> None: ...


def for_client(client: Redis, *, max_idle: int = 64) -> Exchanger:
    """A bare-stream pool for the client's server when it is plain TCP or a Unix socket, else redis-py's."""
    pool = client.connection_pool
    if pool.connection_class in (Connection, UnixDomainSocketConnection):
        return StreamPool(pool.connection_kwargs, max_idle=max_idle)
    return RedisPyExchanger(client)


def _command(*parts: bytes | str | int) -> bytes:
    return hiredis.pack_command(parts)  # type: ignore[arg-type,no-any-return]


def _raise_first_error(replies: Sequence[Any]) -> list[Any]:
    """Top-level error replies raise, as redis-py does (errors inside an EXEC array stay values)."""
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return list(replies)


class _Stream:
    """One connection: its own parser, so a reply split across reads is reassembled."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)

    async def exchange(self, payload: bytes, replies: int) -> list[Any]:
        self._writer.write(payload)
        out: list[Any] = []
        parser = self._parser
        while len(out) < replies:
            reply = parser.gets()
            if reply is False:
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    raise RedisConnectionError("connection closed by the server")
                parser.feed(data)
            else:
                out.append(reply)
        return out

    def stale(self) -> bool:
        """The server closed it while idle (restart, timeout): seen without a round trip."""
        return self._reader.at_eof() or self._writer.is_closing()

    def close(self) -> None:
        self._writer.close()


class StreamPool:
    """Idle connections reused LIFO; a connection whose exchange did not finish cleanly is closed, never reused."""

    def __init__(self, kwargs: dict[str, Any], *, max_idle: int) -> None:
        self._host = str(kwargs.get("host", "localhost"))
        self._port = int(kwargs.get("port", 6379))
        self._path: str | None = kwargs.get("path")
        self._db = int(kwargs.get("db") or 0)
        self._username: str | None = kwargs.get("username")
        self._password: str | None = kwargs.get("password")
        self._timeout: float | None = kwargs.get("socket_timeout")
        self._connect_timeout: float | None = kwargs.get("socket_connect_timeout") or self._timeout
        self._max_idle = max_idle
        self._idle: list[_Stream] = []
        self._closed = False

    async def _connect(self) -> _Stream:
        async with asyncio.timeout(self._connect_timeout):
            if self._path:
                reader, writer = await asyncio.open_unix_connection(self._path)
            else:
                reader, writer = await asyncio.open_connection(self._host, self._port)
            stream = _Stream(reader, writer)
            hello: list[bytes] = []
            if self._password is not None:
                creds = (self._username, self._password) if self._username else (self._password,)
                hello.append(_command("AUTH", *creds))
            if self._db:
                hello.append(_command("SELECT", self._db))
            try:
                if hello:
                    _raise_first_error(await stream.exchange(b"".join(hello), len(hello)))
            except BaseException:
                stream.close()
                raise
            return stream

    async def exchange(self, payload: bytes, replies: int) -> list[Any]:
        """Send and read; a pooled connection found dead (server restarted) is replaced once."""
        for attempt in (1, 2):
            stream = self._checkout()
            reused = stream is not None
            if stream is None:
                stream = await self._connect()
            try:
                async with asyncio.timeout(self._timeout):
                    got = await stream.exchange(payload, replies)
            except TimeoutError as exc:
                stream.close()
                raise RedisTimeoutError("timeout reading from the cache") from exc
            except (RedisConnectionError, OSError) as exc:
                stream.close()
                if not reused or attempt == 2:
                    raise RedisConnectionError(f"cache connection lost: {exc!r}") from exc
                self._drop_idle()  # they went down with it: retry on a new connection
                continue
            except BaseException:  # cancelled mid-reply: the stream's position is unknown
                stream.close()
                raise
            if self._closed or len(self._idle) >= self._max_idle:
                stream.close()
            else:
                self._idle.append(stream)
            return _raise_first_error(got)
        raise AssertionError("unreachable")

    def _checkout(self) -> _Stream | None:
        while self._idle:
            stream = self._idle.pop()
            if not stream.stale():
                return stream
            stream.close()
        return None

    def _drop_idle(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def aclose(self) -> None:
        self._closed = True
        self._drop_idle()


class RedisPyExchanger:
    """The same exchange on redis-py's pool (TLS and anything else StreamPool does not speak)."""

    def __init__(self, client: Redis) -> None:
        self._pool = client.connection_pool

    async def exchange(self, payload: bytes, replies: int) -> list[Any]:
        pool = self._pool
        for attempt in (1, 2):
            try:
                conn = await pool.get_connection()  # type: ignore[no-untyped-call]
            except TypeError:  # redis-py < 5.3 wants a command name
                conn = await pool.get_connection("MULTI")  # type: ignore[no-untyped-call]
            try:
                await conn.send_packed_command(payload, check_health=False)
                return [await conn.read_response(disable_decoding=True) for _ in range(replies)]
            except (RedisConnectionError, OSError):
                await conn.disconnect()
                if attempt == 2:
                    raise
            except BaseException:
                await conn.disconnect()
                raise
            finally:
                await pool.release(conn)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """The client's pool belongs to the client; it closes it."""

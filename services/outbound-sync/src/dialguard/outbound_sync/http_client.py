"""A small keep-alive HTTP/1.1 client for delivery: one per target, at most `limit` connections.

Why not httpx or aiohttp: a delivery is one small request and a status code, thousands per second, and those
clients spent 0.3–6 ms of CPU each on it (measured; httpcore retries a failing `import sniffio` per call).
This one writes the request in one buffer and parses the answer with httptools (the parser uvicorn uses),
~10x less. It follows no redirects, keeps only the first `read_limit` bytes of a body (the log needs a
summary), and never reuses a connection whose request failed, timed out or was cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httptools

USER_AGENT = "dialguard-outbound-sync"
MAX_BODY_DRAIN = 1 << 20  # a longer body is not drained for reuse: the connection is closed instead
_PATH_SAFE = "/%:@!$&'()*+,;=-._~?"
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class HttpError(OSError):
    """The exchange failed before a complete response arrived (refused, reset, closed, malformed)."""


@dataclass(frozen=True, slots=True)
class Response:
    """What the log keeps of an answer: status, headers (lower-case names) and the start of the body."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; carries one request at a time."""

    def __init__(self, read_limit: int) -> None:
        self.read_limit = read_limit
        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.used = False
        self._waiter: asyncio.Future[Response] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._headers_done = False

    # asyncio.Protocol
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._headers_done and not self._chunked_or_sized():
                waiter.set_result(self._response())  # a body delimited by the close itself
            else:
                waiter.set_exception(HttpError(f"connection closed before the response: {exc or 'EOF'}"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"malformed response: {exc}"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._headers, self._body, self._size, self._headers_done = {}, [], 0, False

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self._headers[key] = f"{self._headers[key]}, {text}" if key in self._headers else text

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        if self._size < self.read_limit:
            self._body.append(body[: self.read_limit - self._size])
        self._size += len(body)
        if self._size > MAX_BODY_DRAIN:
            self._fail(None)  # enough: answer with what we have and drop the connection

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:
            return  # an interim 1xx: the real answer follows
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(self._response())
        if not self.parser.should_keep_alive():
            self.close()

    # use
    async def exchange(self, data: bytes) -> Response:
        """Send one request and wait for its response."""
        if self.closed:
            raise HttpError("connection closed")
        self.used = True
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        """Drop the connection (idempotent)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _chunked_or_sized(self) -> bool:
        return "content-length" in self._headers or "chunked" in self._headers.get("transfer-encoding", "")

    def _response(self) -> Response:
        return Response(self.parser.get_status_code(), self._headers, b"".join(self._body))

    def _fail(self, error: Exception | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(self._response())
            else:
                waiter.set_exception(error)
        self.close()


class HttpClient:
    """Keep-alive connections to whatever URLs one target uses, at most `limit` at a time."""

    def __init__(self, *, limit: int, connect_timeout: float, read_limit: int = 4096) -> None:
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.read_limit = read_limit
        self._slots = asyncio.Semaphore(limit)
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self.closed = False

    async def request(
        self, method: str, url: str, headers: dict[str, str], content: bytes | None
    ) -> Response:
        """One request; a reused connection the server had already closed is retried once on a new one."""
        scheme, host, port, head = _prepare(method, url, headers, content)
        data = head + (content or b"")
        key = (scheme, host, port)
        async with self._slots:
            conn = self._take_idle(key)
            if conn is not None:
                try:
                    return self._keep(key, conn, await conn.exchange(data))
                except HttpError:
                    conn.close()  # stale keep-alive connection: one fresh try (the Idempotency-Key makes it safe)
                except BaseException:
                    conn.close()
                    raise
            conn = await self._connect(scheme, host, port)
            try:
                return self._keep(key, conn, await conn.exchange(data))
            except BaseException:
                conn.close()
                raise

    async def close(self) -> None:
        """Close every idle connection; requests in flight close theirs when they end."""
        self.closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    def _keep(self, key: tuple[str, str, int], conn: _Connection, response: Response) -> Response:
        if not conn.closed and not self.closed:
            idle = self._idle.setdefault(key, deque())
            idle.append(conn)
            while len(idle) > self.limit:
                idle.popleft().close()
        return response

    async def _connect(self, scheme: str, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self.read_limit),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
                )
        except TimeoutError:
            raise ConnectTimeout(f"connect to {host}:{port} timed out") from None
        return conn


class ConnectTimeout(TimeoutError):
    """No connection within the connect timeout."""


def _prepare(
    method: str, url: str, headers: dict[str, str], content: bytes | None
) -> tuple[str, str, int, bytes]:
    """Scheme, host, port and the request head as bytes; ValueError for a URL or header that cannot be sent."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"cannot send to {url!r}")
    host = parts.hostname
    port = parts.port or (443 if scheme == "https" else 80)
    target = quote(parts.path or "/", safe=_PATH_SAFE) + (
        "?" + quote(parts.query, safe=_PATH_SAFE + "/") if parts.query else ""
    )
    ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    host_header = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    if parts.port is not None:
        host_header += f":{parts.port}"
    lines = [f"{method} {target} HTTP/1.1"]
    own = {k.lower() for k in headers}
    if "host" not in own:
        lines.append(f"Host: {host_header}")
    if "user-agent" not in own:
        lines.append(f"User-Agent: {USER_AGENT}")
    for name, value in headers.items():
        if name.lower() in _OWN_HEADERS - {"host"}:
            continue
        if any(c in name for c in "\r\n:") or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} cannot be sent")
        lines.append(f"{name}: {value}")
    if content is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(content or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return scheme, ascii_host, port, head


async def aclose_quietly(client: HttpClient) -> None:
    """Close, ignoring errors (shutdown paths)."""
    with contextlib.suppress(Exception):
        await client.close()

"""A fake Outbound (Enreach) Do Not Call API for tests, demos and benchmarks: records requests, misbehaves on demand.

Run:    python tools/fake_outbound.py --port 9100
Import: from tools.fake_outbound import FakeOutbound, create_app, serve, start_in_thread

Endpoints
- POST /outbound{NN}/projects/{project}/dnc   the TM endpoint ({phone | email | person_id, expires_at}) → 201
- any other method/path                        a MANUAL target's endpoint → 200
- GET /_requests[?path_prefix=]                every request recorded: method, path, headers, body, json, received_at
- DELETE /_requests                            forget them
- GET /_stats[?path_prefix=]                   {count, distinct_keys, connections} (connection reuse)
- POST /_behaviour {match?, fail_status?, fail_times?, delay_ms?, hang?, retry_after?}
                                               misbehave for paths starting with `match` (default: all paths);
                                               fail_times = how many requests fail before it answers normally
                                               (null = every one); hang = never answer until the rule is cleared
- GET /_behaviour · DELETE /_behaviour         show the rules · clear them all (releases hanging requests)

The command line serves HTTP/1.1 with keep-alive straight from an asyncio protocol (httptools parser, uvloop
when installed): a benchmark's deliveries/s must measure the sender, not this server. `create_app` wraps the
same handler as an ASGI app.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

import httptools
import orjson

HANG_LIMIT_S = 600.0
DNC_FIELDS = ("phone", "email", "person_id")
ANY_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_DNC_PATH = re.compile(r"/outbound[0-9]+/projects/(?P<project>[^/]+)/dnc")

Reply = tuple[int, bytes, dict[str, str]]


@dataclass
class Rule:
    """How requests under one path prefix misbehave."""

    match: str = ""
    fail_status: int | None = None
    fail_times: int | None = None
    delay_ms: int = 0
    hang: bool = False
    retry_after: str | None = None
    failures_served: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def public(self) -> dict[str, Any]:
        """The rule as the API shows it."""
        data = asdict(self)
        data.pop("released", None)
        return data


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, orjson.dumps(body), {"Content-Type": "application/json", **(headers or {})}


@dataclass
class FakeOutbound:
    """The server's whole state: what arrived and how to answer."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    rules: dict[str, Rule] = field(default_factory=dict)

    def rule_for(self, path: str) -> Rule | None:
        """The longest matching prefix wins."""
        matching = [r for r in self.rules.values() if path.startswith(r.match)]
        return max(matching, key=lambda r: len(r.match)) if matching else None

    def clear_rules(self) -> None:
        """Forget every rule and let hanging requests answer."""
        for rule in self.rules.values():
            rule.released.set()
        self.rules.clear()

    async def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, client: str | None
    ) -> Reply:
        """Route one request (path already percent-decoded, header names lower-case)."""
        if path.startswith("/_"):
            control = self._control(method, path, query, body)
            if control is not None:
                return control
        dnc = _DNC_PATH.fullmatch(path) if method == "POST" else None
        if dnc is None and method not in ANY_METHODS:
            return _json(405, {"error": "method not allowed"})
        item = self._record(method, path, query, headers, body, client)
        failure = await self._misbehave(self.rule_for(path))
        if failure is not None:
            return failure
        if dnc is None:
            return _json(200, {"id": item["id"], "ok": True})
        parsed = item["json"]
        if not isinstance(parsed, dict) or sum(1 for f in DNC_FIELDS if parsed.get(f)) != 1:
            return _json(400, {"error": "exactly one of phone, email, person_id is required"})
        return _json(201, {"id": item["id"], "status": "added", "project": dnc["project"]})

    def _record(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, client: str | None
    ) -> dict[str, Any]:
        text = body.decode("utf-8", "replace")
        try:
            parsed: Any = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        item = {
            "id": uuid.uuid4().hex,
            "received_at": time.time(),
            "method": method,
            "path": path,
            "query": query,
            "client": client,
            "headers": headers,
            "body": text,
            "json": parsed,
        }
        self.requests.append(item)
        return item

    async def _misbehave(self, rule: Rule | None) -> Reply | None:
        """Delay, hang or fail as the rule says; None means answer normally."""
        if rule is None:
            return None
        if rule.delay_ms:
            await asyncio.sleep(rule.delay_ms / 1000)
        if rule.hang:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rule.released.wait(), HANG_LIMIT_S)
            return None
        if rule.fail_status is not None and (
            rule.fail_times is None or rule.failures_served < rule.fail_times
        ):
            rule.failures_served += 1
            headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else None
            body = {"error": f"fake failure {rule.failures_served}", "status": rule.fail_status}
            return _json(rule.fail_status, body, headers)
        return None

    def _control(self, method: str, path: str, query: str, body: bytes) -> Reply | None:
        prefix = parse_qs(query).get("path_prefix", [""])[0]
        if path == "/_requests" and method == "GET":
            items = [r for r in self.requests if r["path"].startswith(prefix)]
            return _json(200, {"items": items, "count": len(items)})
        if path == "/_requests" and method == "DELETE":
            self.requests.clear()
            return 204, b"", {}
        if path == "/_stats" and method == "GET":
            items = [r for r in self.requests if r["path"].startswith(prefix)]
            return _json(
                200,
                {
                    "count": len(items),
                    "distinct_keys": len({r["headers"].get("idempotency-key") for r in items}),
                    "connections": len({r["client"] for r in items}),
                },
            )
        if path == "/_behaviour" and method in ("POST", "PUT"):
            spec = orjson.loads(body or b"{}")
            match = str(spec.get("match") or "")
            old = self.rules.pop(match, None)
            if old is not None:
                old.released.set()
            rule = Rule(
                match=match,
                fail_status=spec.get("fail_status"),
                fail_times=spec.get("fail_times"),
                delay_ms=int(spec.get("delay_ms") or 0),
                hang=bool(spec.get("hang")),
                retry_after=None if spec.get("retry_after") is None else str(spec["retry_after"]),
            )
            self.rules[match] = rule
            return _json(200, rule.public())
        if path == "/_behaviour" and method == "GET":
            return _json(200, {"rules": [r.public() for r in self.rules.values()]})
        if path == "/_behaviour" and method == "DELETE":
            self.clear_rules()
            return 204, b"", {}
        return None


def _head(status: int, headers: dict[str, str], length: int | None, keep_alive: bool) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Status"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Connection(asyncio.Protocol):
    """One client connection: requests parsed by httptools, answered in order, kept alive."""

    def __init__(self, state: FakeOutbound) -> None:
        self.state = state
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: str | None = None
        self.pending: deque[tuple[str, bytes, dict[str, str], bytes, bool]] = deque()
        self.worker: asyncio.Task[None] | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's classes
        peer = transport.get_extra_info("peername")
        self.client = f"{peer[0]}:{peer[1]}" if peer else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.worker is not None:
            self.worker.cancel()  # a hanging request's client gave up

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(_head(400, {}, 0, keep_alive=False))
            self.transport.close()

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self._headers[key] = f"{self._headers[key]}, {text}" if key in self._headers else text

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode("latin-1")
        keep = self.parser.should_keep_alive()
        self.pending.append((method, self._url, self._headers, b"".join(self._body), keep))
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._answer())

    async def _answer(self) -> None:
        while self.pending and self.transport is not None and not self.transport.is_closing():
            method, raw_url, headers, body, keep = self.pending.popleft()
            url = httptools.parse_url(raw_url)
            path = unquote((url.path or b"/").decode("latin-1"))
            query = (url.query or b"").decode("latin-1")
            try:
                status, payload, extra = await self.state.handle(
                    method, path, query, headers, body, self.client
                )
            except Exception as exc:  # a bad control request must not kill the connection silently
                status, payload, extra = _json(500, {"error": repr(exc)})
            length = None if status == 204 else len(payload)
            self.transport.write(_head(status, extra, length, keep) + payload)
            if not keep:
                self.transport.close()
                return


async def serve(host: str, port: int, state: FakeOutbound | None = None) -> asyncio.Server:
    """Listen on host:port; the returned server is already serving."""
    state = state or FakeOutbound()
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Connection(state), host, port, backlog=1024)


def create_app(state: FakeOutbound | None = None) -> Any:
    """The same fake as an ASGI app (for uvicorn or an in-process test client)."""
    state = state or FakeOutbound()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = f"{scope['client'][0]}:{scope['client'][1]}" if scope.get("client") else None
        status, payload, extra = await state.handle(
            scope["method"],
            scope["path"],
            scope["query_string"].decode("latin-1"),
            headers,
            b"".join(chunks),
            client,
        )
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})

    app.state = state  # type: ignore[attr-defined]
    return app


class ThreadServer:
    """The fake served by a background thread of this process (benchmarks, in-process tests)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.state = FakeOutbound()
        self.started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    async def run(self) -> None:
        """Serve until stop()."""
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await serve(self.host, self.port, self.state)
        self.started.set()
        await self._stop.wait()
        server.close()

    def stop(self) -> None:
        """From any thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)


def start_in_thread(host: str = "127.0.0.1", port: int = 9100) -> tuple[ThreadServer, threading.Thread]:
    """Serve in a background thread of this process; stop with server.stop()."""
    server = ThreadServer(host, port)
    thread = threading.Thread(target=lambda: asyncio.run(server.run()), daemon=True)
    thread.start()
    server.started.wait(10)
    return server, thread


def main() -> None:
    """python tools/fake_outbound.py --port 9100"""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()

    async def run() -> None:
        server = await serve(args.host, args.port)
        async with server:
            await server.serve_forever()

    try:
        import uvloop
    except ImportError:
        runner: Any = asyncio.run
    else:
        runner = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(run())


if __name__ == "__main__":
    main()

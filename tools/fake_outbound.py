"""A fake Outbound (Enreach) Do Not Call API for tests, demos and benchmarks: records requests, misbehaves on demand.

Run:    python tools/fake_outbound.py --port 9100
Import: from tools.fake_outbound import create_app, start_in_thread

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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

HANG_LIMIT_S = 600.0
DNC_FIELDS = ("phone", "email", "person_id")


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


async def _record(state: FakeOutbound, request: Request) -> dict[str, Any]:
    raw = await request.body()
    text = raw.decode("utf-8", "replace")
    try:
        parsed: Any = json.loads(text) if text else None
    except ValueError:
        parsed = None
    item = {
        "id": uuid.uuid4().hex,
        "received_at": time.time(),
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "client": f"{request.client.host}:{request.client.port}" if request.client else None,
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "body": text,
        "json": parsed,
    }
    state.requests.append(item)
    return item


async def _misbehave(rule: Rule | None) -> Response | None:
    """Delay, hang or fail as the rule says; None means answer normally."""
    if rule is None:
        return None
    if rule.delay_ms:
        await asyncio.sleep(rule.delay_ms / 1000)
    if rule.hang:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rule.released.wait(), HANG_LIMIT_S)
        return None
    if rule.fail_status is not None and (rule.fail_times is None or rule.failures_served < rule.fail_times):
        rule.failures_served += 1
        headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else None
        body = {"error": f"fake failure {rule.failures_served}", "status": rule.fail_status}
        return JSONResponse(body, status_code=rule.fail_status, headers=headers)
    return None


def create_app(state: FakeOutbound | None = None) -> Starlette:
    """The fake server as an ASGI app around a (shared or fresh) state."""
    state = state or FakeOutbound()

    async def dnc(request: Request) -> Response:
        item = await _record(state, request)
        failure = await _misbehave(state.rule_for(request.url.path))
        if failure is not None:
            return failure
        body = item["json"]
        if not isinstance(body, dict) or sum(1 for f in DNC_FIELDS if body.get(f)) != 1:
            return JSONResponse({"error": "exactly one of phone, email, person_id is required"}, 400)
        return JSONResponse(
            {"id": item["id"], "status": "added", "project": request.path_params["project"]}, 201
        )

    async def anything(request: Request) -> Response:
        item = await _record(state, request)
        failure = await _misbehave(state.rule_for(request.url.path))
        if failure is not None:
            return failure
        return JSONResponse({"id": item["id"], "ok": True})

    async def list_requests(request: Request) -> Response:
        prefix = request.query_params.get("path_prefix", "")
        items = [r for r in state.requests if r["path"].startswith(prefix)]
        return JSONResponse({"items": items, "count": len(items)})

    async def stats(request: Request) -> Response:
        prefix = request.query_params.get("path_prefix", "")
        items = [r for r in state.requests if r["path"].startswith(prefix)]
        keys = {(r["headers"].get("idempotency-key")) for r in items}
        return JSONResponse(
            {
                "count": len(items),
                "distinct_keys": len(keys),
                "connections": len({r["client"] for r in items}),
            }
        )

    async def clear_requests(_: Request) -> Response:
        state.requests.clear()
        return Response(status_code=204)

    async def set_behaviour(request: Request) -> Response:
        spec = await request.json()
        match = str(spec.get("match") or "")
        old = state.rules.pop(match, None)
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
        state.rules[match] = rule
        return JSONResponse(rule.public())

    async def get_behaviour(_: Request) -> Response:
        return JSONResponse({"rules": [r.public() for r in state.rules.values()]})

    async def clear_behaviour(_: Request) -> Response:
        state.clear_rules()
        return Response(status_code=204)

    app = Starlette(
        routes=[
            Route("/_requests", list_requests, methods=["GET"]),
            Route("/_requests", clear_requests, methods=["DELETE"]),
            Route("/_stats", stats, methods=["GET"]),
            Route("/_behaviour", set_behaviour, methods=["POST", "PUT"]),
            Route("/_behaviour", get_behaviour, methods=["GET"]),
            Route("/_behaviour", clear_behaviour, methods=["DELETE"]),
            Route("/outbound{system:int}/projects/{project}/dnc", dnc, methods=["POST"]),
            Route("/{path:path}", anything, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ]
    )
    app.state.fake = state
    return app


def start_in_thread(host: str = "127.0.0.1", port: int = 9100) -> tuple[uvicorn.Server, threading.Thread]:
    """Serve in a background thread of this process (benchmarks); stop with server.should_exit = True."""
    server = uvicorn.Server(uvicorn.Config(create_app(), host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return server, thread


def main() -> None:
    """python tools/fake_outbound.py --port 9100"""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

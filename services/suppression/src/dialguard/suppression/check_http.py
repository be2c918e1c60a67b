"""GET and POST /v1/check served as plain ASGI, ahead of FastAPI's routing and dependency solving.

Dialers call these thousands of times a second; profiled, FastAPI's per-request machinery
(middleware layers, route matching, dependency and query-parameter solving) cost a single check
more CPU than its cache lookup. The route declarations in api.py stay for OpenAPI and call the
same functions below; this middleware answers before they are reached.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dialguard.identifiers import CHANNELS as IDENTIFIER_CHANNELS
from dialguard.identifiers import InvalidIdentifier, canonical_nanp_region
from dialguard.platform.auth import DIALER, OPS, OUTBOUND_MANAGER, VIEWER, Principal, authenticate
from dialguard.platform.errors import DEPENDENCY_DOWN, UNSTORABLE_TEXT, ApiError, error_body, unstorable_text
from dialguard.platform.observability import HTTP_LATENCY
from dialguard.suppression.check_wire import CheckError, CheckResult, decode_request, encode_answer, invalid
from dialguard.suppression.checks import (
    ID_TYPES,
    batch_keys,
    canonical_nanp_phones,
    prepare,
    run_checks,
    suppressed_keys,
    suppressed_phones,
)
from dialguard.suppression.handlers import Suppression

log = structlog.get_logger(__name__)

CHECK_PATH = "/v1/check"
CHECK_ROLES = frozenset((DIALER, OUTBOUND_MANAGER, OPS, VIEWER))
MAX_CHECK_BODY = 8 * 1024 * 1024
CHANNELS = frozenset(IDENTIFIER_CHANNELS)
_REGION = re.compile(r"[A-Z]{2}")


def _optional_text(value: Any, field: str, max_len: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= max_len:
        raise invalid(field, f"string of 1-{max_len} characters")
    return value


def _channel(value: Any) -> str | None:
    if value is not None and value not in CHANNELS:
        raise invalid("channel", f"one of {sorted(CHANNELS)}")
    return value  # type: ignore[no-any-return]


def _region(value: Any, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or not _REGION.fullmatch(value):
        raise invalid("region", "ISO 3166 alpha-2, upper case")
    try:
        canonical_nanp_region(value)  # also proves libphonenumber knows the region
    except InvalidIdentifier as exc:
        raise invalid("region", exc.reason) from exc
    return value


async def answer_one(
    svc: Suppression, principal: Principal, query: dict[str, str], default_region: str
) -> Any:
    """GET /v1/check: one identifier, with its readings and the entries that suppress it."""
    id_type = query.get("type")
    if id_type not in ID_TYPES:
        raise invalid("type", f"one of {sorted(ID_TYPES)}")
    value = _optional_text(query.get("value"), "value", 512)
    if value is None:
        raise invalid("value", "required")
    channel = _channel(query.get("channel"))
    sender = _optional_text(query.get("sender"), "sender", 256)
    items = prepare([{"type": id_type, "value": value}], region=_region(query.get("region"), default_region))
    item = items[0]
    if item.error is not None and not item.readings:
        err = item.error
        raise ApiError(
            422, err.code, f"invalid identifier: {err.reason}", [{"field": "value", "reason": err.reason}]
        )
    await run_checks(
        svc, items, account_id=principal.account_id, channel=channel, sender=sender, stoplist_ids=None
    )
    return {
        "identifier": {"type": id_type, "value": value},
        "readings": [{"type": t, "value": v} for t, v in item.readings],
        "suppressed": bool(item.matches),
        "matches": item.matches,
    }


async def answer_batch(svc: Suppression, principal: Principal, raw: bytes, default_region: str) -> bytes:
    """POST /v1/check: up to 10,000 identifiers, answered in request order; an unreadable one is answered
    with its error (suppressed false) instead of failing the batch."""
    request = decode_request(raw)
    channel = _channel(request.channel)
    sender = _optional_text(request.sender, "sender", 256)
    region = _region(request.region, default_region)
    stoplist_ids: list[uuid.UUID] | None = None
    sl = request.stoplist_ids
    if sl is not None:
        if not isinstance(sl, list) or len(sl) > 1000:
            raise invalid("stoplist_ids", "list of up to 1000 ids")
        try:
            stoplist_ids = [uuid.UUID(str(s)) for s in sl] or None
        except ValueError as exc:
            raise invalid("stoplist_ids", "ids must be UUIDs") from exc
    items = request.identifiers
    scope: dict[str, Any] = {
        "account_id": principal.account_id,
        "channel": channel,
        "sender": sender,
        "stoplist_ids": stoplist_ids,
    }
    errors: dict[int, InvalidIdentifier] = {}
    phones = canonical_nanp_phones(items, region=region)
    if phones is not None:
        flags = await suppressed_phones(svc, phones, **scope)
    else:
        keys, errors = batch_keys(items, region=region)
        found = await suppressed_keys(svc, list({k for ks in keys for k in ks}), **scope)
        flags = [not found.isdisjoint(ks) for ks in keys]
    results = [CheckResult(item, flag) for item, flag in zip(items, flags, strict=True)]
    for i, err in errors.items():
        results[i].error = CheckError(err.code, err.reason)
    return encode_answer(results)


class CheckFastPath:
    """ASGI middleware: answers /v1/check itself, hands every other request to the app."""

    def __init__(
        self, app: ASGIApp, *, service: str, svc: Callable[[], Suppression], secret: str, region: str
    ):
        self.app = app
        self.service = service
        self._svc = svc
        self._secret = secret
        self._region = region

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != CHECK_PATH or scope["method"] not in ("GET", "POST"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]
        status, body, headers = 200, b"", [(b"content-type", b"application/json")]
        try:
            principal = authenticate(_header(scope, b"authorization"), self._secret, CHECK_ROLES)
            if method == "GET":
                query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
                body = orjson.dumps(await answer_one(self._svc(), principal, query, self._region))
            else:
                raw = await read_body(scope, receive, MAX_CHECK_BODY)
                body = await answer_batch(self._svc(), principal, raw, self._region)
        except UNSTORABLE_TEXT:
            exc = unstorable_text()
            status, body = exc.status, orjson.dumps(error_body(exc.code, exc.message))
        except ApiError as exc:
            status = exc.status
            body = orjson.dumps(error_body(exc.code, exc.message, exc.details))
            headers += [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
        except DEPENDENCY_DOWN as exc:
            log.warning("check unavailable", error=repr(exc))
            status = 503
            body = orjson.dumps(error_body("unavailable", "suppression store unavailable, retry shortly"))
            headers.append((b"retry-after", b"1"))
        except Exception:
            log.exception("check failed")
            status = 500
            body = orjson.dumps(error_body("internal_error", "internal error"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        HTTP_LATENCY.labels(self.service, method, CHECK_PATH, str(status)).observe(
            time.perf_counter() - started
        )


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return ""


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes the limit (never read whole first)."""
    declared = _header(scope, b"content-length")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"check body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(400, "client_disconnected", "client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large", f"check body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)

"""Schemathesis against every service's /openapi.json: no 5xx for any generated input, 401 without a token.

Bugs this suite found are fixed: a non-ASCII signature on lead-action's signed download link was a 500
(now 403 invalid_signature), and POST /v1/check with an unknown region was a 500 (now 422).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from dialguard.testing.helpers import auth
from dialguard.testing.services import ServiceProcess

from .conftest import LONG, SERVICES

EXAMPLES = 60 if LONG else 6
PUBLIC = ("/health/", "/metrics", "/openapi.json", "/docs", "/redoc")


async def _schema(proc: ServiceProcess) -> Any:
    async with httpx.AsyncClient(base_url=proc.base_url) as c:
        r = await c.get("/openapi.json")
    assert r.status_code == 200, r.text
    return schemathesis.openapi.from_dict(r.json())


def _operations(schema: Any) -> list[Any]:
    ops = [result.ok() for result in schema.get_all_operations()]
    assert ops, "the OpenAPI document lists no operations"
    return ops


def _is_public(path: str) -> bool:
    return path.startswith(PUBLIC) or path == "/"


def _is_signed_link(op: Any) -> bool:
    """A download link carrying its own HMAC signature (lead exports): it is refused without one, not 401."""
    names = {p.name for p in op.query} if hasattr(op, "query") else set()
    return "signature" in names


def _settings(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


def _statuses(
    op: Any,
    base_url: str,
    session: requests.Session,
    headers: dict[str, str] | None,
    examples: int,
) -> list[tuple[int, str]]:
    """Send `examples` generated requests for one operation; (status, description) of each."""
    seen: list[tuple[int, str]] = []

    @_settings(examples)
    @given(case=op.as_strategy())
    def run(case: Any) -> None:
        if headers is None:
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        seen.append(
            (
                response.status_code,
                f"{case.method} {response.request.url} body={str(case.body)[:200]!r}: "
                f"{response.content[:200].decode(errors='replace')}",
            )
        )

    with contextlib.suppress(Unsatisfiable):
        run()
    return seen


def _fuzz(base_url: str, schema: Any, headers: dict[str, str], examples: int) -> dict[str, list[str]]:
    """Generated requests per operation (sync: schemathesis sends with requests); 5xx answers by operation."""
    failures: dict[str, list[str]] = defaultdict(list)
    session = requests.Session()
    for op in _operations(schema):
        for status, what in _statuses(op, base_url, session, headers, examples):
            if status >= 500:
                failures[f"{op.method.upper()} {op.path}"].append(f"{status} for {what}")
    return failures


@pytest.mark.timeout(600)
@pytest.mark.parametrize("service", SERVICES)
async def test_generated_requests_never_get_a_server_error(
    services: dict[str, ServiceProcess], service: str
) -> None:
    proc = services[service]
    schema = await _schema(proc)
    account = f"fuzz-{uuid.uuid4().hex[:8]}"
    headers = auth(account, ["OUTBOUND_MANAGER", "OPS"])
    failures = await asyncio.to_thread(_fuzz, proc.base_url, schema, headers, EXAMPLES)
    report = "\n".join(f"{label}: {msgs[0]} ({len(msgs)}x)" for label, msgs in sorted(failures.items()))
    assert not failures, f"{service} answered 5xx:\n{report}"


def _without_token(base_url: str, schema: Any) -> list[str]:
    """Two generated requests per protected operation, with no Authorization header: all must be 401."""
    wrong: list[str] = []
    session = requests.Session()
    for op in _operations(schema):
        if _is_public(op.path):
            continue
        seen = _statuses(op, base_url, session, None, 1 if not LONG else 5)
        allowed = {401, 403} if _is_signed_link(op) else {401}
        if any(status not in allowed for status, _ in seen):
            bad = [f"{st} for {w}" for st, w in seen if st not in allowed]
            wrong.append(f"{op.method.upper()} {op.path} -> {bad[:2]}")
    return wrong


@pytest.mark.parametrize("service", SERVICES)
async def test_every_protected_route_answers_401_without_a_token(
    services: dict[str, ServiceProcess], service: str
) -> None:
    proc = services[service]
    schema = await _schema(proc)
    wrong = await asyncio.to_thread(_without_token, proc.base_url, schema)
    assert not wrong, f"{service} routes not answering 401 without a token:\n" + "\n".join(wrong)
    async with httpx.AsyncClient(base_url=proc.base_url) as c:
        for path in ("/health/live", "/health/ready", "/metrics", "/openapi.json"):
            assert (await c.get(path)).status_code == 200, path

"""The contract's error body and the handlers that make every failure one of its 4xx shapes."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)


class ApiError(Exception):
    """Raise from handlers/routes to answer with `{"error": {code, message, details}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers


def not_found(what: str = "resource") -> ApiError:
    """404 that never reveals whether another account owns the object."""
    return ApiError(404, "not_found", f"{what} not found")


def error_body(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    """The contract's error envelope."""
    return {"error": {"code": code, "message": message, "details": details or []}}


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


UNSTORABLE_TEXT: tuple[type[Exception], ...] = (
    asyncpg.exceptions.CharacterNotInRepertoireError,
    asyncpg.exceptions.UntranslatableCharacterError,
)
"""Postgres refuses U+0000 (and text it cannot encode) in any text column: that is bad input, not a 500."""


DEPENDENCY_DOWN: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # e.g. "cannot switch to state": a connection broken mid-restart
    asyncpg.exceptions.OperatorInterventionError,  # 57P01 admin shutdown, 57P03 cannot connect now
    OSError,  # connection refused / reset while Postgres restarts
    asyncio.TimeoutError,
)
"""A request that met Postgres down or restarting: 503 and retry, not a 500."""


def unavailable() -> ApiError:
    return ApiError(
        503, "unavailable", "a dependency is unavailable, retry shortly", headers={"Retry-After": "1"}
    )


def unstorable_text() -> ApiError:
    return ApiError(
        422,
        "invalid_characters",
        "a text value holds a character that cannot be stored (U+0000 or an unencodable character)",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map validation, HTTP and unexpected errors to the contract's body."""

    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("request failed on an unavailable dependency", error=repr(exc))
        err = unavailable()
        return JSONResponse(error_body(err.code, err.message), err.status, headers=err.headers)

    for kind in DEPENDENCY_DOWN:
        app.add_exception_handler(kind, _unavailable)

    @app.exception_handler(asyncpg.exceptions.CharacterNotInRepertoireError)
    @app.exception_handler(asyncpg.exceptions.UntranslatableCharacterError)
    async def _unstorable(_: Request, exc: Exception) -> JSONResponse:
        err = unstorable_text()
        return JSONResponse(error_body(err.code, err.message), err.status)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")),
                "location": err.get("loc", ("body",))[0],
                "reason": err.get("msg", "invalid"),
                "type": err.get("type"),
            }
            for err in exc.errors()
        ]
        fields = ", ".join(d["field"] or d["location"] for d in details)
        return JSONResponse(error_body("validation_error", f"invalid input: {fields}", details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return JSONResponse(
            error_body(code, str(exc.detail)), exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", error=repr(exc))
        return JSONResponse(error_body("internal_error", "internal error"), 500)

"""JWT bearer auth (HS256) with roles; every route but health/metrics/docs depends on it."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

import jwt
import structlog
from fastapi import Request

from dialguard.platform.errors import ApiError

OUTBOUND_MANAGER: Final = "OUTBOUND_MANAGER"
DIALER: Final = "DIALER"
VIEWER: Final = "VIEWER"
OPS: Final = "OPS"
ALL_ROLES: Final = (OUTBOUND_MANAGER, DIALER, VIEWER, OPS)
READERS: Final = ALL_ROLES
WRITERS: Final = (OUTBOUND_MANAGER,)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling and for which account."""

    sub: str
    account_id: str
    roles: frozenset[str]
    token_id: str


def mint_token(
    *, secret: str, account_id: str, roles: list[str], sub: str = "dev", ttl_seconds: int = 86_400
) -> str:
    """Sign a token the services accept (make token, tests, demos)."""
    now = int(time.time())
    claims = {"sub": sub, "account_id": account_id, "roles": roles, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm="HS256")


def decode_token(token: str, secret: str) -> Principal:
    """Verify signature, algorithm and expiry; anything off is a 401."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp", "sub", "account_id", "roles"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise ApiError(401, "token_expired", "token expired", headers={"WWW-Authenticate": "Bearer"}) from exc
    except jwt.PyJWTError as exc:
        raise ApiError(
            401, "invalid_token", f"invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"}
        ) from exc
    roles = claims.get("roles")
    account_id = claims.get("account_id")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ApiError(401, "invalid_token", "claim 'roles' must be a list of strings")
    if not isinstance(account_id, str) or not account_id or len(account_id) > 256:
        raise ApiError(401, "invalid_token", "claim 'account_id' must be a non-empty string")
    return Principal(
        sub=str(claims["sub"]), account_id=account_id, roles=frozenset(roles), token_id=token[-24:]
    )


def require_roles(*allowed: str) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """Dependency factory: 401 without a valid token, 403 when no role of the token is allowed."""
    allowed_set = frozenset(allowed)

    async def dependency(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                401, "unauthorized", "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        principal = decode_token(token.strip(), request.app.state.jwt_secret)
        if not principal.roles & allowed_set:
            raise ApiError(403, "forbidden", f"requires one of the roles {sorted(allowed_set)}")
        structlog.contextvars.bind_contextvars(account_id=principal.account_id)
        return principal

    return dependency

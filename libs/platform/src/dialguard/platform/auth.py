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
    expires_at: float = 0.0


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
        sub=str(claims["sub"]),
        account_id=account_id,
        roles=frozenset(roles),
        token_id=token[-24:],
        expires_at=float(claims["exp"]),
    )


class VerifiedTokens:
    """Tokens already verified, until their own expiry: dialers send the same token thousands of
    times a second, and HMAC + claim checks cost more than a check's cache lookup.

    Keyed by the whole token string and the secret, so a cached answer is exactly what verifying
    again would say until `exp` (which is re-checked on every use); bounded, cleared when full.
    """

    def __init__(self, max_size: int = 10_000) -> None:
        self._max = max_size
        self._known: dict[tuple[str, str], tuple[Principal, float]] = {}

    def principal(self, token: str, secret: str) -> Principal:
        key = (token, secret)
        hit = self._known.get(key)
        if hit is not None and hit[1] > time.time():
            return hit[0]
        principal = decode_token(token, secret)
        if len(self._known) >= self._max:
            self._known.clear()
        self._known[key] = (principal, principal.expires_at)
        return principal


VERIFIED = VerifiedTokens()


def authenticate(authorization: str, secret: str, allowed: frozenset[str]) -> Principal:
    """The caller of an Authorization header value: 401 without a valid token, 403 without an allowed role."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    principal = VERIFIED.principal(token.strip(), secret)
    if not principal.roles & allowed:
        raise ApiError(403, "forbidden", f"requires one of the roles {sorted(allowed)}")
    return principal


def require_roles(*allowed: str) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """Dependency factory: 401 without a valid token, 403 when no role of the token is allowed."""
    allowed_set = frozenset(allowed)

    async def dependency(request: Request) -> Principal:
        principal = authenticate(
            request.headers.get("authorization", ""), request.app.state.jwt_secret, allowed_set
        )
        structlog.contextvars.bind_contextvars(account_id=principal.account_id)
        return principal

    return dependency

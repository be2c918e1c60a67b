"""Token verification: only HS256 tokens signed with our secret, unexpired, with the required claims pass."""

from __future__ import annotations

import time

import jwt
import pytest

from dialguard.platform.auth import VerifiedTokens, authenticate, decode_token, mint_token
from dialguard.platform.errors import ApiError
from dialguard.platform.paging import decode_cursor, encode_cursor

SECRET = "unit-secret-0123456789abcdef0123456789"


def test_minted_token_round_trips() -> None:
    p = decode_token(mint_token(secret=SECRET, account_id="acme", roles=["DIALER"]), SECRET)
    assert (p.account_id, p.roles) == ("acme", frozenset({"DIALER"}))


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(
            {"sub": "x", "account_id": "a", "roles": [], "exp": int(time.time()) - 5}, SECRET, "HS256"
        ),
        jwt.encode(
            {"sub": "x", "account_id": "a", "roles": [], "exp": int(time.time()) + 60},
            "other-secret-xxxxxxxxxxxxxxxxxxxxxx",
            "HS256",
        ),
        jwt.encode({"sub": "x", "account_id": "a", "roles": [], "exp": int(time.time()) + 60}, None, "none"),
        jwt.encode({"sub": "x", "roles": [], "exp": int(time.time()) + 60}, SECRET, "HS256"),
        jwt.encode(
            {"sub": "x", "account_id": "a", "roles": "OPS", "exp": int(time.time()) + 60}, SECRET, "HS256"
        ),
        "garbage",
    ],
    ids=["expired", "other-secret", "alg-none", "no-account", "roles-not-list", "garbage"],
)
def test_bad_tokens_are_401(token: str) -> None:
    with pytest.raises(ApiError) as err:
        decode_token(token, SECRET)
    assert err.value.status == 401


def test_verified_tokens_cache_honours_expiry_and_secret() -> None:
    cache = VerifiedTokens(max_size=2)
    token = mint_token(secret=SECRET, account_id="acme", roles=["DIALER"], ttl_seconds=1)
    assert cache.principal(token, SECRET).account_id == "acme"
    assert cache.principal(token, SECRET).account_id == "acme"  # served from the cache
    with pytest.raises(ApiError) as other:
        cache.principal(token, "other-secret-xxxxxxxxxxxxxxxxxxxxxx")  # never answered from the cache
    assert other.value.status == 401
    time.sleep(1.1 - (time.time() % 1.0) + 1.0)  # past exp, whatever the sub-second phase was
    with pytest.raises(ApiError) as expired:
        cache.principal(token, SECRET)  # cached, but past its exp: verified again and refused
    assert expired.value.status == 401


def test_authenticate_maps_header_and_roles_to_401_403() -> None:
    token = mint_token(secret=SECRET, account_id="acme", roles=["VIEWER"])
    assert authenticate(f"Bearer {token}", SECRET, frozenset({"VIEWER"})).account_id == "acme"
    for header, status in (("", 401), (f"Basic {token}", 401), ("Bearer ", 401)):
        with pytest.raises(ApiError) as err:
            authenticate(header, SECRET, frozenset({"VIEWER"}))
        assert err.value.status == status
    with pytest.raises(ApiError) as err:
        authenticate(f"Bearer {token}", SECRET, frozenset({"DIALER"}))
    assert err.value.status == 403


def test_cursor_round_trip_and_tampering() -> None:
    assert decode_cursor(encode_cursor(["2026-01-01T00:00:00+00:00", "abc"])) == [
        "2026-01-01T00:00:00+00:00",
        "abc",
    ]
    assert decode_cursor(None) is None
    with pytest.raises(ApiError) as err:
        decode_cursor("!!!not-base64")
    assert err.value.status == 422

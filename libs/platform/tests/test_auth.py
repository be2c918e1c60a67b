"""Token verification: only HS256 tokens signed with our secret, unexpired, with the required claims pass."""

from __future__ import annotations

import time

import jwt
import pytest

from dialguard.platform.auth import decode_token, mint_token
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


def test_cursor_round_trip_and_tampering() -> None:
    assert decode_cursor(encode_cursor(["2026-01-01T00:00:00+00:00", "abc"])) == [
        "2026-01-01T00:00:00+00:00",
        "abc",
    ]
    assert decode_cursor(None) is None
    with pytest.raises(ApiError) as err:
        decode_cursor("!!!not-base64")
    assert err.value.status == 422

"""Pure suppression rules."""

from __future__ import annotations

import pytest

from dialguard.suppression.api import hash_password, verify_password
from dialguard.suppression.domain import applies, cache_key, covers_channel, event_key


@pytest.mark.parametrize(
    ("entry", "check", "expected"),
    [
        ((None, None), (None, None), True),
        ((None, None), ("voice", "S"), True),
        (("sms", None), ("voice", None), False),
        (("sms", None), (None, None), True),
        (("sms", "A"), ("sms", "B"), False),
        (("sms", "A"), ("sms", None), True),
    ],
)
def test_entry_applies_when_null_or_equal_and_omitted_means_any(
    entry: tuple[str | None, str | None], check: tuple[str | None, str | None], expected: bool
) -> None:
    assert applies(entry[0], entry[1], check[0], check[1]) is expected


def test_removed_all_channel_entry_is_still_covered_by_any_remaining_channel() -> None:
    assert covers_channel(None, "sms") is True
    assert covers_channel("voice", None) is True
    assert covers_channel("voice", "sms") is False


def test_keys() -> None:
    assert event_key("acme", "phone", "1267") == "acme:phone:1267"
    assert cache_key("email", "a@b.c") == b"email:a@b.c"


def test_password_hash_verifies_and_hides_the_password() -> None:
    stored = hash_password("correct horse")
    assert "correct horse" not in stored
    assert stored.startswith("scrypt$")
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("x", None)

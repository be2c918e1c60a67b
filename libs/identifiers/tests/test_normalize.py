"""CONTRACT §4 readings of phones, emails, opaque ids and channels."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialguard.identifiers import (
    AmbiguousPhone,
    InvalidIdentifier,
    identifier_readings,
    normalize_email,
    normalize_identifier,
    normalize_opaque,
    normalize_phone,
    phone_candidates,
    phone_readings,
    validate_channel,
)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+44 20 7946 0958", "US", "442079460958"),
        ("0044 20 7946 0958", "US", "442079460958"),
        ("(267) 234-5678", "US", "12672345678"),
        ("12672345678", "US", "12672345678"),
        ("441234567890", "US", "441234567890"),
        ("020 7946 0958", "GB", "442079460958"),
    ],
)
def test_contract_examples(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region=region) == expected


def test_ambiguous_phone_names_both_readings_and_phone_format_resolves_it() -> None:
    with pytest.raises(AmbiguousPhone) as err:
        normalize_phone("2032345678")
    assert err.value.code == "ambiguous_phone"
    assert set(err.value.readings) == {"2032345678", "12032345678"}
    assert normalize_phone("2032345678", phone_format="national") == "12032345678"
    assert normalize_phone("2032345678", phone_format="international") == "2032345678"
    assert set(phone_readings("2032345678")) == {"2032345678", "12032345678"}


@pytest.mark.parametrize("raw", ["", "12345", "abc", "+1 555 0100 x", "1267234567a", "+999 123 456 789"])
def test_invalid_phones_are_rejected_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as err:
        normalize_phone(raw)
    assert err.value.code == "invalid_phone"
    assert err.value.reason


def test_check_candidates_cover_every_valid_reading() -> None:
    for raw in ["(267) 234-5678", "12672345678", "2032345678", "+44 20 7946 0958"]:
        assert set(phone_readings(raw)) <= set(phone_candidates(raw))
    with pytest.raises(InvalidIdentifier):
        phone_candidates("call me")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["US", "GB", "DE", "FR", "IN", "BR"]), st.integers(min_value=0, max_value=10**6))
def test_normalized_numbers_are_fixed_points(region: str, seed: int) -> None:
    example = phonenumbers.example_number(region)
    assert example is not None
    digits = f"{example.country_code}{example.national_number}"
    assert normalize_phone("+" + digits) == digits
    assert normalize_phone("+" + normalize_phone("+" + digits)) == digits
    assert digits in phone_candidates("+" + digits)
    del seed


def test_emails() -> None:
    assert normalize_email(" Opt.Out@Example.COM ") == "opt.out@example.com"
    assert normalize_email("ädmin@Bücher.de") == "ädmin@xn--bcher-kva.de"
    for bad in ["", "no-at-sign", "a@", "@b.com", "a b@c.com"]:
        with pytest.raises(InvalidIdentifier):
            normalize_email(bad)


def test_opaque_ids_and_dispatch() -> None:
    assert normalize_opaque("  P-1 ") == "P-1"
    with pytest.raises(InvalidIdentifier):
        normalize_opaque("   ")
    with pytest.raises(InvalidIdentifier):
        normalize_opaque("x" * 257)
    assert normalize_identifier("client_id", " c1 ").value == "c1"
    assert [i.value for i in identifier_readings("email", "A@B.COM")] == ["a@b.com"]
    with pytest.raises(InvalidIdentifier):
        normalize_identifier("fax", "1")


def test_channels() -> None:
    assert validate_channel("phone", None) is None
    assert validate_channel("phone", "sms") == "sms"
    assert validate_channel("email", "email") == "email"
    for id_type, channel in [("email", "sms"), ("phone", "pigeon")]:
        with pytest.raises(InvalidIdentifier) as err:
            validate_channel(id_type, channel)
        assert err.value.code == "invalid_channel"

"""CONTRACT §4 readings of phones, emails, opaque ids and channels, and the fast path's fidelity."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from pydantic import ValidationError

from dialguard.identifiers import (
    CHANNELS,
    AmbiguousPhone,
    Identifier,
    IdentifierIn,
    InvalidIdentifier,
    PhoneFormat,
    canonical_nanp,
    canonical_nanp_region,
    detect_type,
    identifier_readings,
    normalize_email,
    normalize_identifier,
    normalize_opaque,
    normalize_phone,
    phone_candidates,
    phone_readings,
    validate_channel,
)
from dialguard.identifiers import normalize as impl

# 10-digit values valid both as US national numbers and as international numbers without +
# (found by scanning random valid US numbers; ~10 % are ambiguous, as §4 says).
AMBIGUOUS = [
    ("4799748753", "4799748753", "14799748753"),  # Norway +47 997 48 753 / Arkansas 479
    ("2036067033", "2036067033", "12036067033"),  # Egypt +20 3 6067033 / Connecticut 203
    ("(647) 975-2670", "6479752670", "16479752670"),  # New Zealand +64 7 975 2670 / Toronto 647
]


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+44 20 7946 0958", "US", "442079460958"),
        ("0044 20 7946 0958", "US", "442079460958"),
        ("(267) 234-5678", "US", "12672345678"),
        ("267.234.5678", "US", "12672345678"),
        ("  267-234-5678 ", "us", "12672345678"),
        ("12672345678", "US", "12672345678"),
        ("1 (267) 234-5678", "US", "12672345678"),
        ("+1 267 234 5678", "DE", "12672345678"),
        ("441234567890", "US", "441234567890"),
        ("447911123456", "US", "447911123456"),
        ("020 7946 0958", "GB", "442079460958"),
        ("+44 (0) 20 7946 0958", "US", "442079460958"),
        ("+39 06 1234 5678", "US", "390612345678"),
        ("06 1234 5678", "IT", "390612345678"),
        ("011 44 20 7946 0958", "US", "442079460958"),
        ("030 123456", "DE", "4930123456"),
    ],
)
def test_contract_examples(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region=region) == expected
    assert phone_readings(raw, region=region) == (expected,)
    assert expected in phone_candidates(raw, region=region)


@pytest.mark.parametrize(("raw", "international", "national"), AMBIGUOUS)
def test_ambiguous_phone_names_both_readings_and_phone_format_resolves_it(
    raw: str, international: str, national: str
) -> None:
    with pytest.raises(AmbiguousPhone) as err:
        normalize_phone(raw)
    assert err.value.code == "ambiguous_phone"
    assert err.value.readings == (international, national)
    assert f"+{international}" in err.value.reason
    assert f"+{national}" in err.value.reason
    assert normalize_phone(raw, phone_format="international") == international
    assert normalize_phone(raw, phone_format="national") == national
    assert phone_readings(raw) == (international, national)
    assert set(phone_candidates(raw)) == {international, national}
    assert [i.value for i in identifier_readings("phone", raw)] == [international, national]
    with pytest.raises(AmbiguousPhone):
        normalize_identifier("phone", raw)
    assert normalize_identifier("phone", raw, phone_format="national") == Identifier("phone", national)


def test_ambiguity_depends_on_the_region() -> None:
    # Not a valid British national number, so in GB only the international reading remains.
    assert normalize_phone("4799748753", region="GB") == "4799748753"


def test_phone_format_is_strict_without_prefix_and_ignored_with_one() -> None:
    assert normalize_phone("(267) 234-5678", phone_format="national") == "12672345678"
    assert normalize_phone("12672345678", phone_format="international") == "12672345678"
    assert normalize_phone("12672345678", phone_format="national") == "12672345678"
    with pytest.raises(InvalidIdentifier) as err:
        normalize_phone("441234567890", phone_format="national")
    assert err.value.code == "invalid_phone"
    assert "national number in US" in err.value.reason
    assert normalize_phone("+44 20 7946 0958", phone_format="national") == "442079460958"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("12345", "not a valid phone number"),
        ("abc", "only digits"),
        ("+1 555 0100 x12", "only digits"),
        ("1267234567a", "only digits"),
        ("1-800-FLOWERS", "only digits"),
        ("++44 20 7946 0958", "only digits"),
        ("+999 123 456 789", "unknown country code"),
        ("+44 20 7946", "too short"),
        ("+1 267 234 56789", "too long"),
        ("555-0100", "local number"),
        ("1" * 25, "too long"),
        ("1" * 100, "too long"),
        ("١٢٦٧٢٣٤٥٦٧٨", "only digits"),
    ],
)
def test_invalid_phones_are_rejected_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier) as err:
        normalize_phone(raw)
    assert err.value.code == "invalid_phone"
    assert reason in err.value.reason
    with pytest.raises(InvalidIdentifier):
        phone_readings(raw)


def test_unknown_region_is_refused() -> None:
    with pytest.raises(InvalidIdentifier) as err:
        normalize_phone("2672345678", region="XX")
    assert err.value.code == "invalid_region"


def test_candidates_cover_readings_and_refuse_only_malformed_input() -> None:
    for raw, region in [
        ("(267) 234-5678", "US"),
        ("12672345678", "US"),
        ("4799748753", "US"),
        ("+44 (0) 20 7946 0958", "US"),
        ("06 1234 5678", "IT"),
    ]:
        assert set(phone_readings(raw, region=region)) <= set(phone_candidates(raw, region=region))
    assert set(phone_candidates("(555) 010-0000")) == {"5550100000", "15550100000"}  # invalid: harmless
    # Canonical digits where the international reading drops a national prefix or the national one
    # is an IDD call: the candidates must still contain the valid reading.
    assert phone_readings("4408001111") == ("448001111", "14408001111")
    assert set(phone_candidates("4408001111")) == {"448001111", "14408001111"}
    assert phone_readings("0116834002") == ("6834002",)
    assert "6834002" in phone_candidates("0116834002")
    with pytest.raises(InvalidIdentifier):
        phone_candidates("call me")


@settings(max_examples=400, deadline=None)
@given(
    st.from_regex(r"(1|011|0|)[0-9]{7,10}", fullmatch=True),
    st.sampled_from(["US", "CA", "GB"]),
    st.sampled_from(["{}", "+{}", " {} "]),
)
def test_candidates_are_a_superset_of_valid_readings(digits: str, region: str, written: str) -> None:
    raw = written.format(digits)
    try:
        readings = phone_readings(raw, region=region)
    except InvalidIdentifier:
        return
    assert set(readings) <= set(phone_candidates(raw, region=region))


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"1[0-9]{10}", fullmatch=True), st.sampled_from(["US", "CA", "us", "GB", "DE"]))
def test_canonical_nanp_region_means_the_value_is_its_only_candidate(digits: str, region: str) -> None:
    if canonical_nanp_region(region):
        assert phone_candidates(digits, region=region) == (digits,)
    else:
        assert region.upper() not in {"US", "CA"}


def test_seed_style_international_numbers_without_plus() -> None:
    # Telephony lists write numbers as country code + national number, no + (seeds 002: 441234567890).
    for e164 in ["12672345678", "447911123456", "4930123456", "33612345678", "61412345678"]:
        assert normalize_phone(e164) == e164


def _example_e164s() -> list[str]:
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None and phonenumbers.is_valid_number(number):
                out.append(phonenumbers.format_number(number, PhoneNumberFormat.E164)[1:])
    return out


EXAMPLES = _example_e164s()


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EXAMPLES), st.sampled_from(["+{}", "00{}", "+{} ", " +{}"]))
def test_normalizing_a_normalized_number_given_with_plus_is_idempotent(e164: str, written: str) -> None:
    once = normalize_phone(written.format(e164))
    assert once == e164
    assert normalize_phone("+" + once) == once
    assert phone_readings("+" + once) == (once,)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"\+?[0-9]{3,16}", fullmatch=True), st.sampled_from(["US", "GB", "DE", "IT", "IN"]))
def test_any_accepted_number_is_a_fixed_point(raw: str, region: str) -> None:
    try:
        readings = phone_readings(raw, region=region)
    except InvalidIdentifier:
        return
    for reading in readings:
        assert normalize_phone("+" + reading, region=region) == reading


def _reference(text: str, region: str | None) -> tuple[int, str, bool] | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    valid = bool(phonenumbers.is_valid_number(number))
    return number.country_code or 0, phonenumbers.national_significant_number(number), valid


def _fast(parts: tuple[int, str] | None) -> tuple[int, str, bool] | None:
    return None if parts is None else (parts[0], parts[1], impl._is_valid(*parts))


def _bodies() -> list[str]:
    rng = random.Random(20261123)
    bodies = set()
    for e164 in EXAMPLES:
        number = phonenumbers.parse("+" + e164)
        nsn = phonenumbers.national_significant_number(number)
        national = "".join(
            c for c in phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL) if c.isdigit()
        )
        bodies.update([e164, nsn, national, "0" + nsn, "1" + nsn, e164[:-1], e164 + "7"])
    for _ in range(1000):
        bodies.add("".join(rng.choice("0123456789") for _ in range(rng.randint(3, 18))))
        bodies.add(rng.choice(["", "1"]) + str(rng.randint(2, 9)) + f"{rng.randrange(10**9):09d}")
    return sorted(bodies)


def test_fast_path_agrees_with_libphonenumber() -> None:
    """Every reading the fast path takes equals parse + is_valid_number (a fuller sweep ran offline)."""
    regions = ["US", "CA", "BS", "GB", "DE", "IT", "BR", "IN", "KZ", "AR"]
    for body in _bodies():
        assert _fast(impl._international(body)) == _reference("+" + body, None), body
        for region in regions:
            assert _fast(impl._national(body, region)) == _reference(body, region), (body, region)


FORMATS: tuple[PhoneFormat | None, ...] = (None, "international", "national")


def _nanp_numbers() -> list[str]:
    """1 + ten digits: every area code (0xx-9xx) with random exchanges and lines, plus the examples."""
    rng = random.Random(5)
    numbers = {e for e in EXAMPLES if len(e) == 11 and e[0] == "1"}
    for area in range(1000):
        for _ in range(12):
            numbers.add(f"1{area:03d}{rng.randrange(10**7):07d}")
    for _ in range(5000):
        numbers.add(f"1{rng.randrange(2, 10)}{rng.randrange(10**9):09d}")
    return sorted(numbers)


def test_canonical_nanp_answers_as_normalize_phone_and_libphonenumber() -> None:
    """Over ~17,000 numbers, each region and phone_format: True means normalize_phone returns the value,
    False that it refuses it (as does libphonenumber's is_valid_number), None only off the shape."""
    checked = 0
    for raw in _nanp_numbers():
        fast = canonical_nanp(raw)
        if fast is None:
            assert raw[1] in "01", raw
            continue
        checked += 1
        parsed = phonenumbers.parse("+" + raw)
        assert fast == phonenumbers.is_valid_number(parsed), raw
        for region in ("US", "CA"):
            for phone_format in FORMATS:
                try:
                    outcome: str | None = normalize_phone(raw, region=region, phone_format=phone_format)
                except InvalidIdentifier:
                    outcome = None
                assert outcome == (raw if fast else None), (raw, region, phone_format)
    assert checked > 10_000
    for raw in ("12672345678 ", "+12672345678", "1267234567", "112672345678", "１2672345678", "02672345678"):
        assert canonical_nanp(raw) is None, raw


def test_repeated_values_are_served_from_the_cache() -> None:
    impl.phone_cache_clear()
    normalize_phone("(267) 234-5678")
    normalize_phone("(267) 234-5678")
    info = impl._analyse.cache_info()
    assert info.hits >= 1
    assert info.maxsize == impl.PHONE_CACHE_SIZE


def test_emails() -> None:
    assert normalize_email(" Opt.Out@Example.COM ") == "opt.out@example.com"
    # Local part lower-cased (Unicode kept, SMTPUTF8); domain in its ASCII (IDNA/punycode) form.
    assert normalize_email("Ädmin@Bücher.de") == "ädmin@xn--bcher-kva.de"
    assert normalize_email("ädmin@xn--bcher-kva.de") == "ädmin@xn--bcher-kva.de"
    for bad in ["", "no-at-sign", "a@", "@b.com", "a b@c.com", "a@b", "x@-bad-.com", "Name <a@b.com>"]:
        with pytest.raises(InvalidIdentifier) as err:
            normalize_email(bad)
        assert err.value.code == "invalid_email"
        assert err.value.reason


@settings(max_examples=100, deadline=None)
@given(st.emails())
def test_email_normalization_is_idempotent(raw: str) -> None:
    try:
        once = normalize_email(raw)
    except InvalidIdentifier:
        return
    assert normalize_email(once) == once
    assert once == once.strip()
    assert once.split("@")[1].isascii()


def test_opaque_ids_and_dispatch() -> None:
    assert normalize_opaque("  P-1 ") == "P-1"
    assert normalize_opaque("x" * 256) == "x" * 256
    for bad in ["", "   ", "x" * 257]:
        with pytest.raises(InvalidIdentifier) as err:
            normalize_opaque(bad)
        assert err.value.code == "invalid_identifier"
    assert normalize_identifier("client_id", " c1 ") == Identifier("client_id", "c1")
    assert normalize_identifier("person_id", "Ab") == Identifier("person_id", "Ab")
    assert normalize_identifier("email", "A@B.COM") == Identifier("email", "a@b.com")
    assert normalize_identifier("phone", "(267) 234-5678") == Identifier("phone", "12672345678")
    assert identifier_readings("email", "A@B.COM") == (Identifier("email", "a@b.com"),)
    with pytest.raises(InvalidIdentifier) as err:
        normalize_identifier("fax", "1")
    assert err.value.code == "invalid_identifier"


def test_detect_type_follows_the_import_rule() -> None:
    assert detect_type("a@b.com") == "email"
    assert detect_type("+44 20 7946 0958") == "phone"
    assert detect_type("not-a-phone") == "phone"  # then rejected as an invalid phone


def test_channels() -> None:
    assert CHANNELS == ("voice", "sms", "whatsapp", "viber", "email", "messenger")
    assert validate_channel("phone", None) is None
    assert validate_channel("email", None) is None
    for channel in CHANNELS:
        assert validate_channel("phone", channel) == channel
    assert validate_channel("email", "email") == "email"
    for id_type, channel in [("email", "sms"), ("email", "voice"), ("phone", "pigeon"), ("phone", "SMS")]:
        with pytest.raises(InvalidIdentifier) as err:
            validate_channel(id_type, channel)
        assert err.value.code == "invalid_channel"


def test_identifier_in_model_keeps_the_raw_value() -> None:
    model = IdentifierIn.model_validate({"type": "phone", "value": " (267) 234-5678 "})
    assert model.value == " (267) 234-5678 "
    with pytest.raises(ValidationError):
        IdentifierIn.model_validate({"type": "fax", "value": "1"})
    with pytest.raises(ValidationError):
        IdentifierIn.model_validate({"type": "phone", "value": "1" * 513})

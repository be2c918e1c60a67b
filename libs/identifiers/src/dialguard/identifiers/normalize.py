"""Identifier normalization of CONTRACT §4: E.164 phones (libphonenumber), emails, opaque ids, channels."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, get_args

import phonenumbers
from email_validator import EmailNotValidError, validate_email

IdentifierType = Literal["phone", "email", "person_id", "client_id"]
Channel = Literal["voice", "sms", "whatsapp", "viber", "email", "messenger"]
PhoneFormat = Literal["international", "national"]
IDENTIFIER_TYPES: tuple[str, ...] = get_args(IdentifierType)
CHANNELS: tuple[str, ...] = get_args(Channel)

_FORMATTING = re.compile(r"[\s\-.()/]")
_DIGITS = re.compile(r"\d+")


class InvalidIdentifier(ValueError):
    """A value that cannot be an identifier of its type; `code` and `reason` go into the API error."""

    def __init__(self, code: str, reason: str, readings: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.readings = readings


class AmbiguousPhone(InvalidIdentifier):
    """Valid both as international-without-plus and as national: the caller must say which."""

    def __init__(self, readings: tuple[str, ...]) -> None:
        super().__init__(
            "ambiguous_phone",
            f"ambiguous: valid as +{readings[0]} (international) and +{readings[1]} (national); "
            "pass phone_format",
            readings,
        )


@dataclass(frozen=True, slots=True)
class Identifier:
    """A normalized identifier."""

    type: str
    value: str


def _e164_digits(number: phonenumbers.PhoneNumber) -> str:
    return f"{number.country_code}{number.national_number}"


def _parse_valid(text: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return _e164_digits(number) if phonenumbers.is_valid_number(number) else None


@lru_cache(maxsize=262_144)
def _phone_readings(raw: str, region: str) -> tuple[tuple[str, ...], str]:
    """(valid readings, reason if none): international first, then national; cached as dialers repeat numbers."""
    text = raw.strip()
    if not text:
        return (), "empty phone number"
    compact = _FORMATTING.sub("", text)
    international = compact.startswith("+") or compact.startswith("00")
    body = compact[1:] if compact.startswith("+") else compact[2:] if compact.startswith("00") else compact
    if not body.isdigit() or not body.isascii():
        return (), "a phone number may contain only digits, spaces, dashes, dots, parentheses and a leading +"
    if len(body) < 5 or len(body) > 17:
        return (), f"{len(body)} digits is not a plausible phone number length"
    if international:
        reading = _parse_valid("+" + body, None)
        return ((reading,), "") if reading else ((), "not a valid international number")
    readings: list[str] = []
    as_international = _parse_valid("+" + body, None)
    if as_international:
        readings.append(as_international)
    as_national = _parse_valid(body, region)
    if as_national and as_national not in readings:
        readings.append(as_national)
    if not readings:
        return (), f"not a valid number internationally or nationally in {region}"
    return tuple(readings), ""


def phone_readings(raw: str, *, region: str = "US") -> tuple[str, ...]:
    """Every valid reading (one, or two when ambiguous); LeadStopped stops all of them, checks answer all."""
    readings, reason = _phone_readings(raw, region.upper())
    if not readings:
        raise InvalidIdentifier("invalid_phone", reason)
    return readings


def normalize_phone(raw: str, *, region: str = "US", phone_format: PhoneFormat | None = None) -> str:
    """E.164 digits without +; ambiguous input is refused unless phone_format picks the reading."""
    if phone_format is not None:
        compact = _FORMATTING.sub("", raw.strip())
        if phone_format == "national" and not compact.startswith(("+", "00")):
            reading = _parse_valid(compact, region.upper())
            if reading is None:
                raise InvalidIdentifier("invalid_phone", f"not a valid national number in {region}")
            return reading
        body = compact.lstrip("+")
        body = body[2:] if compact.startswith("00") else body
        reading = _parse_valid("+" + body, None)
        if reading is None:
            raise InvalidIdentifier("invalid_phone", "not a valid international number")
        return reading
    readings = phone_readings(raw, region=region)
    if len(readings) > 1:
        raise AmbiguousPhone(readings)
    return readings[0]


def normalize_email(raw: str) -> str:
    """Trimmed, lower-cased, IDNA (ASCII) domain; syntax only, no DNS."""
    text = raw.strip()
    if not text:
        raise InvalidIdentifier("invalid_email", "empty email address")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidIdentifier("invalid_email", str(exc)) from exc
    domain = result.ascii_domain or result.domain
    return f"{result.local_part}@{domain}".lower()


def normalize_opaque(raw: str, *, kind: str = "identifier") -> str:
    """person_id / client_id: trimmed, 1-256 characters."""
    text = raw.strip()
    if not 1 <= len(text) <= 256:
        raise InvalidIdentifier("invalid_identifier", f"{kind} must be 1-256 characters after trimming")
    return text


def normalize_identifier(
    id_type: str, value: str, *, region: str = "US", phone_format: PhoneFormat | None = None
) -> Identifier:
    """One normalized identifier, or InvalidIdentifier (AmbiguousPhone for two valid readings)."""
    if id_type == "phone":
        return Identifier("phone", normalize_phone(value, region=region, phone_format=phone_format))
    if id_type == "email":
        return Identifier("email", normalize_email(value))
    if id_type in ("person_id", "client_id"):
        return Identifier(id_type, normalize_opaque(value, kind=id_type))
    raise InvalidIdentifier(
        "invalid_identifier", f"unknown identifier type {id_type!r}; one of {IDENTIFIER_TYPES}"
    )


def identifier_readings(id_type: str, value: str, *, region: str = "US") -> tuple[Identifier, ...]:
    """All readings of an identifier: two for an ambiguous phone, else one."""
    if id_type == "phone":
        return tuple(Identifier("phone", r) for r in phone_readings(value, region=region))
    return (normalize_identifier(id_type, value, region=region),)


def detect_type(value: str) -> IdentifierType:
    """The import `identifier` column rule: a value containing @ is an email, anything else a phone."""
    return "email" if "@" in value else "phone"


def validate_channel(id_type: str, channel: str | None) -> str | None:
    """A known channel or None (= all); an email may only carry channel email or None."""
    if channel is None:
        return None
    if channel not in CHANNELS:
        raise InvalidIdentifier("invalid_channel", f"unknown channel {channel!r}; one of {CHANNELS}")
    if id_type == "email" and channel != "email":
        raise InvalidIdentifier(
            "invalid_channel", "an email identifier may only carry channel 'email' or null"
        )
    return channel


_NANP_REGIONS = frozenset(
    {
        "US",
        "CA",
        "PR",
        "VI",
        "GU",
        "AS",
        "MP",
        "AG",
        "AI",
        "BB",
        "BM",
        "BS",
        "DM",
        "DO",
        "GD",
        "JM",
        "KN",
        "KY",
        "LC",
        "MS",
        "SX",
        "TC",
        "TT",
        "VC",
        "VG",
    }
)


def phone_candidates(raw: str, *, region: str = "US") -> tuple[str, ...]:
    """Readings a check must look up, without validating them (the hot path of batch checks).

    Stored entries are valid E.164 numbers, so an invalid candidate can only fail to match: it can
    neither hide a suppressed number nor invent one. Raises InvalidIdentifier for non-digit input.
    """
    compact = _FORMATTING.sub("", raw.strip())
    if compact.startswith("+"):
        body, international = compact[1:], True
    elif compact.startswith("00"):
        body, international = compact[2:], True
    else:
        body, international = compact, False
    if not body.isdigit() or not body.isascii() or not 5 <= len(body) <= 17:
        raise InvalidIdentifier("invalid_phone", "a phone number needs 5-17 digits and no letters")
    if international:
        return (body,)
    region = region.upper()
    if region in _NANP_REGIONS:
        if len(body) == 10:
            return (body, "1" + body)
        if len(body) == 11 and body[0] == "1":
            return (body,)
    return _national_candidates(body, region)


@lru_cache(maxsize=65_536)
def _national_candidates(body: str, region: str) -> tuple[str, ...]:
    try:
        national = _e164_digits(phonenumbers.parse(body, region))
    except phonenumbers.NumberParseException:
        return (body,)
    return (body,) if national == body else (body, national)

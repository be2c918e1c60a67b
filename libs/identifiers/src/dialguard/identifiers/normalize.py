"""Identifier normalization of CONTRACT §4: E.164 phones (libphonenumber), emails, opaque ids, channels.

Phones are read with libphonenumber's rules, but its `parse` + `is_valid_number` cost ~100 µs per
reading in pure Python. For digit strings the result of `parse` is fully determined by a few metadata
regexes (IDD, national-prefix-for-parsing, country code); when none of them fires, the fast path
below takes the digits as they are and tests validity against the same metadata patterns,
precompiled, mirroring `is_valid_number` step by step. Anything else falls back to libphonenumber
itself, and the test suite checks both paths agree on random and example numbers of every region.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Literal, NamedTuple, get_args

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneMetadata, ValidationResult
from pydantic import BaseModel, Field

IdentifierType = Literal["phone", "email", "person_id", "client_id"]
Channel = Literal["voice", "sms", "whatsapp", "viber", "email", "messenger"]
PhoneFormat = Literal["international", "national"]
IDENTIFIER_TYPES: tuple[IdentifierType, ...] = get_args(IdentifierType)
CHANNELS: tuple[Channel, ...] = get_args(Channel)
_CHANNEL_BY_NAME: dict[str, Channel] = {c: c for c in CHANNELS}

PHONE_CACHE_SIZE = 100_000  # 400-500 bytes an entry (~45 MiB full); a miss costs only the fast path
_MAX_PHONE_CHARS = 64
_MAX_PHONE_DIGITS = 20
_FORMATTING = re.compile(r"[\s\-.()/\u2010-\u2015\u2212]")


class InvalidIdentifier(ValueError):
    """A value that cannot be an identifier of its type; `code` and `reason` go into the API error."""

    def __init__(self, code: str, reason: str, readings: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.readings = readings


class AmbiguousPhone(InvalidIdentifier):
    """Valid both as international-without-plus and as national: adding it needs phone_format."""

    def __init__(self, readings: tuple[str, ...], region: str = "") -> None:
        national = f"national in {region}" if region else "national"
        super().__init__(
            "ambiguous_phone",
            f"ambiguous: valid as +{readings[0]} (international) and as +{readings[1]} ({national}); "
            "pass phone_format international or national",
            readings,
        )


@dataclass(frozen=True, slots=True)
class Identifier:
    """A normalized identifier, the form stored, published and matched."""

    type: IdentifierType
    value: str


class IdentifierIn(BaseModel):
    """Raw identifier as received; handlers normalize it (region-dependent) and map errors to 422."""

    type: IdentifierType
    value: str = Field(max_length=512)


# --- phones: libphonenumber reference path ------------------------------------------------------


def _nsn_of(number: phonenumbers.PhoneNumber) -> tuple[int, str]:
    """(country code, national significant number) keeping Italian-style leading zeros."""
    return number.country_code or 0, phonenumbers.national_significant_number(number)


def _parse_slow(text: str, region: str | None) -> tuple[int, str] | None:
    """libphonenumber's own parse; None when it refuses the string."""
    try:
        return _nsn_of(phonenumbers.parse(text, region))
    except phonenumbers.NumberParseException:
        return None


def _number(cc: int, nsn: str) -> phonenumbers.PhoneNumber:
    """The PhoneNumber libphonenumber's parse builds for these digits (leading zeros kept)."""
    zeros = len(nsn) - len(nsn.lstrip("0"))
    italian = len(nsn) > 1 and zeros > 0
    return phonenumbers.PhoneNumber(
        country_code=cc,
        national_number=int(nsn),
        italian_leading_zero=True if italian else None,
        number_of_leading_zeros=min(zeros, len(nsn) - 1) if italian and zeros > 1 else None,
    )


# --- phones: precompiled metadata for the fast path ---------------------------------------------


class _Desc(NamedTuple):
    lengths: frozenset[int] | None
    pattern: re.Pattern[str]

    def matches(self, nsn: str) -> bool:
        """`_is_number_matching_desc`: length listed (if any are) and the pattern matches whole."""
        return (self.lengths is None or len(nsn) in self.lengths) and self.pattern.fullmatch(nsn) is not None


def _desc(desc: Any) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = frozenset(desc.possible_length) if desc.possible_length else None
    return _Desc(lengths, re.compile(desc.national_number_pattern))


_TYPE_FIELDS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
)


class _Region(NamedTuple):
    leading_digits: re.Pattern[str] | None
    by_length: dict[int, re.Pattern[str] | None]  # every length some pattern lists
    other_lengths: re.Pattern[str] | None  # lengths no pattern lists

    def valid(self, nsn: str) -> bool:
        """`_number_type_helper(...) != UNKNOWN`: the general pattern and at least one type pattern."""
        check = self.by_length.get(len(nsn), self.other_lengths)
        return check is not None and check.fullmatch(nsn) is not None


def _region_rules(metadata: Any) -> _Region:
    """Per length, one regex: a lookahead for the general pattern, then the type patterns allowing that length."""
    leading = re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None
    general = _desc(metadata.general_desc)
    if general is None:
        return _Region(leading, {}, None)
    fields = list(_TYPE_FIELDS)
    if not metadata.same_mobile_and_fixed_line_pattern:
        fields.append("mobile")
    types = [d for d in (_desc(getattr(metadata, f)) for f in fields) if d is not None]

    def check(length: int | None) -> re.Pattern[str] | None:
        if general.lengths is not None and (length is None or length not in general.lengths):
            return None
        allowed = [d for d in types if d.lengths is None or (length is not None and length in d.lengths)]
        if not allowed:
            return None
        alternatives = "|".join(f"(?:{d.pattern.pattern})" for d in allowed)
        return re.compile(f"(?=(?:{general.pattern.pattern})\\Z)(?:{alternatives})")

    lengths = {n for d in (general, *types) if d.lengths is not None for n in d.lengths}
    return _Region(leading, {n: check(n) for n in lengths}, check(None))


class _Parsing(NamedTuple):
    """What `parse` consults for a country code's main region (or a default region)."""

    cc: int
    cc_str: str
    idd: re.Pattern[str] | None
    national_prefix: re.Pattern[str] | None
    max_length: int  # longest possible national number (0: unknown, never fast)
    local_only: frozenset[int]


def _parsing(metadata: Any) -> _Parsing:
    idd = re.compile(metadata.international_prefix) if metadata.international_prefix else None
    npfp = metadata.national_prefix_for_parsing
    general = metadata.general_desc
    lengths = general.possible_length if general is not None else ()
    return _Parsing(
        metadata.country_code,
        str(metadata.country_code),
        idd,
        re.compile(npfp) if npfp else None,
        lengths[-1] if lengths else 0,
        frozenset(general.possible_length_local_only or ()) if general is not None else frozenset(),
    )


def _load_validity_rules(cc: int) -> tuple[_Region, ...]:
    """Rules of every region sharing the code, in libphonenumber's order (first is the main one)."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(cc, ())
    if regions == (phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY,):
        metadata = PhoneMetadata.metadata_for_nongeo_region(cc, None)
        return (_region_rules(metadata),) if metadata is not None else ()
    found = (PhoneMetadata.metadata_for_region(r.upper(), None) for r in regions)
    return tuple(_region_rules(m) for m in found if m is not None)


_VALIDITY: dict[int, tuple[bool, tuple[_Region, ...]]] = {}  # cc -> (single region, rules); filled lazily
_CC_BY_PREFIX: dict[str, int] = {str(cc): cc for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}


@cache
def _cc_parsing(cc: int) -> _Parsing | None:
    """Parsing rules of the country code's main region, which `parse` uses after a + and a code."""
    region = phonenumbers.region_code_for_country_code(cc)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
    return _parsing(metadata) if metadata is not None else None


@cache
def _region_parsing(region: str) -> _Parsing | None:
    metadata = PhoneMetadata.metadata_for_region(region, None)
    return _parsing(metadata) if metadata is not None else None


def _is_valid(cc: int, nsn: str) -> bool:
    """`is_valid_number` for (cc, nsn): region by leading digits or first match, then its patterns."""
    entry = _VALIDITY.get(cc)
    if entry is None:
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(cc, ())
        entry = _VALIDITY[cc] = (len(regions) == 1, _load_validity_rules(cc))
    single, rules = entry
    if single:
        return bool(rules) and rules[0].valid(nsn)
    for region in rules:
        if region.leading_digits is not None:
            if region.leading_digits.match(nsn):
                return region.valid(nsn)
        elif region.valid(nsn):
            return True
    return False


def _international(body: str) -> tuple[int, str] | None:
    """parse('+' + body): country code by the 1-3 digit rule; the rest as is unless a national prefix may strip."""
    if len(body) <= 2 or body[0] == "0":
        return None
    for size in (1, 2, 3):
        cc = _CC_BY_PREFIX.get(body[:size])
        if cc is not None:
            rest = body[size:]
            rules = _cc_parsing(cc)
            if rules is None or (rules.national_prefix is not None and rules.national_prefix.match(rest)):
                return _parse_slow("+" + body, None)
            return (cc, rest) if 2 <= len(rest) <= 17 else None
    return None


def _national(body: str, region: str) -> tuple[int, str] | None:
    """parse(body, region): the digits as they are unless an IDD, the region's code or a national prefix may apply."""
    rules = _region_parsing(region)
    if rules is None:
        return None
    if len(body) < 3 or (rules.idd is not None and rules.idd.match(body)):
        return _parse_slow(body, region)
    if body.startswith(rules.cc_str):
        # The region's own code in front ("1 267 234 5678" in US): parse strips it when the whole is
        # too long for the region (other cases depend on pattern matches, left to parse itself).
        rest = body[len(rules.cc_str) :]
        main = _cc_parsing(rules.cc)
        if (
            rules.max_length == 0
            or len(body) <= rules.max_length
            or len(body) in rules.local_only
            or main is None
            or (rules.national_prefix is not None and rules.national_prefix.match(rest))
            or (main.national_prefix is not None and main.national_prefix.match(rest))
        ):
            return _parse_slow(body, region)
        return (rules.cc, rest) if 2 <= len(rest) <= 17 else None
    if rules.national_prefix is not None and rules.national_prefix.match(body):
        return _parse_slow(body, region)
    return (rules.cc, body) if len(body) <= 17 else None


# --- phones: readings ----------------------------------------------------------------------------


class _Phone(NamedTuple):
    """Cached analysis of one raw value: malformed (error), or its international / national readings."""

    error: str
    explicit: bool  # written with + or 00: only the international reading exists
    intl: str  # E.164 digits of the international reading ("" when it does not parse)
    intl_cc: int
    natl: str  # E.164 digits of the national reading ("" when it does not parse or is not taken)
    natl_cc: int
    readings: tuple[str, ...]  # the valid ones, international first, without duplicates


def _malformed(error: str, explicit: bool = False) -> _Phone:
    return _Phone(error, explicit, "", 0, "", 0, ())


def _supported_region(region: str) -> str:
    upper = region.upper()
    if upper not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidIdentifier(
            "invalid_region", f"unknown phone region {region!r}; ISO 3166 alpha-2 expected"
        )
    return upper


_MALFORMED = "a phone number may contain only digits, spaces, dashes, dots, parentheses and a leading + or 00"


def _split(raw: str) -> tuple[str, bool, str]:
    """(error, written international, digits after any + / 00): the formatting-free core of a raw phone."""
    if len(raw) > _MAX_PHONE_CHARS:
        return f"too long ({len(raw)} characters)", False, ""
    compact = raw if raw.isascii() and raw.isdigit() else _FORMATTING.sub("", raw)
    if not compact:
        return "empty phone number", False, ""
    explicit = compact.startswith(("+", "00"))
    body = compact[1:] if compact[0] == "+" else compact[2:] if explicit else compact
    if not (body.isascii() and body.isdigit()):
        return _MALFORMED, explicit, body
    if len(body) > _MAX_PHONE_DIGITS:
        return f"too long ({len(body)} digits)", explicit, body
    return "", explicit, body


@lru_cache(maxsize=PHONE_CACHE_SIZE)
def _analyse(raw: str, region: str) -> _Phone:
    """Both readings of a raw phone with their validity; cached because dialers and files repeat numbers."""
    error, explicit, body = _split(raw)
    if error:
        return _malformed(error, explicit)
    intl = _international(body)
    natl = None if explicit else _national(body, region)
    readings: tuple[str, ...] = ()
    intl_digits = natl_digits = ""
    if intl is not None:
        intl_digits = f"{intl[0]}{intl[1]}"
        intl_digits = body if intl_digits == body else intl_digits  # one string, not two, in the cache
        if _is_valid(*intl):
            readings = (intl_digits,)
    if natl is not None:
        natl_digits = f"{natl[0]}{natl[1]}"
        if natl != intl and natl_digits not in readings and _is_valid(*natl):
            readings = (*readings, natl_digits)
    return _Phone(
        "", explicit, intl_digits, intl[0] if intl else 0, natl_digits, natl[0] if natl else 0, readings
    )


def _analysed(raw: str, region: str) -> _Phone:
    region = _supported_region(region)
    if len(raw) > _MAX_PHONE_CHARS:  # refused before the cache, which must not hold huge keys
        return _malformed(f"too long ({len(raw)} characters)")
    return _analyse(raw, region)


_WHY = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong number of digits",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without its area code",
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.IS_POSSIBLE: "not an assigned number range",
}


def _why(digits: str, cc: int, parts_hint: str, *, national: bool) -> str:
    """Human reason one reading is not a valid number (error path only)."""
    if not digits:
        return parts_hint
    why = phonenumbers.is_possible_number_with_reason(_number(cc, digits[len(str(cc)) :]))
    if why == ValidationResult.IS_POSSIBLE_LOCAL_ONLY and not national:
        return "too short"
    return _WHY.get(why, "not a valid number")


def _reason(phone: _Phone, raw: str, region: str, wanted: PhoneFormat | None = None) -> str:
    """Why no (wanted) reading of the value is a valid number."""
    if phone.error:
        return phone.error
    body = _split(raw)[2]
    why = _why(phone.intl, phone.intl_cc, "unknown country code or wrong length", national=False)
    intl = f"as international +{body}: {why}"
    if phone.explicit or wanted == "international":
        return f"not a valid phone number {intl}"
    why = _why(phone.natl, phone.natl_cc, "wrong length", national=True)
    natl = f"as a national number in {region}: {why}"
    if wanted == "national":
        return f"not a valid phone number {natl}"
    return f"not a valid phone number {intl}; {natl}"


def warm_phone_rules(region: str) -> None:
    """Build the region's country-code rules at start-up: for +1 (the 25 NANP regions) that is ~100 ms of
    regex compiling, which would otherwise stall the first request of each worker that reads a phone."""
    cc = phonenumbers.country_code_for_region(region.upper())
    if cc:
        _is_valid(cc, "0")
        _cc_parsing(cc)
        _region_parsing(region.upper())


def phone_readings(raw: str, *, region: str = "US") -> tuple[str, ...]:
    """Every valid reading (one, or two when ambiguous); LeadStopped stops all of them, checks answer all."""
    phone = _analysed(raw, region)
    readings = phone.readings
    if not readings:
        raise InvalidIdentifier("invalid_phone", _reason(phone, raw, region.upper()))
    return readings


def normalize_phone(raw: str, *, region: str = "US", phone_format: PhoneFormat | None = None) -> str:
    """E.164 digits without +; an ambiguous value is refused unless phone_format names the reading."""
    # phone_format is honoured strictly for values without + / 00 (the caller says how its numbers
    # are written), so a value valid only in the other reading is invalid; + / 00 is international.
    phone = _analysed(raw, region)
    if phone_format is None or phone.explicit or phone.error:
        readings = phone.readings
        if len(readings) == 2:
            raise AmbiguousPhone(readings, region.upper())
        if readings:
            return readings[0]
        raise InvalidIdentifier("invalid_phone", _reason(phone, raw, region.upper()))
    chosen = phone.intl if phone_format == "international" else phone.natl
    if not chosen or chosen not in phone.readings:
        raise InvalidIdentifier("invalid_phone", _reason(phone, raw, region.upper(), phone_format))
    return chosen


_NANP_FAST_REGIONS = frozenset({"US", "CA"})


def canonical_nanp_region(region: str) -> bool:
    """True when, in this region, 11 ASCII digits starting with 1 are their own only candidate
    (phone_candidates' fast path), so batch callers can skip the call for the dialer's common case."""
    return _supported_region(region) in _NANP_FAST_REGIONS


def canonical_nanp(raw: str) -> bool | None:
    """In a region where canonical_nanp_region holds: None unless raw is 1 + ten ASCII digits with an area
    code starting 2-9, whose every reading (international, national, any phone_format) is raw itself; then
    whether it is a valid number, i.e. whether normalize_phone returns raw (False: it raises). The
    metadata patterns only, without the per-value analysis: a file of a million distinct numbers."""
    if len(raw) != 11 or raw[0] != "1" or raw[1] not in "23456789" or not (raw.isascii() and raw.isdigit()):
        return None
    return _is_valid(1, raw[1:])


def phone_candidates(raw: str, *, region: str = "US") -> tuple[str, ...]:
    """Readings a check looks up, valid or not: a superset of phone_readings, so never a false negative."""
    # An invalid candidate can only fail to match, while keeping it means an entry stored under
    # older libphonenumber metadata still matches; so no validity test here, only parsing.
    upper = _supported_region(region)
    if raw.isdigit() and raw.isascii() and upper in _NANP_FAST_REGIONS:
        # Canonical digits, the dialer's common case. 1 + ten digits reads the same both ways (or
        # is invalid both ways). Ten digits starting 2-9 read nationally as 1 + digits (no IDD,
        # national prefix or country code can apply); the international reading may still lose a
        # national prefix ("4408001111" is +44 800 1111), so it comes from the exact parser.
        if len(raw) == 11 and raw[0] == "1":
            return (raw,)
        if len(raw) == 10 and raw[0] in "23456789":
            intl = _international(raw)
            return ("1" + raw,) if intl is None else (f"{intl[0]}{intl[1]}", "1" + raw)
    error, explicit, body = _split(raw)
    if error:
        raise InvalidIdentifier("invalid_phone", error)
    out: list[str] = []
    for parts in (_international(body), None if explicit else _national(body, upper)):
        if parts is not None and f"{parts[0]}{parts[1]}" not in out:
            out.append(f"{parts[0]}{parts[1]}")
    if not out:
        raise InvalidIdentifier("invalid_phone", _reason(_analysed(raw, upper), raw, upper))
    return tuple(out)


def phone_cache_clear() -> None:
    """Drop cached phone analyses (tests, or after swapping libphonenumber metadata)."""
    _analyse.cache_clear()


# --- other identifiers ---------------------------------------------------------------------------


def normalize_email(raw: str) -> str:
    """Trimmed, lower-cased (local part too: mailboxes are case-blind in practice), ASCII (IDNA) domain."""
    text = raw.strip()
    if not text:
        raise InvalidIdentifier("invalid_email", "empty email address")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidIdentifier("invalid_email", str(exc)) from exc
    domain = result.ascii_domain or result.domain
    return f"{result.local_part.lower()}@{domain.lower()}"


def normalize_opaque(raw: str, *, kind: str = "identifier") -> str:
    """person_id / client_id: trimmed, 1-256 characters, otherwise opaque (case kept)."""
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
        kind: IdentifierType = "person_id" if id_type == "person_id" else "client_id"
        return Identifier(kind, normalize_opaque(value, kind=kind))
    raise InvalidIdentifier(
        "invalid_identifier", f"unknown identifier type {id_type!r}; one of {', '.join(IDENTIFIER_TYPES)}"
    )


def identifier_readings(id_type: str, value: str, *, region: str = "US") -> tuple[Identifier, ...]:
    """All readings of an identifier: two for an ambiguous phone, else one."""
    if id_type == "phone":
        return tuple(Identifier("phone", r) for r in phone_readings(value, region=region))
    return (normalize_identifier(id_type, value, region=region),)


def detect_type(value: str) -> IdentifierType:
    """The import `identifier` column rule: a value containing @ is an email, anything else a phone."""
    return "email" if "@" in value else "phone"


def validate_channel(identifier_type: str, channel: str | None) -> Channel | None:
    """A known channel or None (= all channels); an email may only carry channel email or None."""
    if channel is None:
        return None
    known = _CHANNEL_BY_NAME.get(channel)
    if known is None:
        raise InvalidIdentifier(
            "invalid_channel", f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}"
        )
    if identifier_type == "email" and known != "email":
        raise InvalidIdentifier(
            "invalid_channel", "an email identifier may only carry channel 'email' or null"
        )
    return known

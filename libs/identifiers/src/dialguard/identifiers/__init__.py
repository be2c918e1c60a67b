"""Identifier normalization shared by every service (CONTRACT §4)."""

from dialguard.identifiers.normalize import (
    CHANNELS,
    IDENTIFIER_TYPES,
    AmbiguousPhone,
    Identifier,
    InvalidIdentifier,
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

__all__ = [
    "CHANNELS",
    "IDENTIFIER_TYPES",
    "AmbiguousPhone",
    "Identifier",
    "InvalidIdentifier",
    "detect_type",
    "identifier_readings",
    "normalize_email",
    "normalize_identifier",
    "normalize_opaque",
    "normalize_phone",
    "phone_candidates",
    "phone_readings",
    "validate_channel",
]

"""How identifiers in consumed events are read before matching stored (normalized) units."""

from __future__ import annotations

from dialguard.contact_list.subscribers import _readings
from dialguard.identifiers import InvalidIdentifier, identifier_readings


def test_canonical_digits_are_taken_as_published() -> None:
    # 2032345678 is +20 (Egypt) as published; read nationally in the US it would be another number.
    assert _readings("phone", "2032345678", "US") == ["2032345678"]


def test_raw_input_is_normalized() -> None:
    assert _readings("phone", "+1 (267) 234-5678", "US") == ["12672345678"]
    assert _readings("email", " Ann@Example.COM ", "US") == ["ann@example.com"]


def test_emails_read_as_the_full_normalizer_reads_them() -> None:
    # The consumer's email fast path (domain validated once per distinct domain) against
    # identifier_readings, which validates every address in full; refused ones are taken as published.
    samples = [
        "c1@example.com",
        "A.B@Example.COM",
        " x@example.com ",
        "a+b@sub.example.co.uk",
        "a@münchen.de",
        "ä@example.com",
        "a..b@example.com",
        "a@localhost",
        "a@example.invalid",
        '"q"@example.com',
        "@example.com",
        "x" * 65 + "@example.com",
        *(f"user{i}@d{i % 7}.example.org" for i in range(50)),
    ]
    for raw in samples:
        try:
            expected = [r.value for r in identifier_readings("email", raw, region="US")]
        except InvalidIdentifier:
            expected = [raw]
        assert _readings("email", raw, "US") == expected, raw

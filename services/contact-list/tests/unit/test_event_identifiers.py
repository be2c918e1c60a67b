"""How identifiers in consumed events are read before matching stored (normalized) units."""

from __future__ import annotations

from dialguard.contact_list.subscribers import _readings


def test_canonical_digits_are_taken_as_published() -> None:
    # 2032345678 is +20 (Egypt) as published; read nationally in the US it would be another number.
    assert _readings("phone", "2032345678", "US") == ["2032345678"]


def test_raw_input_is_normalized() -> None:
    assert _readings("phone", "+1 (267) 234-5678", "US") == ["12672345678"]
    assert _readings("email", " Ann@Example.COM ", "US") == ["ann@example.com"]

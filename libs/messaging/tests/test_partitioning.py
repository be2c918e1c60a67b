"""The relay's partitions must be exactly those of Kafka's default partitioner (Java murmur2)."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from dialguard.messaging.partitioning import murmur2 as murmur2_many
from dialguard.messaging.partitioning import partitions_for_keys


def test_known_java_values() -> None:
    # Values from Kafka's own UtilsTest (murmur2 of these strings, as signed Java ints).
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536}
    got = murmur2_many(list(cases)).astype("int64")
    assert [int(v) - (1 << 32) if v >= 1 << 31 else int(v) for v in got] == list(cases.values())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=70), min_size=1, max_size=40))
def test_murmur2_matches_aiokafka_for_any_keys(keys: list[bytes]) -> None:
    assert murmur2_many(keys).tolist() == [murmur2(k) for k in keys]


def test_partitions_match_the_default_partitioner() -> None:
    rng = random.Random(3)
    keys = [f"acme:phone:1{rng.randrange(10**10):010d}".encode() for _ in range(2000)]
    for count in (1, 3, 6, 12):
        parts = list(range(count))
        assert partitions_for_keys(keys, count) == [DefaultPartitioner()(k, parts, parts) for k in keys]
    mixed = partitions_for_keys([None, b"a", None], 6)
    assert mixed[1] == DefaultPartitioner()(b"a", list(range(6)), list(range(6)))
    assert all(0 <= p < 6 for p in mixed)

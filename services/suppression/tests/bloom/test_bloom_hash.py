"""Pure parts of the bitmap filter: hashing, sizing, wire encoding, false-positive rate."""

from __future__ import annotations

from typing import Any

import hiredis
import numpy as np
import pytest

from dialguard.suppression import bloom_hash as bh


def _phones(start: int, stop: int, step: int = 1) -> list[bytes]:
    return [b"phone:1%010d" % i for i in range(start, stop, step)]


def test_hash_is_pinned_so_every_process_and_version_sets_the_same_bits() -> None:
    a, b = bh.hash_keys([b"phone:12672345678", b"email:a@example.com", b""])
    assert a.tolist() == PINNED_A
    assert b.tolist() == PINNED_B


PINNED_A = [15688924475859152267, 11009350172393930662, 11691053796026047774]
PINNED_B = [17838116453273799554, 17987116914801103278, 15824301090701811199]


def test_hash_of_a_key_does_not_depend_on_the_rest_of_the_batch() -> None:
    keys = _phones(0, 500)
    alone = [bh.hash_keys([k]) for k in keys[:20]]
    mixed = [*keys[:20], b"person_id:" + b"x" * 300, b"p", b"email:someone@example.org"]
    a, b = bh.hash_keys(mixed)
    for i, (ai, bi) in enumerate(alone):
        assert (int(ai[0]), int(bi[0])) == (int(a[i]), int(b[i]))


def test_plain_int_hashing_probes_and_encoding_match_numpy() -> None:
    rng = np.random.default_rng(7)
    keys = [*_phones(0, 300), b"", b"\0", b"a\0\0", b"x" * 64, b"email:\xc3\xa9@example.com"]
    keys += [bytes(rng.integers(0, 256, int(rng.integers(0, 80)), dtype=np.uint8)) for _ in range(300)]
    a, b = bh.hash_keys(keys)
    for layout in (bh.Layout(nwords=64), bh.plan_layout(1_000_000), bh.Layout(nwords=12345, k1=3, k2=7)):
        p = bh.probes(layout, a, b)
        for i, key in enumerate(keys):
            assert bh.hash_key(key) == (int(a[i]), int(b[i])), key
            assert bh.probe_key(layout, key) == (int(p.w1[i]), int(p.m1[i]), int(p.w2[i]), int(p.m2[i])), key
    numbers = np.array([0, 1, 9, 10, 99, 100, 12345, 4_000_000_000], dtype=np.int64)
    body, order = bh.resp_get_words(numbers)
    assert order is not None
    ours = [bh.resp_get_word(int(w)) for w in numbers]
    assert b"".join(ours[int(i)] for i in order) == body  # reply slot j answers numbers[order[j]]
    same_width = np.array([100, 555, 999], dtype=np.int64)
    body, order = bh.resp_get_words(same_width)
    assert order is None
    assert body == b"".join(bh.resp_get_word(int(w)) for w in same_width)


def test_numpy_byte_arrays_hash_like_lists_of_bytes() -> None:
    keys = [*_phones(0, 1000), b"email:x@y.z"]
    a, b = bh.hash_keys(keys)
    a2, b2 = bh.hash_keys(np.array(keys, dtype="S40"))
    assert (a == a2).all()
    assert (b == b2).all()


def test_long_and_nul_containing_keys_are_never_truncated() -> None:
    base = b"person_id:" + b"\x00" * 30
    a, _ = bh.hash_keys([base + b"A", base + b"B", b"phone:1"])
    assert a[0] != a[1]


def test_distinct_keys_get_distinct_hashes() -> None:
    a, b = bh.hash_keys(_phones(0, 200_000))
    pairs = {(x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)}
    assert len(pairs) == 200_000


@pytest.mark.parametrize("jemalloc", [False, True])
@pytest.mark.parametrize("n", [1, 999, 1000, 12_345, 1_000_000, 3_500_000, 10_000_000, 50_000_000])
def test_planned_filters_stay_within_2_5_bytes_per_entry(n: int, jemalloc: bool) -> None:
    layout = bh.plan_layout(max(n, 1000), jemalloc=jemalloc)
    assert layout.nbytes / max(n, 1000) <= 2.5
    assert layout.nwords * 64 / max(n, 1000) >= 16.5


def test_word_numbers_encode_exactly_as_redis_expects() -> None:
    rng = np.random.default_rng(5)
    words = np.concatenate(
        [np.array([0, 1, 9, 10, 99, 100, 9999, 10_000, 67_108_863]), rng.integers(0, 3_000_000, 5000)]
    ).astype(np.int64)
    body, order = bh.resp_get_words(words)
    sent = words if order is None else words[order]
    args: tuple[Any, ...] = tuple(x for w in sent.tolist() for x in ("GET", "i64", f"#{w}"))
    expected = hiredis.pack_command(args)
    assert body == expected.split(b"\r\n", 1)[1]
    assert order is not None
    assert sorted(order.tolist()) == list(range(words.size))


def test_bitmap_string_matches_the_bit_offsets_that_adds_set() -> None:
    layout = bh.Layout(nwords=4096)
    p = bh.probes(layout, *bh.hash_keys(_phones(0, 300)))
    bitmap = bh.new_bitmap(layout)
    bh.or_into(bitmap, p)
    raw = np.frombuffer(bh.bitmap_bytes(bitmap, 0), dtype=np.uint8)
    bits = np.unpackbits(raw)  # MSB first, as BITFIELD numbers them
    assert set(np.flatnonzero(bits).tolist()) == set(bh.bit_offsets(p).tolist())


def test_false_positive_rate_at_design_load_is_below_0_1_percent() -> None:
    n = 1_000_000
    layout = bh.plan_layout(n)
    bitmap = bh.new_bitmap(layout)
    bh.or_into(bitmap, bh.probes(layout, *bh.hash_keys(np.array(_phones(0, 2 * n, 2)))))
    probe = bh.probes(layout, *bh.hash_keys(np.array(_phones(1, 4 * n, 10))))
    hit = bh.test_words(bitmap[probe.w1], probe.m1) & bh.test_words(bitmap[probe.w2], probe.m2)
    assert hit.mean() <= 0.001
    present = bh.probes(layout, *bh.hash_keys(np.array(_phones(0, 2 * n, 2))))
    assert (
        bh.test_words(bitmap[present.w1], present.m1) & bh.test_words(bitmap[present.w2], present.m2)
    ).all()

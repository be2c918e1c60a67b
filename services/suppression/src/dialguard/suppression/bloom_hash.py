"""Vectorised hashing, layout arithmetic and wire encoding for the bitmap bloom filter.

Pure numpy, no I/O: everything here must give byte-identical answers in every process that
reads or writes a filter, because one process sets bits that another tests.

Layout ("bb2", blocked bloom, two words): the filter is a Redis string of ``1 + nwords`` 64-bit
big-endian words. Word 0 is a header holding the generation id (so a missing, evicted or
foreign value can never be mistaken for an empty filter). A key owns two data words chosen by
its 128-bit hash; it sets ``K1`` bits in the first and ``K2`` bits in the second. A lookup reads
the first word of every key and the second word only of keys whose first word matched, which
halves the Redis work compared with always reading both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

U64: TypeAlias = npt.NDArray[np.uint64]
I64: TypeAlias = npt.NDArray[np.int64]
U32: TypeAlias = npt.NDArray[np.uint32]
Bools: TypeAlias = npt.NDArray[np.bool_]
Keys: TypeAlias = Sequence[bytes] | npt.NDArray[np.bytes_]

HASH_VERSION = 1
K1 = 5
K2 = 4
HEADER_WORDS = 1
MIN_WORDS = 64
MAX_BYTES = 512 * 1024 * 1024 - 64  # Redis strings stop at 512 MB

_SEED = np.uint64(0x243F6A8885A308D3)
_MUL = np.uint64(0x9E3779B97F4A7C15)
_SALT_A = np.uint64(0x452821E638D01377)
_SALT_B = np.uint64(0x6A09E667F3BCC909)
_F1 = np.uint64(0xFF51AFD7ED558CCD)
_F2 = np.uint64(0xC4CEB9FE1A85EC53)
_S6 = np.uint64(6)
_S32 = np.uint64(32)
_S33 = np.uint64(33)
_M6 = np.uint64(63)
_ONE = np.uint64(1)


def _fmix(h: U64) -> U64:
    """Spread every input bit over the whole word (MurmurHash3's finaliser, a bijection)."""
    h = h ^ (h >> _S33)
    h = h * _F1
    h ^= h >> _S33
    h = h * _F2
    h ^= h >> _S33
    return h


_width_hint = 24


def _as_padded(keys: Keys) -> tuple[npt.NDArray[np.uint64], int]:
    """Keys as an (n, words) little-endian matrix, zero padded, never truncating a key.

    A width is guessed and then proven: numpy's fixed-width strings only ever shorten a key
    (truncation or trailing NULs), so equal total lengths mean nothing was lost.
    """
    global _width_hint
    if isinstance(keys, np.ndarray):
        if keys.dtype.kind != "S":
            raise TypeError("keys must be bytes")
        width = max(8, -(-keys.dtype.itemsize // 8) * 8)
        arr = keys if keys.dtype.itemsize == width else keys.astype(f"S{width}")
    else:
        width = _width_hint
        arr = np.array(keys, dtype=f"S{width}")
        if int(np.strings.str_len(arr).sum()) != len(b"".join(keys)):
            longest = max(map(len, keys), default=0)
            width = max(8, -(-longest // 8) * 8)
            _width_hint = max(_width_hint, width) if width <= 64 else _width_hint
            arr = np.array(keys, dtype=f"S{width}")
    arr = np.ascontiguousarray(arr)
    return arr.view("<u8").reshape(len(arr), width // 8), width // 8


def hash_keys(keys: Keys) -> tuple[U64, U64]:
    """Two 64-bit hashes per key, the same in every process and for every batch shape.

    Defined over the key without trailing NUL bytes: two keys that differ only there share
    their bits, which can only add false positives (confirmed in Postgres), never lose a key.
    """
    words, nwords = _as_padded(keys)
    n = words.shape[0]
    if n == 0:
        empty = np.zeros(0, dtype=np.uint64)
        return empty, empty
    lengths = np.strings.str_len(words.view(f"S{nwords * 8}").reshape(n)).astype(np.uint64)
    h = (lengths * _MUL) ^ _SEED
    shortest = int(lengths.min())
    for j in range(nwords):
        x = (h ^ words[:, j]) * _MUL
        x ^= x >> _S32
        h = x if j * 8 < shortest else np.where(lengths > j * 8, x, h)
    return _fmix(h ^ _SALT_A), _fmix(h ^ _SALT_B)


@dataclass(frozen=True, slots=True)
class Layout:
    """Geometry of one generation's bitmap; part of the generation descriptor."""

    nwords: int
    k1: int = K1
    k2: int = K2
    hash_version: int = HASH_VERSION

    @property
    def nbytes(self) -> int:
        """Length of the Redis string, header included."""
        return 8 * (HEADER_WORDS + self.nwords)

    def encode(self) -> str:
        """Compact form stored in the generation descriptor."""
        return f"bb2/{self.hash_version}/{self.nwords}/{self.k1}/{self.k2}"

    @classmethod
    def decode(cls, text: str) -> Layout:
        """Inverse of encode; rejects layouts this code cannot evaluate."""
        kind, version, nwords, k1, k2 = text.split("/")
        if kind != "bb2" or int(version) != HASH_VERSION:
            raise ValueError(f"unsupported filter layout {text!r}")
        return cls(nwords=int(nwords), k1=int(k1), k2=int(k2), hash_version=int(version))


def _size_class(nbytes: int) -> int:
    """The jemalloc size class an allocation of nbytes lands in (4 classes per power of two)."""
    if nbytes <= 128:
        return max(16, -(-nbytes // 16) * 16)
    spacing = 1 << (int(nbytes - 1).bit_length() - 3)
    return -(-nbytes // spacing) * spacing


def _class_at_most(limit: int) -> int:
    """The largest jemalloc size class not above limit."""
    if limit <= 128:
        return max(16, limit // 16 * 16)
    spacing = 1 << (int(limit - 1).bit_length() - 3)
    return limit // spacing * spacing


_SDS_OVERHEAD = 16  # sds header + terminator, rounded up


def plan_layout(
    expected_n: int,
    *,
    bits_per_entry: float = 19.0,
    max_bytes_per_entry: float = 2.5,
    jemalloc: bool = False,
    min_bits_per_entry: float = 16.5,
) -> Layout:
    """Size a filter for expected_n keys at about bits_per_entry bits each.

    Under jemalloc a large string costs its whole size class (up to 25 % more than asked), so
    the size is snapped to a class: the class the wanted size falls in when that fits the
    memory budget (the slack becomes bits), else the largest class under the budget if it
    still gives min_bits_per_entry, else the wanted size as is.
    """
    n = max(int(expected_n), 1)
    want_words = max(MIN_WORDS, math.ceil(n * bits_per_entry / 64))
    nwords = want_words
    if jemalloc:
        alloc = _size_class(8 * (HEADER_WORDS + want_words) + _SDS_OVERHEAD)
        budget = int(n * max_bytes_per_entry)
        if alloc > budget:
            lower = _class_at_most(budget)
            alloc = lower if lower * 8 >= n * min_bits_per_entry else 0
        if alloc:
            nwords = max(MIN_WORDS, (alloc - _SDS_OVERHEAD) // 8 - HEADER_WORDS)
    if 8 * (HEADER_WORDS + nwords) > MAX_BYTES:
        raise ValueError(f"expected_n={expected_n} needs a filter above Redis' 512 MB string limit")
    return Layout(nwords=nwords)


def _word_index(h: U64, nwords: int) -> I64:
    """Map the high 32 bits of h onto [0, nwords) without modulo bias or division."""
    return (((h >> _S32) * np.uint64(nwords)) >> _S32).astype(np.int64)


def _mask(h: U64, k: int) -> U64:
    """OR of k single bits picked by consecutive 6-bit fields of h's low half."""
    m = np.zeros(h.shape, dtype=np.uint64)
    for i in range(k):
        m |= _ONE << ((h >> np.uint64(6 * i)) & _M6)
    return m


@dataclass(frozen=True, slots=True)
class Probes:
    """Where each key lives in one layout: two data-word indexes and the bits it needs there."""

    w1: I64
    m1: U64
    w2: I64
    m2: U64


def probes(layout: Layout, a: U64, b: U64) -> Probes:
    """Word indexes (0-based, header excluded) and masks for each key's two words."""
    return Probes(
        w1=_word_index(a, layout.nwords),
        m1=_mask(a, layout.k1),
        w2=_word_index(b, layout.nwords),
        m2=_mask(b, layout.k2),
    )


def bit_offsets(p: Probes) -> U32:
    """Absolute bit offsets (BITFIELD numbering, header included) of every bit the keys set.

    A mask's big-endian bytes unpack most significant bit first, which is BITFIELD's order within a
    word, so column j of the unpacked rows is bit offset j of the word: a few array operations in
    all, where a loop over the 64 bit positions cost ~130 small ones (most of an add's CPU)."""
    words = np.concatenate((p.w1, p.w2))
    masks = np.concatenate((p.m1, p.m2)).astype(">u8")
    rows, cols = np.nonzero(np.unpackbits(masks.view(np.uint8)).reshape(-1, 64))
    return np.unique((words[rows] + HEADER_WORDS) * 64 + cols).astype(np.uint32)


def new_bitmap(layout: Layout) -> U64:
    """A zeroed client-side copy of a generation's data words (header excluded)."""
    return np.zeros(layout.nwords, dtype=np.uint64)


def or_into(bitmap: U64, p: Probes) -> None:
    """Set the keys' bits in a client-side bitmap.

    Plain fancy-index OR keeps one write per repeated word, so the keys whose bits did not
    stick are redone until none is left (a handful of rounds); 2-3x faster than ufunc.at.
    """
    words = np.concatenate((p.w1, p.w2))
    masks = np.concatenate((p.m1, p.m2))
    while words.size:
        bitmap[words] |= masks
        lost = (bitmap[words] & masks) != masks
        words = words[lost]
        masks = masks[lost]


def bitmap_bytes(bitmap: U64, header: int) -> bytes:
    """The exact Redis string for a client-side bitmap: header word then big-endian data words."""
    out = np.empty(HEADER_WORDS + bitmap.size, dtype=">u8")
    out[0] = header
    out[HEADER_WORDS:] = bitmap
    return out.tobytes()


def test_words(words: U64, masks: U64) -> Bools:
    """True where every bit of the mask is set in the word."""
    return np.asarray((words & masks) == masks, dtype=np.bool_)


# --- the same arithmetic on plain ints, for a handful of keys --------------------------------
# numpy's per-call overhead (~1 us per operation) is most of a single check's hashing cost;
# these give bit-identical results (tests/bloom/test_bloom_hash.py compares them).

_M64 = (1 << 64) - 1


def _fmix_int(h: int) -> int:
    h ^= h >> 33
    h = (h * int(_F1)) & _M64
    h ^= h >> 33
    h = (h * int(_F2)) & _M64
    return h ^ (h >> 33)


def hash_key(key: bytes) -> tuple[int, int]:
    """hash_keys for one key."""
    data = key.rstrip(b"\0")
    h = ((len(data) * int(_MUL)) & _M64) ^ int(_SEED)
    for j in range(0, len(data), 8):
        x = ((h ^ int.from_bytes(data[j : j + 8], "little")) * int(_MUL)) & _M64
        h = x ^ (x >> 32)
    return _fmix_int(h ^ int(_SALT_A)), _fmix_int(h ^ int(_SALT_B))


def probe_key(layout: Layout, key: bytes) -> tuple[int, int, int, int]:
    """probes() for one key: (first word, its mask, second word, its mask)."""
    a, b = hash_key(key)
    m1 = 0
    for i in range(layout.k1):
        m1 |= 1 << ((a >> (6 * i)) & 63)
    m2 = 0
    for i in range(layout.k2):
        m2 |= 1 << ((b >> (6 * i)) & 63)
    return ((a >> 32) * layout.nwords) >> 32, m1, ((b >> 32) * layout.nwords) >> 32, m2


def resp_get_word(word_number: int) -> bytes:
    """resp_get_words for one word number."""
    digits = b"%d" % word_number
    return _GET_PREFIX + b"%d\r\n#%s\r\n" % (len(digits) + 1, digits)


# --- RESP encoding of "GET i64 #<word>" sub-commands, vectorised --------------------------

_GET_PREFIX = b"$3\r\nGET\r\n$3\r\ni64\r\n$"
_POW10 = [10**d for d in range(1, 11)]
_CHUNK_BASE = {1: np.uint32(10), 2: np.uint32(100), 4: np.uint32(10_000)}
_DIGITS4 = np.frombuffer(b"".join(b"%04d" % i for i in range(10_000)), dtype=np.uint8).reshape(10_000, 4)
# ASCII of 0..9999 as little-endian integers of 1..4 bytes, for the digit-chunk fields
_CHUNK_TABLES: dict[int, npt.NDArray[Any]] = {
    1: np.ascontiguousarray(_DIGITS4[:, 3]),
    2: np.ascontiguousarray(_DIGITS4[:, 2:]).view("<u2").reshape(10_000),
    4: np.ascontiguousarray(_DIGITS4).view("<u4").reshape(10_000),
}
_TEMPLATES: dict[int, tuple[npt.NDArray[np.uint8], np.dtype[Any], list[int]]] = {}


def _template(digits: int, rows: int) -> tuple[npt.NDArray[Any], list[int]]:
    """Records 'GET i64 #<digits digits>' as a structured array with one integer field per chunk.

    Chunks are 1, 2 or 4 digits (a 3-digit lead is split 1 + 2) so every field is a plain
    integer store; the template is copied as raw bytes, which is a memcpy.
    """
    cached = _TEMPLATES.get(digits)
    if cached is None or cached[0].size < rows * cached[1].itemsize:
        head = _GET_PREFIX + b"%d\r\n#" % (digits + 1)
        lead = digits - 4 * ((digits - 1) // 4)
        sizes = ([1, 2] if lead == 3 else [lead]) + [4] * ((digits - 1) // 4)
        names: list[str] = []
        formats: list[str] = []
        offsets: list[int] = []
        at = len(head)
        for i, k in enumerate(sizes):
            names.append(f"c{i}")
            formats.append({1: "u1", 2: "<u2", 4: "<u4"}[k])
            offsets.append(at)
            at += k
        dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": at + 2})
        size = max(rows, 1024, 0 if cached is None else 2 * cached[0].size // cached[1].itemsize)
        row = head + b"0" * digits + b"\r\n"
        cached = (np.frombuffer(row * size, dtype=np.uint8), dtype, sizes)
        _TEMPLATES[digits] = cached
    raw, dtype, sizes = cached
    return raw[: rows * dtype.itemsize].copy().view(dtype), sizes


def resp_get_words(word_numbers: I64) -> tuple[bytes, I64 | None]:
    """The RESP bytes of 'GET i64 #w' for each word number, and the order they were written in.

    Redis rejects leading zeros, so numbers are grouped by digit count and each group is written
    as a fixed-width block; the returned order (None when unchanged) maps reply slots back to
    the caller's positions.
    """
    n = int(word_numbers.size)
    if n == 0:
        return b"", None
    values = word_numbers.astype(np.uint32)
    top = int(values.max())
    dmax = len(str(top))
    groups: list[tuple[int, npt.NDArray[np.int64] | None, U32]] = []
    if dmax == 1 or int(values.min()) >= _POW10[dmax - 2]:
        groups.append((dmax, None, values))
    else:
        digits = np.ones(n, dtype=np.int8)
        for d in range(1, dmax):
            digits += values >= _POW10[d - 1]
        for d in range(1, dmax + 1):
            idx = np.flatnonzero(digits == d)
            if idx.size:
                groups.append((d, idx, values[idx]))
    chunks: list[bytes] = []
    for d, _idx, vals in groups:
        block, sizes = _template(d, int(vals.size))
        x = vals
        for i in range(len(sizes) - 1, -1, -1):
            k = sizes[i]
            if i == 0:
                block["c0"] = _CHUNK_TABLES[k][x]
                break
            base = _CHUNK_BASE[k]
            q = x // base
            block[f"c{i}"] = _CHUNK_TABLES[k][x - q * base]
            x = q
        chunks.append(block.tobytes())
    if len(groups) == 1:
        return chunks[0], None
    order = np.concatenate([g[1] for g in groups if g[1] is not None])
    return b"".join(chunks), order

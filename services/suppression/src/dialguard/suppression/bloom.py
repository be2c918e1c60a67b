"""Per-account bloom cache of suppression keys in Redis: "certainly absent" or "ask Postgres".

The check API answers from here and confirms every positive in Postgres, so the one thing this
module must never do is report a committed, unexpired entry's key as absent. ``lookup`` returns
None whenever that cannot be guaranteed, and the caller then asks Postgres for everything. The
race argument is written out in docs/suppression-cache.md.

Redis holds, per account (hash tag ``{account}`` keeps them in one cluster slot):
``<prefix>:{acct}:meta`` (hash: generation descriptors ``cur``/``build`` and counters),
``:cur`` (the filter lookups read), ``:build`` (a generation being built) and short-lived
``:stage:<gen>`` / ``:tmp:<nonce>`` strings used for bulk ORs.

Two backends share the protocol: the bitmap layout of ``bloom_hash`` (lookups are one
``MULTI INFO/HGET/BITFIELD_RO EXEC`` per phase, encoded with numpy and sent raw), and RedisBloom
(``BF.RESERVE/BF.MADD/BF.MEXISTS``) when ``MODULE LIST`` shows ``bf``. A generation's descriptor
names its layout, so readers follow whatever the writer built.

Rebuild protocol for the service (see the doc for why each step is needed)::

    token = await cache.begin_rebuild(account_id, expected_n)    # adds now also land in it
    await wait_for_older_transactions(conn)                       # service side, below
    async for chunk in scan_live_keys(account_id):                # Postgres, unexpired only
        await cache.load(token, chunk)
    if not await cache.finish_rebuild(token):                     # False: flushed/superseded
        ...retry later...

The service-side wait (it lives with the Postgres code, not here)::

    async def wait_for_older_transactions(conn: asyncpg.Connection, *, poll_s: float = 0.01) -> None:
        \"\"\"Return once every transaction that wrote before this call has ended.\"\"\"
        mine = await conn.fetchval("SELECT pg_current_xact_id()")  # not the snapshot's xmax: see cache_redis
        while await conn.fetchval(
            "SELECT pg_snapshot_xmin(pg_current_snapshot()) < $1::xid8", mine
        ):
            await asyncio.sleep(poll_s)
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, unquote

import hiredis
import numpy as np
import numpy.typing as npt
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from dialguard.suppression import bloom_hash as bh
from dialguard.suppression import bloom_scripts as scripts
from dialguard.suppression import resp_wire

__all__ = [
    "REDISBLOOM",
    "AddResult",
    "BloomCache",
    "BloomCacheError",
    "BloomCommands",
    "CacheStats",
    "FilterStatus",
    "Generation",
    "RebuildInProgress",
    "RebuildToken",
]


class BloomCacheError(RuntimeError):
    """The cache could not do what was asked; for ``add`` the caller must not commit."""


class RebuildInProgress(BloomCacheError):
    """Another live rebuild holds the account; pass force=True to take it over."""


@dataclass(frozen=True, slots=True)
class BloomCommands:
    """Names of the RedisBloom commands used; tests substitute a set-based fake."""

    reserve: str = "BF.RESERVE"
    madd: str = "BF.MADD"
    mexists: str = "BF.MEXISTS"


REDISBLOOM = BloomCommands()


@dataclass(frozen=True, slots=True)
class Generation:
    """A parsed generation descriptor: which filter, built under which server incarnation."""

    descriptor: str
    gen: str
    run_id: str
    capacity: int
    layout: bh.Layout | None  # None: RedisBloom
    error_rate: float | None

    @property
    def header(self) -> int:
        """The bitmap header word / sentinel id that ties the stored value to this generation."""
        return int(self.gen, 16)

    @property
    def sentinel(self) -> bytes:
        """The item every RedisBloom generation contains, proving the key is this generation."""
        return b"\x00dg:gen:" + self.gen.encode()

    @classmethod
    def parse(cls, descriptor: str) -> Generation:
        """Read a descriptor written by the BEGIN script."""
        version, gen, run_id, capacity, layout = descriptor.split(";", 4)
        if version != "1":
            raise ValueError(f"unknown descriptor version in {descriptor!r}")
        if layout.startswith("bf/"):
            return cls(descriptor, gen, run_id, int(capacity), None, float(layout[3:]))
        return cls(descriptor, gen, run_id, int(capacity), bh.Layout.decode(layout), None)


@dataclass(eq=False)
class RebuildToken:
    """One caller's claim on an account's next generation; pass it to load/finish/abort."""

    account_id: str
    generation: Generation
    expected_n: int
    bitmap: bh.U64 | None
    loaded: int = 0
    done: bool = False
    lost: bool = False
    _last_heartbeat: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class AddResult:
    """Which generations an add wrote into, and whether the current one now holds more than it was sized for."""

    current: bool
    building: bool
    outgrown: bool = False
    entries: int = field(
        default=0, compare=False
    )  # in the current generation after the add (uncommitted too)


@dataclass(frozen=True, slots=True)
class FilterStatus:
    """Readiness and size of one account's filter, for /health/ready and metrics."""

    account_id: str
    state: str  # ready | rebuilding | building | absent
    backend: str | None
    generation: str | None
    capacity: int
    entries: int
    bytes_used: int
    bytes_per_entry: float | None
    building_generation: str | None
    building_added: int
    building_heartbeat_age_s: float | None
    building_bytes: int


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Aggregate over every account that has cache keys."""

    backend: str
    accounts: int
    ready: int
    building: int
    bytes_used: int
    entries: int
    capacity: int
    per_account: tuple[FilterStatus, ...]


_MULTI = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC = b"*1\r\n$4\r\nEXEC\r\n"
_INFO_SERVER = b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"
_GET_HEADER = b"$3\r\nGET\r\n$3\r\ni64\r\n$2\r\n#0\r\n"
_NOT_READY = None
_FEW = 8  # up to this many keys, plain-int hashing beats numpy's per-call overhead


def _bulk(data: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(data), data)


def _text(value: Any) -> str:
    """A reply as str whether or not the client decodes responses."""
    if value is None or value is False:
        return ""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _run_id(info: Any) -> str:
    """The server incarnation from an INFO server reply."""
    raw = info if isinstance(info, bytes) else str(info).encode()
    at = raw.find(b"run_id:")
    if at < 0:
        raise BloomCacheError("INFO server has no run_id")
    end = raw.find(b"\r\n", at)
    return raw[at + 7 : end if end >= 0 else None].decode().strip()


class _Phase(NamedTuple):
    """One atomic read: the descriptor seen, whether it counts, and the words read."""

    descriptor: str
    valid: bool
    words: bh.U64 | None


class _Snapshot(NamedTuple):
    """A whole generation's data words as read together with its version (meta ``cur_entries``)."""

    descriptor: str
    version: bytes
    words: bh.U64


_SNAPSHOT_BYTES_PER_WORD = 1500
"""Reading a whole bitmap (GET) costs about what reading this many bytes' worth of single words with
BITFIELD_RO GET does (measured here: a 2.4 MB GET 3.7 ms, 10,000 word GETs ~25 ms with their parse)."""
_HMGET_VERSION = b"*4\r\n$5\r\nHMGET\r\n"


class BloomCache:
    """Per-account suppression-key filters in Redis with atomic readiness.

    Call ``start()`` once (detects RedisBloom and the allocator) before the other methods.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "dg:bf",
        bits_per_entry: float = 19.0,
        max_bytes_per_entry: float = 2.5,
        min_capacity: int = 1000,
        redisbloom: bool | None = None,
        bf_commands: BloomCommands = REDISBLOOM,
        bf_error_rate: float = 0.001,
        two_phase_min: int = 256,
        bulk_add_min: int = 1000,
        rebuild_lease_s: float = 900.0,
        heartbeat_every_s: float = 5.0,
        upload_chunk_bytes: int = 4 << 20,
        snapshot_budget_bytes: int = 256 << 20,
    ) -> None:
        self._redis = redis
        self._wire = resp_wire.for_client(redis)
        self._prefix = prefix
        self._bits_per_entry = bits_per_entry
        self._max_bytes_per_entry = max_bytes_per_entry
        self._min_capacity = min_capacity
        self._redisbloom_wanted = redisbloom
        self._redisbloom = bool(redisbloom)
        self._bf = bf_commands
        self._bf_error_rate = bf_error_rate
        self._two_phase_min = two_phase_min
        self._bulk_add_min = bulk_add_min
        self._lease_s = rebuild_lease_s
        self._heartbeat_every_s = heartbeat_every_s
        self._upload_chunk = upload_chunk_bytes
        self._snapshot_budget = snapshot_budget_bytes
        self._snapshots: dict[str, _Snapshot] = {}
        self._stillness: dict[
            str, tuple[str, bytes, int]
        ] = {}  # account -> descriptor, version, bytes of word reads
        self._jemalloc = False
        self._started = False
        self._cur_cache: dict[str, str] = {}
        self._add_cache: dict[str, tuple[str, str]] = {}
        self._parsed: dict[str, Generation] = {}
        self._dead: set[str] = set()
        self._add = redis.register_script(scripts.ADD)
        self._begin = redis.register_script(scripts.BEGIN)
        self._heartbeat = redis.register_script(scripts.HEARTBEAT)
        self._finish = redis.register_script(scripts.FINISH)
        self._abort = redis.register_script(scripts.ABORT)
        self._invalidate = redis.register_script(scripts.INVALIDATE)
        self._status = redis.register_script(scripts.STATUS)

    # --- set-up and naming --------------------------------------------------------------

    async def start(self) -> None:
        """Detect RedisBloom (unless forced by the constructor) and the server's allocator."""
        if self._redisbloom_wanted is None:
            self._redisbloom = await self._detect_redisbloom()
        info = await self._redis.info("memory")
        self._jemalloc = str(info.get("mem_allocator", "")).startswith("jemalloc")
        self._started = True

    async def aclose(self) -> None:
        """Close the read connections (the redis-py client is its owner's to close)."""
        await self._wire.aclose()

    async def _detect_redisbloom(self) -> bool:
        """True when MODULE LIST shows the 'bf' module (RedisBloom or valkey-bloom)."""
        try:
            modules = await self._redis.execute_command("MODULE", "LIST")  # type: ignore[no-untyped-call]
        except ResponseError:
            return False
        return has_bloom_module(modules)

    @property
    def backend(self) -> str:
        """What new generations are built as: 'redisbloom' or 'bitmap'."""
        return "redisbloom" if self._redisbloom else "bitmap"

    @property
    def bytes_per_entry(self) -> float:
        """Design memory per expected entry of a new bitmap generation (RedisBloom: ~1.8)."""
        if self._redisbloom:
            return float(1.44 * np.log2(1 / self._bf_error_rate) / 8)
        layout = self.plan(1_000_000)
        return layout.nbytes / 1_000_000

    def plan(self, expected_n: int) -> bh.Layout:
        """The bitmap layout a rebuild for expected_n entries would get."""
        return bh.plan_layout(
            max(expected_n, self._min_capacity),
            bits_per_entry=self._bits_per_entry,
            max_bytes_per_entry=self._max_bytes_per_entry,
            jemalloc=self._jemalloc,
        )

    def _key(self, account_id: str, suffix: str) -> str:
        """Key names: the account is quoted so no id can reach another account's keys."""
        return f"{self._prefix}:{{{quote(account_id, safe='')}}}:{suffix}"

    def _gen(self, descriptor: str) -> Generation:
        """Parse a descriptor once per process."""
        g = self._parsed.get(descriptor)
        if g is None:
            if len(self._parsed) > 10_000:
                self._parsed.clear()
            g = Generation.parse(descriptor)
            self._parsed[descriptor] = g
        return g

    # --- raw exchange ---------------------------------------------------------------------

    async def _exchange(self, payload: bytes, replies: int) -> list[Any]:
        """Send pre-encoded read-only commands and read their replies (resp_wire says why not redis-py).

        The lookup's BITFIELD_RO has tens of thousands of arguments; redis-py's pure-Python encoder
        would spend more time than Redis does, so the bytes are built with numpy.
        """
        return await self._wire.exchange(payload, replies)

    # --- lookup ---------------------------------------------------------------------------

    async def lookup(self, account_id: str, keys: Sequence[bytes]) -> list[bool] | None:
        """Per key: False = certainly not in the filter, True = maybe; None = filter not ready."""
        mask = await self.lookup_mask(account_id, keys)
        return None if mask is None else mask.tolist()

    async def lookup_mask(
        self, account_id: str, keys: Sequence[bytes] | npt.NDArray[np.bytes_]
    ) -> bh.Bools | None:
        """Like lookup, as a numpy bool array (cheaper for the service's own filtering)."""
        hashes: tuple[bh.U64, bh.U64] | None = None
        meta = self._key(account_id, "meta").encode()
        cur = self._key(account_id, "cur").encode()
        for _ in range(4):
            descriptor = self._cur_cache.get(account_id)
            if descriptor is None or descriptor in self._dead:
                descriptor = _text(await self._redis.hget(meta, "cur"))
                if not descriptor or descriptor in self._dead:
                    return _NOT_READY  # no generation, or one already proven dead: skip the bits
                self._remember_cur(account_id, descriptor)
            gen = self._gen(descriptor)
            if gen.layout is None:
                result, seen = await self._lookup_bf(meta, cur, gen, keys)
            elif len(keys) <= _FEW and not isinstance(keys, np.ndarray):
                result, seen = await self._lookup_few(meta, cur, gen, keys)
            else:
                if hashes is None:
                    hashes = bh.hash_keys(keys)
                local = await self._lookup_snapshot(account_id, meta, cur, gen, *hashes)
                if local is not None:
                    result, seen = local
                else:
                    result, seen = await self._lookup_bitmap(meta, cur, gen, *hashes)
            if seen == descriptor:
                if result is None:
                    self._bury(descriptor)
                return result
            if not seen:
                self._cur_cache.pop(account_id, None)
                return _NOT_READY
            self._remember_cur(account_id, seen)
        return _NOT_READY

    def _bury(self, descriptor: str) -> None:
        """Remember a generation that failed its checks; it can never count again (doc: F1)."""
        if len(self._dead) > 10_000:
            self._dead.clear()
        self._dead.add(descriptor)

    def _remember_cur(self, account_id: str, descriptor: str) -> None:
        """Cache the last seen descriptor so the next lookup needs one round trip."""
        if len(self._cur_cache) > 100_000:
            self._cur_cache.clear()
        self._cur_cache[account_id] = descriptor

    async def _read_raw(
        self, meta: bytes, cur: bytes, gen: Generation, body: bytes, count: int
    ) -> tuple[str, list[int] | None]:
        """One atomic MULTI: server incarnation, current descriptor, header and `count` encoded word GETs.

        Returns the descriptor seen and the signed words (header first), or None when they do not count.
        """
        payload = b"".join(
            (
                _MULTI,
                _INFO_SERVER,
                b"*3\r\n$4\r\nHGET\r\n",
                _bulk(meta),
                b"$3\r\ncur\r\n",
                b"*%d\r\n$11\r\nBITFIELD_RO\r\n" % (2 + 3 * (1 + count)),
                _bulk(cur),
                _GET_HEADER,
                body,
                _EXEC,
            )
        )
        replies = await self._exchange(payload, 5)
        result = replies[4]
        if not isinstance(result, list) or len(result) != 3:
            raise BloomCacheError(f"unexpected EXEC reply: {result!r:.200}")
        info, seen_raw, values = result
        seen = _text(seen_raw)
        if seen != gen.descriptor:
            return seen, None
        if isinstance(values, BaseException) or not isinstance(values, list):
            return seen, None  # e.g. WRONGTYPE: not a filter we can trust
        if _run_id(info) != gen.run_id or values[0] != gen.header:
            return seen, None
        return seen, values

    async def _read_words(self, meta: bytes, cur: bytes, gen: Generation, words: bh.I64) -> _Phase:
        """The given data words (0-based, header excluded), read atomically with the generation checks."""
        body, order = bh.resp_get_words(words + bh.HEADER_WORDS)
        seen, values = await self._read_raw(meta, cur, gen, body, int(words.size))
        if values is None:
            return _Phase(seen, False, None)
        got = np.fromiter(values, dtype=np.int64, count=len(values))[1:].view(np.uint64)
        if order is not None:
            placed = np.empty_like(got)
            placed[order] = got
            got = placed
        return _Phase(seen, True, got)

    async def _lookup_few(
        self, meta: bytes, cur: bytes, gen: Generation, keys: Sequence[bytes]
    ) -> tuple[bh.Bools | None, str]:
        """_lookup_bitmap for a handful of keys in plain ints, one phase (a single check's path)."""
        assert gen.layout is not None
        probes = [bh.probe_key(gen.layout, bytes(k)) for k in keys]
        numbers = [p[0] + bh.HEADER_WORDS for p in probes] + [p[2] + bh.HEADER_WORDS for p in probes]
        seen, values = await self._read_raw(
            meta, cur, gen, b"".join([bh.resp_get_word(w) for w in numbers]), len(numbers)
        )
        if values is None:
            return None, seen
        n = len(probes)
        hit = [
            (values[1 + i] & p[1]) == p[1] and (values[1 + n + i] & p[3]) == p[3]  # signed & mask: same bits
            for i, p in enumerate(probes)
        ]
        return np.array(hit, dtype=np.bool_), seen

    async def _lookup_bitmap(
        self, meta: bytes, cur: bytes, gen: Generation, a: bh.U64, b: bh.U64
    ) -> tuple[bh.Bools | None, str]:
        """Test every key's first word, then the second word of the keys that passed.

        Each phase is atomic with the marker; both must see the same generation of the same
        server incarnation, whose bits only ever get added, so no key present before the call
        can be missed by either phase.
        """
        assert gen.layout is not None
        p = bh.probes(gen.layout, a, b)
        n = int(a.size)
        if n == 0:
            first = await self._read_words(meta, cur, gen, np.zeros(0, dtype=np.int64))
            return (np.zeros(0, dtype=np.bool_) if first.valid else None), first.descriptor
        if n < self._two_phase_min:
            one = await self._read_words(meta, cur, gen, np.concatenate((p.w1, p.w2)))
            if not one.valid or one.words is None:
                return None, one.descriptor
            hit = bh.test_words(one.words[:n], p.m1) & bh.test_words(one.words[n:], p.m2)
            return hit, one.descriptor
        first = await self._read_words(meta, cur, gen, p.w1)
        if not first.valid or first.words is None:
            return None, first.descriptor
        hit = bh.test_words(first.words, p.m1)
        survivors = np.flatnonzero(hit)
        if survivors.size == 0:
            return hit, first.descriptor
        second = await self._read_words(meta, cur, gen, p.w2[survivors])
        if not second.valid or second.words is None:
            return None, second.descriptor
        hit[survivors] = bh.test_words(second.words, p.m2[survivors])
        return hit, second.descriptor

    async def _lookup_snapshot(
        self, account_id: str, meta: bytes, cur: bytes, gen: Generation, a: bh.U64, b: bh.U64
    ) -> tuple[bh.Bools, str] | None:
        """Answer from this process's copy of the whole generation while it is the current one, or None
        to read single words instead: the copy is stale and too large to be worth reading again, or
        the generation changed or failed a check (_lookup_bitmap then reads and judges it as always).

        Bits of a generation change only in the ADD script, which bumps ``cur_entries`` in the same
        atomic step, so a copy read atomically with version v holds exactly the bits any reader sees
        while the marker, the header, the server incarnation and v are what one MULTI shows now.
        """
        assert gen.layout is not None
        snap = self._snapshots.get(account_id)
        version: bytes | None = None
        if snap is not None and snap.descriptor == gen.descriptor:
            seen, version, ok = await self._read_version(meta, cur, gen)
            if not ok:  # another generation, or this one failed a check: the word path sorts it out
                self._snapshots.pop(account_id, None)
                return None
            if version == snap.version:
                # Most recently used last, unless a concurrent lookup dropped or replaced it meanwhile;
                # this copy was proven current by the read above either way.
                if self._snapshots.get(account_id) is snap:
                    self._snapshots[account_id] = self._snapshots.pop(account_id)
                return self._test_snapshot(snap.words, gen, a, b), seen
        nbytes = gen.layout.nbytes
        if nbytes > self._snapshot_budget:
            return None
        worth = _SNAPSHOT_BYTES_PER_WORD * int(a.size)  # bytes that cost what this batch's word reads do
        if nbytes > worth:
            if version is None:
                seen, version, ok = await self._read_version(meta, cur, gen)
                if not ok:
                    return None
            if not self._held_still(account_id, gen.descriptor, version, nbytes, worth):
                return None
        seen, fresh = await self._read_snapshot(meta, cur, gen)
        if fresh is None:
            self._snapshots.pop(account_id, None)
            return None
        self._keep_snapshot(account_id, fresh)
        return self._test_snapshot(fresh.words, gen, a, b), seen

    def _held_still(self, account_id: str, descriptor: str, version: bytes, nbytes: int, worth: int) -> bool:
        """Whether a filter too large to read again for one batch has kept its version for enough
        batches in a row that one read costs no more than their word reads did (so a filter that
        changes between batches is never copied, and a quiet one is, whatever its size)."""
        held = self._stillness.get(account_id)
        if held is not None and held[0] == descriptor and held[1] == version:
            spent = held[2] + worth
        else:
            spent = worth
            if len(self._stillness) > 100_000:
                self._stillness.clear()
        if spent >= nbytes:
            self._stillness.pop(account_id, None)
            return True
        self._stillness[account_id] = (descriptor, version, spent)
        return False

    @staticmethod
    def _test_snapshot(words: bh.U64, gen: Generation, a: bh.U64, b: bh.U64) -> bh.Bools:
        assert gen.layout is not None
        p = bh.probes(gen.layout, a, b)
        return bh.test_words(words[p.w1], p.m1) & bh.test_words(words[p.w2], p.m2)

    def _keep_snapshot(self, account_id: str, snap: _Snapshot) -> None:
        """Keep the copy, dropping the least recently used ones past the byte budget."""
        self._snapshots.pop(account_id, None)
        used = sum(s.words.nbytes for s in self._snapshots.values()) + snap.words.nbytes
        for other in list(self._snapshots):
            if used <= self._snapshot_budget:
                break
            used -= self._snapshots.pop(other).words.nbytes
        self._snapshots[account_id] = snap

    def _version_multi(self, meta: bytes, cur_read: bytes) -> bytes:
        return b"".join(
            (
                _MULTI,
                _INFO_SERVER,
                _HMGET_VERSION,
                _bulk(meta),
                b"$3\r\ncur\r\n$11\r\ncur_entries\r\n",
                cur_read,
                _EXEC,
            )
        )

    def _checked(self, result: Any, gen: Generation) -> tuple[str, bytes, Any]:
        """(descriptor seen, version, third reply) of a version MULTI; version b'' when it does not count."""
        if not isinstance(result, list) or len(result) != 3:
            raise BloomCacheError(f"unexpected EXEC reply: {result!r:.200}")
        info, fields, third = result
        seen = _text(fields[0]) if isinstance(fields, list) and fields else ""
        version = fields[1] if isinstance(fields, list) and len(fields) == 2 else None
        if seen != gen.descriptor or not isinstance(version, bytes) or isinstance(third, BaseException):
            return seen, b"", third
        if _run_id(info) != gen.run_id:
            return seen, b"", third
        return seen, version, third

    async def _read_version(self, meta: bytes, cur: bytes, gen: Generation) -> tuple[str, bytes, bool]:
        """Marker, version and header in one MULTI: (descriptor seen, version, whether it counts)."""
        header = b"*5\r\n$11\r\nBITFIELD_RO\r\n" + _bulk(cur) + _GET_HEADER
        replies = await self._exchange(self._version_multi(meta, header), 5)
        seen, version, words = self._checked(replies[4], gen)
        ok = bool(version) and isinstance(words, list) and len(words) == 1 and words[0] == gen.header
        return seen, version, ok

    async def _read_snapshot(self, meta: bytes, cur: bytes, gen: Generation) -> tuple[str, _Snapshot | None]:
        """The whole generation with its marker and version in one MULTI; None when it does not count."""
        assert gen.layout is not None
        replies = await self._exchange(self._version_multi(meta, b"*2\r\n$3\r\nGET\r\n" + _bulk(cur)), 5)
        seen, version, raw = self._checked(replies[4], gen)
        if not version or not isinstance(raw, bytes) or len(raw) != gen.layout.nbytes:
            return seen, None
        stored = np.frombuffer(raw, dtype=">u8")
        if int(stored[0].astype(np.int64)) != gen.header:
            return seen, None
        return seen, _Snapshot(gen.descriptor, version, stored[bh.HEADER_WORDS :].astype(np.uint64))

    async def _lookup_bf(
        self, meta: bytes, cur: bytes, gen: Generation, keys: Sequence[bytes] | npt.NDArray[np.bytes_]
    ) -> tuple[bh.Bools | None, str]:
        """RedisBloom: one MULTI with the marker and BF.MEXISTS (sentinel first)."""
        items = [bytes(k) for k in keys] if isinstance(keys, np.ndarray) else keys
        parts: tuple[Any, ...] = (self._bf.mexists, cur, gen.sentinel, *items)
        command = hiredis.pack_command(parts)
        payload = b"".join(
            (_MULTI, _INFO_SERVER, b"*3\r\n$4\r\nHGET\r\n", _bulk(meta), b"$3\r\ncur\r\n", command, _EXEC)
        )
        replies = await self._exchange(payload, 5)
        result = replies[4]
        if not isinstance(result, list) or len(result) != 3:
            raise BloomCacheError(f"unexpected EXEC reply: {result!r:.200}")
        info, seen_raw, values = result
        seen = _text(seen_raw)
        if seen != gen.descriptor:
            return None, seen
        if isinstance(values, BaseException) or not isinstance(values, list):
            return None, seen
        if _run_id(info) != gen.run_id or not values or int(values[0]) != 1:
            return None, seen
        return np.array(values[1:], dtype=np.int64).astype(np.bool_), seen

    # --- add ------------------------------------------------------------------------------

    async def add(self, account_id: str, keys: Sequence[bytes]) -> AddResult:
        """Set the keys in the current and the building generation, atomically.

        Call before the DB commit; if this raises, do not commit (or ``invalidate`` first).
        Writes nothing into a generation that does not count (its lookups return None anyway).
        """
        keys = list(keys)
        if not keys:
            return AddResult(False, False)
        meta, cur, build = (self._key(account_id, s) for s in ("meta", "cur", "build"))
        hashes: tuple[bh.U64, bh.U64] | None = None
        cached = self._add_cache.get(account_id)
        if cached is None:
            got = await self._redis.hmget(meta, ["cur", "build"])
            cached = (_text(got[0]), _text(got[1]))
        want_cur, want_build = cached
        for _ in range(8):
            payloads: list[bytes] = []
            tmp_keys: list[str] = []
            with_keys = False
            try:
                for desc in (want_cur, want_build):
                    tmp = self._key(account_id, f"tmp:{secrets.token_hex(8)}")
                    tmp_keys.append(tmp)
                    if not desc:
                        payloads.append(b"")
                        continue
                    gen = self._gen(desc)
                    if gen.layout is None:
                        payloads.append(b"K")
                        with_keys = True
                        continue
                    if hashes is None:
                        hashes = bh.hash_keys(keys)
                    p = bh.probes(gen.layout, *hashes)
                    if len(keys) >= self._bulk_add_min and len(keys) * 2000 >= gen.layout.nbytes:
                        bitmap = bh.new_bitmap(gen.layout)
                        bh.or_into(bitmap, p)
                        await self._redis.set(tmp, bh.bitmap_bytes(bitmap, 0), px=600_000)
                        payloads.append(b"T")
                    else:
                        payloads.append(b"P" + bh.bit_offsets(p).tobytes())
                args: list[Any] = [
                    want_cur,
                    want_build,
                    payloads[0],
                    payloads[1],
                    len(keys),
                    self._bf.mexists,
                    self._bf.madd,
                ]
                if with_keys:
                    args.extend(keys)
                reply = await self._add(keys=[meta, cur, build, *tmp_keys], args=args)
            finally:
                if any(p == b"T" for p in payloads):
                    await self._redis.delete(*tmp_keys)
            if int(reply[0]) == 1:
                self._add_cache[account_id] = (want_cur, want_build)
                wrote_cur = bool(int(reply[1]))
                # Past its planned capacity a filter's false-positive rate climbs until every lookup
                # is a "maybe" and every check goes to Postgres: the caller rebuilds it larger.
                entries = int(reply[3])
                outgrown = wrote_cur and entries > self._gen(want_cur).capacity
                return AddResult(wrote_cur, bool(int(reply[2])), outgrown, entries)
            want_cur, want_build = _text(reply[1]), _text(reply[2])
            self._add_cache[account_id] = (want_cur, want_build)
        raise BloomCacheError(f"add for account {account_id!r} kept racing generation changes")

    async def invalidate(self, account_id: str) -> bool:
        """Make the current generation not ready (e.g. an add's outcome is unknown)."""
        self._cur_cache.pop(account_id, None)
        done = await self._invalidate(
            keys=[self._key(account_id, "meta"), self._key(account_id, "cur")], args=[""]
        )
        return bool(int(done))

    # --- rebuild --------------------------------------------------------------------------

    async def begin_rebuild(self, account_id: str, expected_n: int, *, force: bool = False) -> RebuildToken:
        """Create the next generation and its 'building' marker; adds write into it from now on.

        Raises RebuildInProgress when another build of this account is alive (heartbeat
        younger than the lease) unless force=True, which supersedes it.
        """
        if not self._started:
            raise BloomCacheError("call BloomCache.start() first")
        capacity = max(int(expected_n), self._min_capacity)
        gen_hex = f"{secrets.randbelow(2**63 - 2) + 1:016x}"
        if self._redisbloom:
            layout_text, nbytes, layout = f"bf/{self._bf_error_rate!r}", 0, None
        else:
            layout = self.plan(capacity)
            layout_text, nbytes = layout.encode(), layout.nbytes
        reply = await self._begin(
            keys=[self._key(account_id, "meta"), self._key(account_id, "build")],
            args=[
                gen_hex,
                capacity,
                layout_text,
                "1" if force else "0",
                self._lease_s,
                nbytes,
                self._bf.mexists,
                self._bf.reserve,
                self._bf.madd,
                repr(self._bf_error_rate),
            ],
        )
        if int(reply[0]) != 1:
            raise RebuildInProgress(
                f"account {account_id!r} is being rebuilt (heartbeat {float(_text(reply[2])):.0f}s ago)"
            )
        self._add_cache.pop(account_id, None)
        gen = self._gen(_text(reply[1]))
        bitmap = bh.new_bitmap(layout) if layout is not None else None
        return RebuildToken(account_id=account_id, generation=gen, expected_n=capacity, bitmap=bitmap)

    async def load(self, token: RebuildToken, keys: Sequence[bytes] | npt.NDArray[np.bytes_]) -> bool:
        """Feed keys of the Postgres scan into the generation; False once the build is lost.

        Bitmap generations collect the scan client-side (no Redis round trip per chunk) and
        upload it in finish_rebuild; RedisBloom generations get BF.MADD right away.
        """
        if token.done:
            raise BloomCacheError("this rebuild token is finished")
        if token.lost:
            return False
        n = len(keys)
        if n:
            if token.bitmap is not None:
                assert token.generation.layout is not None
                bh.or_into(token.bitmap, bh.probes(token.generation.layout, *bh.hash_keys(keys)))
            else:
                items = [bytes(k) for k in keys]
                build = self._key(token.account_id, "build")
                for i in range(0, n, 10_000):
                    chunk = items[i : i + 10_000]
                    await self._redis.execute_command(self._bf.madd, build, *chunk)  # type: ignore[no-untyped-call]
            token.loaded += n
        if time.monotonic() - token._last_heartbeat >= self._heartbeat_every_s:
            await self._beat(token)
        return not token.lost

    async def _beat(self, token: RebuildToken) -> None:
        """Refresh the build's lease and learn whether it was superseded or flushed."""
        alive = await self._heartbeat(
            keys=[self._key(token.account_id, "meta"), self._key(token.account_id, "build")],
            args=[token.generation.descriptor, self._bf.mexists],
        )
        token._last_heartbeat = time.monotonic()
        token.lost = not int(alive)

    async def finish_rebuild(self, token: RebuildToken) -> bool:
        """Atomically make the built generation current and drop the old one.

        False when the build no longer counts (flush, restart, eviction, a competing rebuild):
        nothing changed, and the caller should rebuild again.
        """
        if token.done:
            raise BloomCacheError("this rebuild token is finished")
        token.done = True
        acct = token.account_id
        meta, cur, build = self._key(acct, "meta"), self._key(acct, "cur"), self._key(acct, "build")
        stage = self._key(acct, f"stage:{token.generation.gen}")
        try:
            await self._beat(token)
            if token.lost:
                return False
            has_stage = token.bitmap is not None
            if token.bitmap is not None:
                await self._upload(stage, bh.bitmap_bytes(token.bitmap, token.generation.header))
                token.bitmap = None
            ok = await self._finish(
                keys=[meta, cur, build, stage],
                args=[token.generation.descriptor, token.loaded, "1" if has_stage else "0", self._bf.mexists],
            )
        except BaseException:
            await self._redis.delete(stage)
            raise
        if int(ok) == 1:
            self._remember_cur(acct, token.generation.descriptor)
            self._add_cache.pop(acct, None)
            return True
        token.lost = True
        return False

    async def _upload(self, key: str, data: bytes) -> None:
        """Write a large string in chunks (header first, so any loss mid-way is detectable)."""
        chunk = self._upload_chunk
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(key)
            pipe.setrange(key, len(data) - 1, data[-1:])  # allocate once, at the exact size
            for at in range(0, len(data), chunk):
                pipe.setrange(key, at, data[at : at + chunk])
            pipe.pexpire(key, 3_600_000)
            await pipe.execute()

    async def abort_rebuild(self, token: RebuildToken) -> None:
        """Drop the build if it is still this token's; the current generation is untouched."""
        token.done = True
        token.bitmap = None
        acct = token.account_id
        await self._abort(
            keys=[
                self._key(acct, "meta"),
                self._key(acct, "build"),
                self._key(acct, f"stage:{token.generation.gen}"),
            ],
            args=[token.generation.descriptor],
        )
        self._add_cache.pop(acct, None)

    async def load_bulk(
        self,
        account_id: str,
        keys: Sequence[bytes] | npt.NDArray[np.bytes_],
        *,
        expected_n: int | None = None,
        force: bool = False,
        chunk: int = 1_000_000,
    ) -> bool:
        """Build a whole generation from keys in one go (bits computed with numpy, sent by SETRANGE).

        Only sound for a complete key set gathered after the building marker existed; the
        service's rebuild uses begin_rebuild/load/finish_rebuild around its snapshot wait.
        """
        token = await self.begin_rebuild(account_id, expected_n or len(keys), force=force)
        try:
            for at in range(0, len(keys), chunk):
                if not await self.load(token, keys[at : at + chunk]):
                    break
                await asyncio.sleep(0)
        except BaseException:
            await self.abort_rebuild(token)
            raise
        return await self.finish_rebuild(token)

    # --- status and stats -----------------------------------------------------------------

    async def status(self, account_id: str) -> FilterStatus:
        """The account's filter as the server sees it now (stale generations are dropped)."""
        reply = await self._status(
            keys=[self._key(account_id, s) for s in ("meta", "cur", "build")], args=[self._bf.mexists]
        )
        cur_desc, build_desc = _text(reply[0]), _text(reply[1])
        cur_gen = self._gen(cur_desc) if cur_desc else None
        build_gen = self._gen(build_desc) if build_desc else None
        if cur_gen and build_gen:
            state = "rebuilding"
        elif cur_gen:
            state = "ready"
        elif build_gen:
            state = "building"
        else:
            state = "absent"
        cur_bytes = int(reply[6]) if cur_gen else 0
        capacity = cur_gen.capacity if cur_gen else 0
        hb = float(_text(reply[4]) or 0)
        now = float(_text(reply[5]))
        backend = None
        shown = cur_gen or build_gen
        if shown is not None:
            backend = "bitmap" if shown.layout is not None else "redisbloom"
        return FilterStatus(
            account_id=account_id,
            state=state,
            backend=backend,
            generation=cur_gen.gen if cur_gen else None,
            capacity=capacity,
            entries=int(_text(reply[2]) or 0) if cur_gen else 0,
            bytes_used=cur_bytes,
            bytes_per_entry=(cur_bytes / capacity) if capacity else None,
            building_generation=build_gen.gen if build_gen else None,
            building_added=int(_text(reply[3]) or 0) if build_gen else 0,
            building_heartbeat_age_s=(now - hb) if build_gen else None,
            building_bytes=int(reply[7]) if build_gen else 0,
        )

    async def stats(self) -> CacheStats:
        """Every account's status, summed (SCANs the meta keys: call it at metrics pace)."""
        head = f"{self._prefix}:{{"
        accounts: list[str] = []
        async for raw in self._redis.scan_iter(match=f"{self._prefix}:{{*}}:meta", count=1000):
            name = _text(raw)
            accounts.append(unquote(name[len(head) : name.rindex("}:meta")]))
        per = tuple([await self.status(a) for a in sorted(set(accounts))])
        return CacheStats(
            backend=self.backend,
            accounts=len(per),
            ready=sum(s.state in ("ready", "rebuilding") for s in per),
            building=sum(s.building_generation is not None for s in per),
            bytes_used=sum(s.bytes_used + s.building_bytes for s in per),
            entries=sum(s.entries for s in per),
            capacity=sum(s.capacity for s in per),
            per_account=per,
        )


def has_bloom_module(modules: Any) -> bool:
    """Whether a MODULE LIST reply (RESP2 flat lists or RESP3 maps) names the 'bf' module."""
    for module in modules or ():
        if isinstance(module, dict):
            name = module.get(b"name", module.get("name"))
        else:
            items = list(module)
            pairs = dict(zip(items[::2], items[1::2], strict=False))
            name = pairs.get(b"name", pairs.get("name"))
        if _text(name).lower() == "bf":
            return True
    return False

"""The bare-stream read path answers exactly what redis-py does, and survives what a pool must survive."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import hiredis
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dialguard.suppression.resp_wire import RedisPyExchanger, StreamPool, for_client

pytestmark = pytest.mark.asyncio


def cmd(*parts: bytes | str | int) -> bytes:
    return hiredis.pack_command(parts)  # type: ignore[no-any-return]


@pytest.fixture
async def wire(redis: aioredis.Redis) -> AsyncIterator[StreamPool]:
    pool = for_client(redis)
    assert isinstance(pool, StreamPool)
    yield pool
    await pool.aclose()


async def test_a_transaction_reads_the_same_as_through_redis_py(
    redis: aioredis.Redis, wire: StreamPool
) -> None:
    key = f"wire:{uuid.uuid4().hex}"
    await redis.hset(key + ":m", "cur", "descriptor\r\nwith a line break")
    await redis.setrange(key, 0, bytes(range(256)) * 40)
    payload = b"".join(
        (
            cmd("MULTI"),
            cmd("HGET", key + ":m", "cur"),
            cmd("BITFIELD_RO", key, "GET", "i64", "#0", "GET", "i64", "#3", "GET", "u8", "#1000"),
            cmd("GET", key),
            cmd("HGET", key + ":m", "missing"),
            cmd("EXEC"),
        )
    )
    expected = await RedisPyExchanger(redis).exchange(payload, 6)
    got = await wire.exchange(payload, 6)
    assert got == expected
    assert got[5][0] == b"descriptor\r\nwith a line break"
    assert got[5][2] == bytes(range(256)) * 40
    assert got[5][3] is None


async def test_an_error_reply_raises_and_leaves_the_connection_usable(
    redis: aioredis.Redis, wire: StreamPool
) -> None:
    key = f"wire:{uuid.uuid4().hex}"
    await redis.set(key, "text")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await wire.exchange(cmd("HGET", key, "f") + cmd("PING"), 2)
    assert await wire.exchange(cmd("GET", key), 1) == [b"text"]
    # inside EXEC an error is a value, as with redis-py
    replies = await wire.exchange(cmd("MULTI") + cmd("HGET", key, "f") + cmd("GET", key) + cmd("EXEC"), 4)
    assert isinstance(replies[3][0], ResponseError)
    assert replies[3][1] == b"text"


async def test_credentials_and_database_from_the_url(redis: aioredis.Redis, redis_server: object) -> None:
    user, password = f"wire{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await redis.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "+@all")  # type: ignore[no-untyped-call]
    kwargs = redis.connection_pool.connection_kwargs
    url = f"redis://{user}:{password}@{kwargs['host']}:{kwargs['port']}/5"
    client = aioredis.Redis.from_url(url)
    pool = for_client(client)
    try:
        key = f"wire:{uuid.uuid4().hex}"
        await client.set(key, "in db 5")
        assert await pool.exchange(cmd("GET", key) + cmd("ACL", "WHOAMI"), 2) == [b"in db 5", user.encode()]
        assert await redis.get(key) is None  # db 0 does not have it
        bad = StreamPool({**client.connection_pool.connection_kwargs, "password": "wrong"}, max_idle=1)
        with pytest.raises(ResponseError):
            await bad.exchange(cmd("PING"), 1)
    finally:
        await pool.aclose()
        await client.aclose()
        await redis.execute_command("ACL", "DELUSER", user)  # type: ignore[no-untyped-call]


async def test_a_connection_the_server_dropped_is_replaced(redis: aioredis.Redis, wire: StreamPool) -> None:
    (first,) = await wire.exchange(cmd("CLIENT", "ID"), 1)
    await redis.client_kill_filter(_id=first)
    (second,) = await wire.exchange(cmd("CLIENT", "ID"), 1)
    assert second != first
    (third,) = await wire.exchange(cmd("CLIENT", "ID"), 1)
    assert third == second  # and the new one is pooled


async def test_after_a_restart_every_pooled_connection_is_replaced_not_tried_in_turn(
    redis: aioredis.Redis, wire: StreamPool
) -> None:
    ids = await asyncio.gather(*(wire.exchange(cmd("CLIENT", "ID"), 1) for _ in range(3)))
    assert len({i[0] for i in ids}) == 3  # three pooled connections
    for (client_id,) in ids:
        await redis.client_kill_filter(_id=client_id)
    (fresh,) = await wire.exchange(cmd("CLIENT", "ID"), 1)
    assert fresh not in {i[0] for i in ids}


async def test_a_cancelled_exchange_closes_its_connection(redis: aioredis.Redis, wire: StreamPool) -> None:
    (before,) = await wire.exchange(cmd("CLIENT", "ID"), 1)
    blocking = asyncio.create_task(wire.exchange(cmd("BLPOP", f"wire:{uuid.uuid4().hex}", 5), 1))
    await asyncio.sleep(0.1)
    blocking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocking
    # the half-read connection is closed, not pooled: no later exchange can read BLPOP's late reply
    (after,) = await asyncio.wait_for(wire.exchange(cmd("CLIENT", "ID"), 1), 1)
    assert isinstance(after, int)
    assert after != before
    for _ in range(50):
        listed = {c["id"] for c in await redis.client_list()}
        if str(before) not in listed:
            break
        await asyncio.sleep(0.02)
    assert str(before) not in listed


async def test_a_slow_reply_times_out_with_a_redis_error(redis: aioredis.Redis) -> None:
    kwargs = {**redis.connection_pool.connection_kwargs, "socket_timeout": 0.1}
    pool = StreamPool(kwargs, max_idle=4)
    try:
        with pytest.raises(RedisTimeoutError):
            await pool.exchange(cmd("BLPOP", f"wire:{uuid.uuid4().hex}", 2), 1)
        assert await pool.exchange(cmd("PING"), 1) == [b"PONG"]
    finally:
        await pool.aclose()


async def test_a_server_that_is_gone_is_a_connection_error(redis: aioredis.Redis) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pool = StreamPool({"host": "127.0.0.1", "port": port, "socket_connect_timeout": 1.0}, max_idle=1)
    with pytest.raises((RedisConnectionError, OSError)):
        await pool.exchange(cmd("PING"), 1)

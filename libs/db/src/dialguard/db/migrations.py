"""Applies a service's numbered .sql migrations once each, recorded in a version table of its schema."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

import asyncpg

VERSION_TABLE = "schema_migrations"
_LOCK_KEY = 0x6469616C  # 'dial': serialises concurrent starters of the same service


def discover(directories: Sequence[Path]) -> list[tuple[str, str]]:
    """(version, sql) pairs of every directory, sorted by file name (shared libs use 0000_*)."""
    files = sorted((p for d in directories for p in d.glob("*.sql")), key=lambda p: p.name)
    return [(p.stem, p.read_text()) for p in files]


async def apply_migrations(
    conn: asyncpg.Connection, *, schema: str, directories: Sequence[Path]
) -> list[str]:
    """Apply the pending migrations in order; returns the versions applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(f'SET search_path TO "{schema}"')
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS "{schema}".{VERSION_TABLE} (
                    version text PRIMARY KEY,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"]: r["checksum"] for r in await conn.fetch(f"SELECT * FROM {VERSION_TABLE}")}
        for version, sql in discover(directories):
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    raise RuntimeError(f"migration {version} changed after it was applied")
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    f"INSERT INTO {VERSION_TABLE} (version, checksum) VALUES ($1, $2)", version, checksum
                )
            applied_now.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def pending(conn: asyncpg.Connection, *, schema: str, directories: Sequence[Path]) -> list[str]:
    """Versions on disk not yet applied (readiness is false while any are)."""
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f'"{schema}".{VERSION_TABLE}')
    wanted = [v for v, _ in discover(directories)]
    if not exists:
        return wanted
    done = {r["version"] for r in await conn.fetch(f'SELECT version FROM "{schema}".{VERSION_TABLE}')}
    return [v for v in wanted if v not in done]


def main() -> None:
    """`make migrate`: apply a service's migrations with its own role."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--dir", required=True, type=Path, action="append")
    args = parser.parse_args()

    async def run() -> None:
        conn = await asyncpg.connect(args.dsn)
        try:
            done = await apply_migrations(conn, schema=args.schema, directories=args.dir)
            print(f"{args.schema}: applied {done or 'nothing (up to date)'}")
        finally:
            await conn.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()

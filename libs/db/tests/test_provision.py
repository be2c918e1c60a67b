"""Service roles are walled off: each reaches only its own schema, and only databases it was given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from dialguard.db.provision import (
    SERVICE_SCHEMAS,
    provision_service_db,
    quote_ident,
    quote_literal,
    role_dsn,
    role_name,
)
from dialguard.testing.services import create_database

pytestmark = pytest.mark.integration


async def _connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def suppression(dsns: dict[str, str]) -> AsyncIterator[asyncpg.Connection]:
    async for conn in _connect(dsns["suppression"]):
        yield conn


@pytest.fixture
async def contact_list(dsns: dict[str, str]) -> AsyncIterator[asyncpg.Connection]:
    async for conn in _connect(dsns["contact-list"]):
        yield conn


async def test_a_service_role_cannot_read_another_services_schema(
    suppression: asyncpg.Connection, contact_list: asyncpg.Connection
) -> None:
    await suppression.execute("CREATE TABLE entries (value text)")
    await suppression.execute("INSERT INTO entries VALUES ('442079460958')")
    assert await suppression.fetchval("SELECT count(*) FROM suppression.entries") == 1
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for schema suppression"):
        await contact_list.fetch("SELECT * FROM suppression.entries")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for schema suppression"):
        await contact_list.execute("CREATE TABLE suppression.planted (x int)")


async def test_a_service_role_works_in_its_own_schema_and_not_in_public(
    contact_list: asyncpg.Connection,
) -> None:
    await contact_list.execute("CREATE TABLE contacts (id int)")
    where = await contact_list.fetchval(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'contacts'"
    )
    assert where == "contact_list"
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for schema public"):
        await contact_list.execute("CREATE TABLE public.leak (id int)")


async def test_a_role_cannot_connect_to_a_database_it_was_not_given(infra: Any, dsns: dict[str, str]) -> None:
    other_db = await create_database(infra.postgres_admin_url)
    schema = SERVICE_SCHEMAS["suppression"]
    await provision_service_db(other_db, schema=schema, role=role_name(schema), password="pw-suppression")
    stranger = dsns["contact-list"].rsplit("/", 1)[0] + "/" + other_db.rsplit("/", 1)[1]
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for database"):
        await asyncpg.connect(stranger)


async def test_provisioning_twice_changes_nothing_and_returns_the_same_dsn(database: str) -> None:
    schema = SERVICE_SCHEMAS["lead-action"]
    first = await provision_service_db(
        database, schema=schema, role="dg_lead_action", password="pw-lead_action"
    )
    async for conn in _connect(first):
        await conn.execute("CREATE TABLE kept (id int)")
        await conn.execute("INSERT INTO kept VALUES (1)")
    again = await provision_service_db(
        database, schema=schema, role="dg_lead_action", password="pw-lead_action"
    )
    assert again == first
    async for conn in _connect(again):
        assert await conn.fetchval("SELECT count(*) FROM kept") == 1


async def test_hostile_identifiers_and_passwords_stay_inert(database: str) -> None:
    schema, role, password = 'we"ird; DROP SCHEMA public', 'dg_we"ird', "it's a \\ pass'word"
    dsn = await provision_service_db(database, schema=schema, role=role, password=password)
    async for conn in _connect(dsn):
        assert await conn.fetchval("SELECT current_user") == role
        assert await conn.fetchval("SELECT current_schema()") == schema
        assert await conn.fetchval(f"SELECT {quote_literal(password)}") == password
        assert await conn.fetchval(f"SELECT 1 AS {quote_ident(schema)}") == 1
    admin = await asyncpg.connect(database)
    try:
        assert await admin.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'public'") == 1
        await admin.execute(f"DROP SCHEMA {quote_ident(schema)} CASCADE")
        await admin.execute(
            f"REVOKE ALL ON DATABASE {quote_ident(database.rsplit('/', 1)[1])} FROM {quote_ident(role)}"
        )
        await admin.execute(f"DROP ROLE {quote_ident(role)}")
    finally:
        await admin.close()


def test_role_dsn_keeps_host_port_and_options_but_not_the_admin_credentials() -> None:
    dsn = role_dsn(
        "postgresql://admin:secret@db.example:6543/app?sslmode=require&password=x",
        database="app",
        role="dg_suppression",
        password="p@ss:/word",
    )
    assert dsn == "postgresql://dg_suppression:p%40ss%3A%2Fword@db.example:6543/app?sslmode=require"


def test_quoting_rejects_nul_and_empty_names() -> None:
    with pytest.raises(ValueError, match="identifier"):
        quote_ident("")
    with pytest.raises(ValueError, match="identifier"):
        quote_ident("a\0b")
    with pytest.raises(ValueError, match="NUL"):
        quote_literal("a\0b")

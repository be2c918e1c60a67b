"""File imports into a contact list (Tovie flow): validate in the background into a staging table, then
commit only the valid rows in one set-based transaction with ContactImported / ImportCompleted events.
A bad row never fails an import (it is reported); nothing is ever half-imported."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import structlog

from dialguard.contact_list import repository as repo
from dialguard.contact_list.domain import ColumnPlan, ParsedRow, RowError, parse_row, same_columns
from dialguard.contact_list.outgoing import enqueue_staged_contacts_imported, publish_import_completed
from dialguard.events.envelope import format_time
from dialguard.files.tabular import Row, Table
from dialguard.identifiers.normalize import PhoneFormat
from dialguard.platform.runtime import ServiceRuntime

log = structlog.get_logger(__name__)
BATCH = 5000
OPEN_STATES = ("analyzing", "validated")


@dataclass
class ValidationJob:
    """What the background validation needs: the opened file and how to read it."""

    import_id: uuid.UUID
    account_id: str
    list_id: uuid.UUID
    table: Table
    path: str
    plan: ColumnPlan
    region: str
    phone_format: PhoneFormat | None

    def cleanup(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _batches(table: Table, size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in table.rows():
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _raw(cells: list[str]) -> str:
    return ",".join(cells)[:500]


def validate_batch(
    rows: list[Row], job: ValidationJob, seen: set[str]
) -> tuple[list[tuple[int, ParsedRow, str]], list[tuple[int, str, str, str]]]:
    """Parse a batch: valid rows (number, parsed, raw) and errors (number, value, code, reason); in-file
    duplicates are errors too."""
    valid: list[tuple[int, ParsedRow, str]] = []
    errors: list[tuple[int, str, str, str]] = []
    for row in rows:
        number, cells = row.number, row.cells
        if row.errors:
            err = row.errors[0]
            errors.append((number, _raw(cells), err.code, err.message))
            continue
        try:
            parsed = parse_row(cells, job.plan, region=job.region, phone_format=job.phone_format)
        except RowError as exc:
            errors.append((number, _raw(cells), exc.code, exc.reason))
            continue
        if parsed.row_hash in seen:
            errors.append((number, _raw(cells), "duplicate", "identical to an earlier row of this file"))
            continue
        seen.add(parsed.row_hash)
        valid.append((number, parsed, _raw(cells)))
    return valid, errors


async def _insert_errors(
    conn: asyncpg.Connection, import_id: uuid.UUID, errors: list[tuple[int, str, str, str]]
) -> None:
    if errors:
        await conn.execute(
            """INSERT INTO import_errors (import_id, row_number, value, code, reason)
               SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[])""",
            import_id,
            [e[0] for e in errors],
            [e[1] for e in errors],
            [e[2] for e in errors],
            [e[3] for e in errors],
        )


async def _stage(
    conn: asyncpg.Connection, import_id: uuid.UUID, valid: list[tuple[int, ParsedRow, str]]
) -> None:
    if valid:
        await conn.execute(
            """INSERT INTO import_rows (import_id, row_number, external_id, name, fields, timezone, units, row_hash, raw)
               SELECT $1, r.n, r.ext, r.name, r.fields::jsonb, r.tz, r.units::jsonb, r.hash, r.raw
               FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                           $9::text[]) AS r(n, ext, name, fields, tz, units, hash, raw)""",
            import_id,
            [n for n, _, _ in valid],
            [p.external_id for _, p, _ in valid],
            [p.name for _, p, _ in valid],
            [orjson.dumps(p.fields).decode() for _, p, _ in valid],
            [p.timezone for _, p, _ in valid],
            # callable: true, as the unit is unless the suppression projection says otherwise at commit
            # (ContactImported takes these units as they are for a contact with nothing suppressed).
            [orjson.dumps([{**u, "callable": True} for u in p.units]).decode() for _, p, _ in valid],
            [p.row_hash for _, p, _ in valid],
            [r for _, _, r in valid],
        )


async def run_validation(rt: ServiceRuntime, job: ValidationJob) -> None:
    """Background: count, then parse in batches into the staging table; rows identical to ones already in
    the list are duplicates. Ends `validated` (or `failed` with a reason)."""
    pool = rt.pool
    upcoming: asyncio.Future[Any] | None = None
    try:
        total = await asyncio.to_thread(job.table.count_rows)
        async with pool.acquire() as conn:
            await conn.execute("UPDATE imports SET total = $2 WHERE id = $1", job.import_id, total)
        seen: set[str] = set()
        processed = valid_n = invalid = duplicates = 0
        batches = _batches(job.table, BATCH)

        def read_and_validate() -> (
            tuple[int, list[tuple[int, ParsedRow, str]], list[tuple[int, str, str, str]]] | None
        ):
            batch = next(batches, None)
            return None if batch is None else (len(batch), *validate_batch(batch, job, seen))

        # Normalizing thousands of identifiers is CPU work: off the event loop, and the next batch's
        # while this one is staged in Postgres (one thread at a time reads the file and `seen`).
        upcoming = asyncio.ensure_future(asyncio.to_thread(read_and_validate))
        while True:
            ready = await upcoming
            if ready is None:
                break
            upcoming = asyncio.ensure_future(asyncio.to_thread(read_and_validate))
            batch_rows, valid, errors = ready
            async with pool.acquire() as conn, conn.transaction():
                status = await conn.fetchval(
                    "SELECT status FROM imports WHERE id = $1 FOR UPDATE", job.import_id
                )
                if status != "analyzing":
                    return  # cancelled meanwhile: the cancel removed the staged rows
                known = {
                    r["row_hash"]
                    for r in await conn.fetch(
                        "SELECT row_hash FROM list_rows WHERE list_id = $1 AND row_hash = ANY($2::text[])",
                        job.list_id,
                        [p.row_hash for _, p, _ in valid],
                    )
                }
                for number, parsed, raw in valid:
                    if parsed.row_hash in known:
                        errors.append((number, raw, "duplicate", "identical to a row already in the list"))
                valid = [v for v in valid if v[1].row_hash not in known]
                await _stage(conn, job.import_id, valid)
                await _insert_errors(conn, job.import_id, errors)
                processed += batch_rows
                valid_n += len(valid)
                duplicates += sum(1 for e in errors if e[2] == "duplicate")
                invalid += sum(1 for e in errors if e[2] != "duplicate")
                await conn.execute(
                    """UPDATE imports SET processed = $2, valid = $3, invalid = $4, duplicates = $5,
                           total = greatest(total, $2) WHERE id = $1""",
                    job.import_id,
                    processed,
                    valid_n,
                    invalid,
                    duplicates,
                )
        async with pool.acquire() as conn:
            await conn.execute(
                """UPDATE imports SET status = 'validated', total = processed WHERE id = $1 AND status = 'analyzing'""",
                job.import_id,
            )
    except Exception as exc:
        error = getattr(exc, "message", None) or str(exc) or repr(exc)
        log.warning("import validation failed", import_id=str(job.import_id), error=error)
        await fail_import(rt, import_id=job.import_id, account_id=job.account_id, error=error)
    finally:
        if upcoming is not None:  # stopped early: the read in flight finishes before the file goes
            with contextlib.suppress(BaseException):
                await upcoming
        job.cleanup()


async def fail_import(rt: ServiceRuntime, *, import_id: uuid.UUID, account_id: str, error: str) -> None:
    async with rt.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """UPDATE imports SET status = 'failed', error = $2, finished_at = now()
               WHERE id = $1 AND status IN ('analyzing', 'validated', 'running') RETURNING *""",
            import_id,
            error[:2000],
        )
        if row is not None:
            await conn.execute("DELETE FROM import_rows WHERE import_id = $1", import_id)
            await publish_import_completed(
                rt, conn, account_id=account_id, import_row=row, status="failed", error=error
            )


class ImportConflict(ValueError):
    """The list changed in a way that makes the staged rows unusable (other columns were committed first)."""


async def commit_import(
    rt: ServiceRuntime, *, import_id: uuid.UUID, account_id: str, actor: str | None
) -> None:
    """Background: every valid row in one transaction, set-based; then `completed` with events."""
    try:
        async with rt.pool.acquire() as conn, conn.transaction():
            # A few large set-based statements: JIT compiling them costs seconds and earns nothing, and
            # sorts and aggregates over a million rows must not spill to disk.
            await conn.execute("SET LOCAL jit = off; SET LOCAL work_mem = '256MB'")
            imp = await conn.fetchrow(
                "SELECT * FROM imports WHERE id = $1 AND account_id = $2", import_id, account_id
            )
            if imp is None or imp["status"] != "running":
                return
            list_row = await repo.lock_list(conn, account_id=account_id, list_id=imp["list_id"])
            if list_row is None:
                return
            await _apply(rt, conn, imp=imp, list_row=list_row)
    except ImportConflict as exc:
        await fail_import(rt, import_id=import_id, account_id=account_id, error=str(exc))
    except Exception as exc:
        error = str(exc) or repr(exc)
        log.warning("import commit failed", import_id=str(import_id), error=error)
        await fail_import(rt, import_id=import_id, account_id=account_id, error=error)


async def _apply(rt: ServiceRuntime, conn: asyncpg.Connection, *, imp: Any, list_row: Any) -> None:
    import_id, list_id, account_id = imp["id"], list_row["id"], imp["account_id"]
    if list_row["columns"] is None:
        await conn.execute("UPDATE contact_lists SET columns = $2 WHERE id = $1", list_id, imp["columns"])
    elif not same_columns(list_row["columns"], imp["columns"]):
        raise ImportConflict(
            f"the list's columns are now {list(list_row['columns'])}; upload a file with them"
        )
    # Rows another import committed after this one was validated are duplicates now.
    late = await conn.fetch(
        """DELETE FROM import_rows r USING list_rows l
           WHERE r.import_id = $1 AND l.list_id = $2 AND l.row_hash = r.row_hash RETURNING r.row_number, r.raw""",
        import_id,
        list_id,
    )
    await _insert_errors(
        conn,
        import_id,
        [(r["row_number"], r["raw"], "duplicate", "identical to a row already in the list") for r in late],
    )
    await conn.execute(
        "INSERT INTO list_rows (list_id, row_hash) SELECT $2, row_hash FROM import_rows WHERE import_id = $1 ON CONFLICT DO NOTHING",
        import_id,
        list_id,
    )
    counted = await conn.fetchrow(
        """SELECT count(*) AS imported, count(*) FILTER (WHERE external_id IS NULL) AS numbered
           FROM import_rows WHERE import_id = $1""",
        import_id,
    )
    imported, numbered = counted["imported"], counted["numbered"]
    if numbered:
        await conn.execute(
            "UPDATE contact_lists SET next_seq = next_seq + $2 WHERE id = $1", list_id, numbered
        )
    await repo.stage_commit(conn, import_id=import_id, list_id=list_id, next_seq=list_row["next_seq"])
    await repo.apply_staged_contacts(conn, import_id=import_id, list_id=list_id, account_id=account_id)
    await enqueue_staged_contacts_imported(
        rt, conn, account_id=account_id, list_row=list_row, import_id=import_id
    )
    await conn.execute("DELETE FROM import_rows WHERE import_id = $1", import_id)
    done = await conn.fetchrow(
        """UPDATE imports SET status = 'completed', imported = $2, duplicates = duplicates + $3,
               finished_at = now() WHERE id = $1 RETURNING *""",
        import_id,
        imported,
        len(late),
    )
    await publish_import_completed(rt, conn, account_id=account_id, import_row=done, status="completed")


async def cancel_import(rt: ServiceRuntime, conn: asyncpg.Connection, *, imp: Any) -> Any:
    """analyzing/validated → cancelled: staged rows dropped, ImportCompleted(cancelled) queued."""
    row = await conn.fetchrow(
        """UPDATE imports SET status = 'cancelled', skipped = valid, finished_at = now()
           WHERE id = $1 AND status = ANY($2::text[]) RETURNING *""",
        imp["id"],
        list(OPEN_STATES),
    )
    if row is not None:
        await conn.execute("DELETE FROM import_rows WHERE import_id = $1", imp["id"])
        await publish_import_completed(
            rt, conn, account_id=imp["account_id"], import_row=row, status="cancelled"
        )
    return row


def import_out(row: Any) -> dict[str, Any]:
    """The Import resource of CONTRACT §7, plus the validation counts the Tovie flow shows."""
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "processed": int(row["processed"]),
        "total": int(row["total"]),
        "counts": {
            "total": int(row["total"]),
            "imported": int(row["imported"]),
            "duplicates": int(row["duplicates"]),
            "invalid": int(row["invalid"]),
            "skipped": int(row["skipped"]),
        },
        "valid": int(row["valid"]),
        "invalid": int(row["invalid"]),
        "duplicates": int(row["duplicates"]),
        "contact_list_id": str(row["list_id"]),
        "filename": row["filename"],
        "columns": list(row["columns"]),
        "error": row["error"],
        "created_at": format_time(row["created_at"]),
        "finished_at": format_time(row["finished_at"]) if row["finished_at"] else None,
    }


def worker_id() -> str:
    """host:pid of this process: which imports' background jobs died with a process can be told apart."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def fail_orphaned_imports(rt: ServiceRuntime) -> int:
    """At start-up: imports validating or committing on this host whose process is gone (or whose pid we now
    hold, as after a container restart) will never finish; they fail with ImportCompleted(failed). A commit
    is one transaction, so a dead one left nothing behind."""
    host = socket.gethostname()
    async with rt.pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT id, account_id, worker FROM imports
               WHERE status IN ('analyzing', 'running') AND split_part(worker, ':', 1) = $1""",
            host,
        )
    failed = 0
    for row in rows:
        pid_text = (row["worker"] or "").rpartition(":")[2]
        pid = int(pid_text) if pid_text.isdigit() else -1
        if pid == os.getpid() or pid < 0 or not _alive(pid):
            await fail_import(
                rt,
                import_id=row["id"],
                account_id=row["account_id"],
                error="interrupted by a service restart; upload again",
            )
            failed += 1
    return failed

"""Tests that need a service of their own: filter lists with a fast auto-add poll, restart recovery."""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from dialguard.testing.fixtures import StartService
from dialguard.testing.helpers import auth, wait_for

from .test_contact_lists import create_list, import_file


async def test_preview_create_and_auto_add_from_filter(
    start_service: StartService, dsns: dict[str, str]
) -> None:
    svc = await start_service("contact-list", AUTO_ADD_POLL_SECONDS="0.3")
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=30) as c:
        source = await create_list(c, name_column="name")
        await import_file(
            c,
            source["id"],
            "phone,name,email,city\n12672345601,Ann,ann@example.com,Boston\n12672345602,Bob,,Chicago\n"
            "12672345603,Cy,,Boston\n",
        )
        boston = {"fields": {"city": "Boston"}}
        preview = await c.post(
            "/v1/contact-lists:preview-filter", json={"filter": boston}, headers=auth("acme", ["VIEWER"])
        )
        assert preview.status_code == 200, preview.text
        assert preview.json()["total"] == 2
        assert [x["name"] for x in preview.json()["sample"]] == ["Ann", "Cy"]
        by_email = await c.post(
            "/v1/contact-lists:preview-filter", json={"filter": {"channel": "email"}}, headers=auth()
        )
        assert [x["name"] for x in by_email.json()["sample"]] == ["Ann"]
        bad = await c.post(
            "/v1/contact-lists:preview-filter", json={"filter": {"colour": "red"}}, headers=auth()
        )
        assert bad.status_code == 422

        body = {"name": "boston", "filter": boston, "auto_add": True, "auto_add_cron": "*/5 * * * *"}
        assert (
            await c.post("/v1/contact-lists:from-filter", json=body, headers=auth("acme", ["VIEWER"]))
        ).status_code == 403
        created = await c.post("/v1/contact-lists:from-filter", json=body, headers=auth())
        assert created.status_code == 201, created.text
        fl = created.json()
        assert (fl["source"], fl["counts"]["total"], fl["counts"]["callable"]) == ("filter", 2, 2)
        assert fl["next_auto_add_at"] is not None
        copied = (await c.get(f"/v1/contact-lists/{fl['id']}/contacts", headers=auth())).json()["items"]
        assert [u["value"] for u in copied[0]["units"]] == ["12672345601", "ann@example.com"]
        # Copies are not matched again: a second filter list sees only the originals.
        again = await c.post("/v1/contact-lists:preview-filter", json={"filter": boston}, headers=auth())
        assert again.json()["total"] == 2

        # A new matching contact arrives; when the schedule fires it is added, and only once.
        await import_file(c, source["id"], "phone,name,email,city\n12672345604,Dee,,Boston\n")

        async def make_due() -> None:
            conn = await asyncpg.connect(dsns["contact-list"])
            try:
                await conn.execute(
                    "UPDATE contact_list.contact_lists SET next_auto_add_at = now() - interval '1 second' WHERE id = $1",
                    fl["id"],
                )
            finally:
                await conn.close()

        async def rescheduled() -> dict[str, Any] | None:
            got = (await c.get(f"/v1/contact-lists/{fl['id']}", headers=auth())).json()
            nxt = datetime.fromisoformat(got["next_auto_add_at"].replace("Z", "+00:00"))
            return dict(got) if nxt > datetime.now(UTC) else None

        await make_due()
        assert (await wait_for(rescheduled))["counts"]["total"] == 3
        await make_due()
        assert (await wait_for(rescheduled))["counts"]["total"] == 3
        names = [
            x["name"]
            for x in (await c.get(f"/v1/contact-lists/{fl['id']}/contacts", headers=auth())).json()["items"]
        ]
        assert sorted(names) == ["Ann", "Cy", "Dee"]
        assert (await c.get(f"/v1/contact-lists/{fl['id']}", headers=auth("globex"))).status_code == 404


async def test_restart_fails_imports_whose_process_is_gone(
    start_service: StartService, dsns: dict[str, str]
) -> None:
    first = await start_service("contact-list")
    async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as c:
        cl = await create_list(c)
        live = await import_file(c, cl["id"], "phone\n12672345678\n")
        conn = await asyncpg.connect(dsns["contact-list"])
        try:
            host = socket.gethostname()
            for worker, status in ((f"{host}:999999999", "analyzing"), (f"{host}:{os.getpid()}", "running")):
                await conn.execute(
                    """INSERT INTO contact_list.imports (id, account_id, list_id, status, filename, columns, worker)
                       VALUES ($1, 'acme', $2, $3, 'x.csv', '{phone}', $4)""",
                    uuid.uuid4(),
                    uuid.UUID(cl["id"]),
                    status,
                    worker,
                )
            await start_service("contact-list")  # a second worker on the same host and database
            statuses = await conn.fetch(
                "SELECT worker, status, error FROM contact_list.imports WHERE list_id = $1 AND id <> $2",
                uuid.UUID(cl["id"]),
                uuid.UUID(live["id"]),
            )
        finally:
            await conn.close()
    by_worker = {r["worker"]: (r["status"], r["error"]) for r in statuses}
    # The dead pid's import failed; the live process's (this test's pid stands in for one) is left alone.
    assert by_worker[f"{host}:999999999"][0] == "failed"
    assert "restart" in by_worker[f"{host}:999999999"][1]
    assert by_worker[f"{host}:{os.getpid()}"] == ("running", None)

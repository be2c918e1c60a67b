"""Contact lists, imports, contacts and exports through HTTP on the real stack."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openpyxl

from dialguard.testing.helpers import auth, wait_for
from dialguard.testing.services import ServiceProcess

FILE = (
    "phone,first_name,last_name,city,email,timezone\n"
    "12672345678,Ann,Lee,Boston,ann@example.com,America/New_York\n"
    "12672345679,Bob,Ray,=cmd|' /C calc'!A0,,\n"
    "12345,Bad,Phone,Nowhere,,\n"
    "12672345678,Ann,Lee,Boston,ann@example.com,America/New_York\n"
    "12672345678,Ann,Lee,Chicago,ann@example.com,America/New_York\n"
)


async def create_list(c: httpx.AsyncClient, account: str = "acme", **extra: Any) -> dict[str, Any]:
    body = {
        "name": f"list-{uuid.uuid4().hex[:6]}",
        "kind": "telephony",
        "close_when_all_reached": False,
        **extra,
    }
    r = await c.post("/v1/contact-lists", json=body, headers=auth(account))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def upload(
    c: httpx.AsyncClient,
    list_id: str,
    content: bytes | str,
    name: str = "contacts.csv",
    account: str = "acme",
    **form: str,
) -> httpx.Response:
    data = {"consent_confirmed": "true", **form}
    raw = content.encode() if isinstance(content, str) else content
    return await c.post(
        f"/v1/contact-lists/{list_id}/imports",
        files={"file": (name, raw, "text/csv")},
        data=data,
        headers=auth(account),
    )


async def wait_status(
    c: httpx.AsyncClient, import_id: str, status: str, account: str = "acme"
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        body = (await c.get(f"/v1/imports/{import_id}", headers=auth(account))).json()
        assert body["status"] != "failed", body
        return dict(body) if body["status"] == status else None

    result: dict[str, Any] = await wait_for(reached)
    return result


async def import_file(
    c: httpx.AsyncClient, list_id: str, content: str, account: str = "acme", **form: str
) -> dict[str, Any]:
    r = await upload(c, list_id, content, account=account, **form)
    assert r.status_code == 202, r.text
    import_id = r.json()["import_id"]
    await wait_status(c, import_id, "validated", account)
    assert (await c.post(f"/v1/imports/{import_id}/commit", headers=auth(account))).status_code == 202
    return await wait_status(c, import_id, "completed", account)


async def test_validate_report_commit_and_contacts(shared_service: ServiceProcess) -> None:
    svc = shared_service
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=30) as c:
        cl = await create_list(c, name_column="first_name")
        assert cl["counts"] == dict.fromkeys(
            ("total", "callable", "planning", "open", "attempted", "flagged", "closed"), 0
        )
        assert (cl["campaign"], cl["kind"], cl["channel"]) == (None, "telephony", "voice")
        r = await upload(c, cl["id"], FILE)
        assert r.status_code == 202, r.text
        imp = await wait_status(c, r.json()["import_id"], "validated")
        assert (imp["valid"], imp["invalid"], imp["duplicates"], imp["total"]) == (3, 1, 1, 5)
        assert imp["counts"]["imported"] == 0

        report = (await c.get(f"/v1/imports/{imp['id']}/errors", headers=auth())).text
        rows = list(csv.reader(io.StringIO(report)))
        assert rows[0] == ["row", "value", "code", "reason"]
        assert [(r[0], r[2]) for r in rows[1:]] == [("4", "invalid_phone"), ("5", "duplicate")]
        assert "12345" in rows[1][1]

        # Nothing is in the list before commit.
        assert (await c.get(f"/v1/contact-lists/{cl['id']}", headers=auth())).json()["counts"]["total"] == 0
        assert (await c.post(f"/v1/imports/{imp['id']}/commit", headers=auth())).status_code == 202
        done = await wait_status(c, imp["id"], "completed")
        assert done["counts"] == {"total": 5, "imported": 3, "duplicates": 1, "invalid": 1, "skipped": 0}
        again = await c.post(f"/v1/imports/{imp['id']}/commit", headers=auth())
        assert (again.status_code, again.json()["error"]["code"]) == (409, "import_not_validated")

        got = (await c.get(f"/v1/contact-lists/{cl['id']}", headers=auth("acme", ["VIEWER"]))).json()
        assert got["counts"]["total"] == 3
        assert got["counts"]["callable"] == 3
        assert got["columns"] == ["phone", "first_name", "last_name", "city", "email", "timezone"]
        page = (
            await c.get(f"/v1/contact-lists/{cl['id']}/contacts?limit=2", headers=auth("acme", ["DIALER"]))
        ).json()
        assert len(page["items"]) == 2
        assert page["next_cursor"]
        rest = (
            await c.get(
                f"/v1/contact-lists/{cl['id']}/contacts",
                params={"cursor": page["next_cursor"]},
                headers=auth(),
            )
        ).json()
        assert "items" in rest, rest
        contacts = page["items"] + rest["items"]
        assert [x["external_id"] for x in contacts] == ["1", "2", "3"]
        ann = contacts[0]
        assert ann["name"] == "Ann"
        assert ann["status"] == "callable"
        assert ann["units"] == [
            {"type": "phone", "value": "12672345678", "channel": "voice", "priority": 1, "callable": True},
            {
                "type": "email",
                "value": "ann@example.com",
                "channel": "email",
                "priority": 2,
                "callable": True,
            },
        ]
        assert ann["fields"] == {"last_name": "Lee", "city": "Boston"}
        assert ann["timezone"] == "America/New_York"
        assert contacts[2]["fields"]["city"] == "Chicago"  # differs in one field: imported

        # The same file again: every valid row is now a duplicate of a row in the list.
        r2 = await upload(c, cl["id"], FILE)
        imp2 = await wait_status(c, r2.json()["import_id"], "validated")
        assert (imp2["valid"], imp2["duplicates"], imp2["invalid"]) == (0, 4, 1)
        cancelled = await c.post(f"/v1/imports/{imp2['id']}/cancel", headers=auth())
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"

        csv_export = await c.get(f"/v1/contact-lists/{cl['id']}/export?format=csv", headers=auth())
        assert csv_export.status_code == 200
        exported = list(csv.reader(io.StringIO(csv_export.text)))
        assert exported[0][:6] == ["contact_id", "external_id", "name", "status", "timezone", "units"]
        assert any(cell.startswith("'=cmd") for row in exported for cell in row)
        xlsx = await c.get(f"/v1/contact-lists/{cl['id']}/export", headers=auth("acme", ["VIEWER"]))
        assert xlsx.status_code == 200
        sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
        values = [[cell.value for cell in row] for row in sheet.iter_rows()]
        assert values[0][0] == "contact_id"
        assert len(values) == 4
        assert any(isinstance(v, str) and v.startswith("'=cmd") for row in values for v in row)
        bad = await c.get(f"/v1/contact-lists/{cl['id']}/export?format=pdf", headers=auth())
        assert (bad.status_code, bad.json()["error"]["code"]) == (400, "unknown_format")


async def test_unique_id_updates_instead_of_duplicating(shared_service: ServiceProcess) -> None:
    svc = shared_service
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=30) as c:
        cl = await create_list(c, unique_id_column="id", name_column="full_name")
        first = "phone,id,full_name,debt\n12672345678,A1,Nadya,75.25\n12672345679,A2,Nadiia,150.5\n"
        await import_file(c, cl["id"], first)
        second = "phone,id,full_name,debt\n12672345670,A1,Nadya K,80\n12672345671,A3,Cristina,225.75\n"
        done = await import_file(c, cl["id"], second)
        assert done["counts"]["imported"] == 2
        items = (await c.get(f"/v1/contact-lists/{cl['id']}/contacts", headers=auth())).json()["items"]
        by_id = {x["external_id"]: x for x in items}
        assert sorted(by_id) == ["A1", "A2", "A3"]
        assert by_id["A1"]["name"] == "Nadya K"
        assert by_id["A1"]["fields"] == {"debt": "80"}
        assert [u["value"] for u in by_id["A1"]["units"]] == ["12672345670"]
        counts = (await c.get(f"/v1/contact-lists/{cl['id']}", headers=auth())).json()["counts"]
        assert (counts["total"], counts["callable"]) == (3, 3)  # the update did not count A1 twice


async def test_bad_files_and_inputs_are_refused_clearly(shared_service: ServiceProcess) -> None:
    svc = shared_service
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=30) as c:
        cl = await create_list(c)
        no_header = await upload(c, cl["id"], "12672345678,Ann\n12672345679,Bob\n")
        assert (no_header.status_code, no_header.json()["error"]["code"]) == (422, "missing_header")
        empty = await upload(c, cl["id"], b"")
        assert (empty.status_code, empty.json()["error"]["code"]) == (422, "empty_file")
        header_only = await upload(c, cl["id"], "phone,name\n")
        assert (header_only.status_code, header_only.json()["error"]["code"]) == (422, "empty_file")
        pdf = await upload(c, cl["id"], b"%PDF-1.4 binary", name="list.pdf")
        assert pdf.status_code == 415
        big = await upload(c, cl["id"], b"phone\n" + b"12672345678\n" * (21 * 1024 * 1024 // 12))
        assert (big.status_code, big.json()["error"]["code"]) == (413, "file_too_large")
        no_consent = await c.post(
            f"/v1/contact-lists/{cl['id']}/imports",
            files={"file": ("a.csv", b"phone\n12672345678\n", "text/csv")},
            headers=auth(),
        )
        assert no_consent.status_code == 422
        assert no_consent.json()["error"]["details"][0]["field"] == "consent_confirmed"

        await import_file(c, cl["id"], "phone,city\n12672345678,Boston\n")
        mixed = await upload(c, cl["id"], "phone,town\n12672345679,Boston\n")
        assert (mixed.status_code, mixed.json()["error"]["code"]) == (422, "columns_mismatch")
        assert mixed.json()["error"]["details"][0]["expected"] == ["phone", "city"]

        # Before any commit, the first upload still on its way in sets the columns.
        fresh = await create_list(c)
        assert (await upload(c, fresh["id"], "phone,city\n12672345678,Boston\n")).status_code == 202
        pending_mixed = await upload(c, fresh["id"], "phone,town\n12672345679,Boston\n")
        assert (pending_mixed.status_code, pending_mixed.json()["error"]["code"]) == (422, "columns_mismatch")

        bad_kind = await c.post("/v1/contact-lists", json={"name": "x", "kind": "fax"}, headers=auth())
        assert bad_kind.status_code == 422
        text_no_channel = await c.post(
            "/v1/contact-lists", json={"name": "x", "kind": "text"}, headers=auth()
        )
        assert text_no_channel.json()["error"]["details"][0]["field"] == "channel"
        bad_status = await c.get(f"/v1/contact-lists/{cl['id']}/contacts?status=gone", headers=auth())
        assert (bad_status.status_code, bad_status.json()["error"]["code"]) == (400, "unknown_status")


async def test_roles_tenancy_and_delete_confirmation(shared_service: ServiceProcess) -> None:
    svc = shared_service
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=30) as c:
        viewer = await c.post("/v1/contact-lists", json={"name": "v"}, headers=auth("acme", ["VIEWER"]))
        assert viewer.status_code == 403
        assert (await c.get("/v1/contact-lists")).status_code == 401
        cl = await create_list(c)
        dialer_upload = await c.post(
            f"/v1/contact-lists/{cl['id']}/imports",
            files={"file": ("a.csv", b"phone\n12672345678\n", "text/csv")},
            data={"consent_confirmed": "true"},
            headers=auth("acme", ["DIALER"]),
        )
        assert dialer_upload.status_code == 403
        other = auth("globex")
        assert (await c.get(f"/v1/contact-lists/{cl['id']}", headers=other)).status_code == 404
        assert (await c.get(f"/v1/contact-lists/{cl['id']}/contacts", headers=other)).status_code == 404
        assert (await upload(c, cl["id"], "phone\n12672345678\n", account="globex")).status_code == 404
        assert (
            await c.delete(f"/v1/contact-lists/{cl['id']}?confirm=true", headers=other)
        ).status_code == 404
        assert [x["id"] for x in (await c.get("/v1/contact-lists", headers=other)).json()["items"]] == []
        imp = await import_file(c, cl["id"], "phone\n12672345678\n")
        assert (await c.get(f"/v1/imports/{imp['id']}", headers=other)).status_code == 404

        url = f"/v1/contact-lists/{cl['id']}"
        link = {"campaign": {"campaign_id": "camp-5", "list_id": "l-5"}, "max_attempts": 5}
        assert (await c.patch(url, json=link, headers=auth("acme", ["VIEWER"]))).status_code == 403
        assert (await c.patch(url, json=link, headers=other)).status_code == 404
        patched = (await c.patch(url, json=link, headers=auth())).json()
        assert (patched["campaign"], patched["campaign_status"], patched["max_attempts"]) == (
            {"campaign_id": "camp-5", "list_id": "l-5"},
            "active",
            5,
        )
        no_auto = await c.patch(url, json={"auto_add": True}, headers=auth())
        assert no_auto.json()["error"]["details"][0]["field"] == "auto_add"
        unlinked = (await c.patch(url, json={"campaign": None}, headers=auth())).json()
        assert (unlinked["campaign"], unlinked["campaign_status"]) == (None, None)

        unconfirmed = await c.delete(f"/v1/contact-lists/{cl['id']}", headers=auth())
        assert (unconfirmed.status_code, unconfirmed.json()["error"]["code"]) == (
            400,
            "confirmation_required",
        )
        assert (
            await c.delete(f"/v1/contact-lists/{cl['id']}?confirm=true", headers=auth())
        ).status_code == 204
        assert (await c.get(f"/v1/contact-lists/{cl['id']}", headers=auth())).status_code == 404


XLS_FIXTURE = Path(__file__).resolve().parents[4] / "libs" / "files" / "tests" / "fixtures" / "contacts.xls"


def _xlsx(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def _import_bytes(
    c: httpx.AsyncClient, list_id: str, content: bytes, name: str, **form: str
) -> dict[str, Any]:
    r = await upload(c, list_id, content, name=name, **form)
    assert r.status_code == 202, r.text
    validated = await wait_status(c, r.json()["import_id"], "validated")
    assert (await c.post(f"/v1/imports/{validated['id']}/commit", headers=auth())).status_code == 202
    return await wait_status(c, validated["id"], "completed")


async def test_xlsx_and_xls_files_import(shared_service: ServiceProcess) -> None:
    svc = shared_service
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=30) as c:
        sheet_list = await create_list(c, name_column="Name")
        content = _xlsx(
            [["Phone", "Name", "Debt"], [12672345678, "Ann", 75.25], ["+44 20 7946 0958", "Bob", 3]]
        )
        done = await _import_bytes(c, sheet_list["id"], content, "clients.xlsx")
        assert done["counts"]["imported"] == 2
        items = (await c.get(f"/v1/contact-lists/{sheet_list['id']}/contacts", headers=auth())).json()[
            "items"
        ]
        assert [(x["name"], x["units"][0]["value"], x["fields"]) for x in items] == [
            ("Ann", "12672345678", {"Debt": "75.25"}),
            ("Bob", "442079460958", {"Debt": "3"}),
        ]
        old_excel = await create_list(c)
        done = await _import_bytes(
            c, old_excel["id"], XLS_FIXTURE.read_bytes(), "contacts.xls", skip_rows="1"
        )
        assert done["counts"]["imported"] == 2
        got = (await c.get(f"/v1/contact-lists/{old_excel['id']}", headers=auth())).json()
        assert got["columns"] == ["phone", "email", "joined", "amount", "active"]


async def test_text_list_and_ambiguous_phones(shared_service: ServiceProcess) -> None:
    svc = shared_service
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=30) as c:
        email_list = await create_list(
            c, kind="text", channel="email", name_column="full_name", unique_id_column="id"
        )
        # The NovaTalks sample as the seed writes it: the id first, the email (the channel's client id) second.
        await import_file(
            c,
            email_list["id"],
            "id,email,full_name,debt\n1,stonadya@ukr.net,nadya,75.25\n2,nadiia@com.ua,nadiia,150.5\n3,not-an-email,x,1\n",
        )
        items = (await c.get(f"/v1/contact-lists/{email_list['id']}/contacts", headers=auth())).json()[
            "items"
        ]
        assert [(x["external_id"], x["units"][0]["type"], x["units"][0]["channel"]) for x in items] == [
            ("1", "email", "email"),
            ("2", "email", "email"),
        ]

        phones = await create_list(c)
        r = await upload(c, phones["id"], "phone\n2032345678\n12672345678\n")
        imp = await wait_status(c, r.json()["import_id"], "validated")
        assert (imp["valid"], imp["invalid"]) == (1, 1)
        report = list(
            csv.reader(io.StringIO((await c.get(f"/v1/imports/{imp['id']}/errors", headers=auth())).text))
        )
        assert report[1][:3] == ["2", "2032345678", "ambiguous_phone"]
        assert "12032345678" in report[1][3]
        national = await upload(c, phones["id"], "phone\n2032345678\n", phone_format="national")
        imp = await wait_status(c, national.json()["import_id"], "validated")
        assert (imp["valid"], imp["invalid"]) == (1, 0)


async def test_lists_page_with_a_cursor(shared_service: ServiceProcess) -> None:
    account = f"page-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=shared_service.base_url, timeout=30) as c:
        made = [(await create_list(c, account, name=f"l{i}"))["id"] for i in range(3)]
        first = (await c.get("/v1/contact-lists?limit=2", headers=auth(account, ["VIEWER"]))).json()
        assert first["next_cursor"]
        rest = (
            await c.get(
                "/v1/contact-lists",
                params={"cursor": first["next_cursor"]},
                headers=auth(account, ["DIALER"]),
            )
        ).json()
        assert rest["next_cursor"] is None
        assert [x["id"] for x in first["items"] + rest["items"]] == made
        bad = await c.get("/v1/contact-lists?cursor=!!", headers=auth(account))
        assert (bad.status_code, bad.json()["error"]["details"][0]["field"]) == (422, "cursor")
        assert (await c.get("/v1/contact-lists?limit=5000", headers=auth(account))).status_code == 422


async def test_deleting_a_list_removes_its_contacts_units_and_fingerprints(
    shared_service: ServiceProcess,
) -> None:
    svc = shared_service
    async with httpx.AsyncClient(base_url=svc.base_url, timeout=30) as c:
        cl = await create_list(c)
        r = await upload(c, cl["id"], b"phone,email\n12672345001,a@example.com\n12672345002,\n")
        assert r.status_code == 202, r.text
        pending = await wait_status(c, r.json()["import_id"], "validated")
        assert (await c.post(f"/v1/imports/{pending['id']}/commit", headers=auth())).status_code == 202
        await wait_status(c, pending["id"], "completed")
        assert (
            await c.delete(f"/v1/contact-lists/{cl['id']}?confirm=true", headers=auth())
        ).status_code == 204
    conn = await asyncpg.connect(svc.env["DATABASE_URL"])
    try:
        list_id = uuid.UUID(cl["id"])
        left = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM contact_list.contacts WHERE list_id = $1) AS contacts,
                      (SELECT count(*) FROM contact_list.units u WHERE NOT EXISTS (
                           SELECT 1 FROM contact_list.contacts c WHERE c.id = u.contact_id)) AS orphan_units,
                      (SELECT count(*) FROM contact_list.list_rows WHERE list_id = $1) AS fingerprints,
                      (SELECT count(*) FROM contact_list.import_rows r WHERE NOT EXISTS (
                           SELECT 1 FROM contact_list.imports i WHERE i.id = r.import_id)) AS orphan_rows""",
            list_id,
        )
    finally:
        await conn.close()
    assert dict(left) == {"contacts": 0, "orphan_units": 0, "fingerprints": 0, "orphan_rows": 0}

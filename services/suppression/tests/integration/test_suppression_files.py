"""Imports, analysis, error reports, exports and samples through HTTP on the real stack."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from typing import Any

import httpx
import openpyxl
import orjson

from dialguard.events.topics import IMPORTS_COMPLETED
from dialguard.suppression.importing import BATCH, WRITERS
from dialguard.testing.fixtures import StartService
from dialguard.testing.helpers import account_events, auth, wait_for

CSV = (
    "Phone;Reason;Ignored\n"
    "+1 267 234 5678;asked;x\n"
    '12672345679;=HYPERLINK("evil");x\n'
    "not-a-phone;bad;x\n"
    "12672345678;dup;x\n"
    "optout@example.com;mail;x\n"
).encode("utf-8-sig")


async def _stoplist(c: httpx.AsyncClient, name: str, account: str = "acme") -> dict[str, Any]:
    r = await c.post("/v1/stoplists", json={"name": name}, headers=auth(account))
    assert r.status_code == 201
    return dict(r.json())


async def _finished_import(
    c: httpx.AsyncClient, import_id: str, timeout: float = 60, account: str = "acme"
) -> dict[str, Any]:
    """Poll the import until it is completed or failed."""

    async def finished() -> Any:
        r = (await c.get(f"/v1/imports/{import_id}", headers=auth(account))).json()
        return r if r["status"] in ("completed", "failed") else None

    return dict(await wait_for(finished, timeout=timeout))


async def test_analyze_then_import_with_mapping_progress_errors_and_event(
    start_service: StartService,
) -> None:
    sup = await start_service("suppression")
    async with httpx.AsyncClient(base_url=sup.base_url, timeout=30) as c:
        a, b = await _stoplist(c, "a"), await _stoplist(c, "b")
        analysis = await c.post(
            f"/v1/stoplists/{a['id']}/imports:analyze",
            files={"file": ("list.csv", CSV, "text/csv")},
            headers=auth(),
        )
        assert analysis.status_code == 200, analysis.text
        body = analysis.json()
        assert body["columns"] == ["Phone", "Reason", "Ignored"]
        assert body["suggested_mapping"] == {"Phone": "phone", "Reason": "reason"}
        assert body["file"]["delimiter"] == ";"
        assert body["counts"] == {"rows": 5, "valid": 3, "invalid": 2, "sampled": False}

        started = await c.post(
            "/v1/imports",
            files={"file": ("list.csv", CSV, "text/csv")},
            data={
                "stoplist_ids": f"{a['id']},{b['id']}",
                "mapping": orjson.dumps({"Phone": "identifier", "Reason": "reason"}).decode(),
            },
            headers=auth(),
        )
        assert started.status_code == 202, started.text
        import_id = started.json()["import_id"]
        result = await _finished_import(c, import_id)
        assert result["status"] == "completed", result
        assert result["processed"] == result["total"] == 5
        assert result["counts"]["imported"] == 6  # 3 distinct identifiers into each of two stoplists
        assert result["counts"]["invalid"] == 1
        assert result["counts"]["duplicates"] == 1
        for sl in (a, b):
            assert (await c.get(f"/v1/stoplists/{sl['id']}", headers=auth())).json()["record_count"] == 3

        errors = await c.get(f"/v1/imports/{import_id}/errors", headers=auth())
        rows = list(csv.reader(io.StringIO(errors.text)))
        assert rows[0] == ["row", "value", "code", "reason"]
        assert [r[0] for r in rows[1:]] == ["4"]
        assert rows[1][2] == "invalid_phone"
        assert (await c.get(f"/v1/imports/{import_id}", headers=auth("globex"))).status_code == 404

        export = await c.get(f"/v1/stoplists/{a['id']}/export", headers=auth("acme", ["VIEWER"]))
        lines = list(csv.reader(io.StringIO(export.text)))
        assert lines[0][:3] == ["entry_id", "type", "value"]
        assert {line[2] for line in lines[1:]} == {"12672345678", "12672345679", "optout@example.com"}
        evil = next(line for line in lines[1:] if line[2] == "12672345679")
        assert evil[6].startswith("'=")
        only = await c.get(f"/v1/stoplists/{a['id']}/export?type=email", headers=auth())
        assert len(list(csv.reader(io.StringIO(only.text)))) == 2


async def test_a_many_batch_import_into_two_stoplists_counts_every_row_once(
    infra: Any, start_service: StartService
) -> None:
    """Several batches are in Postgres at once (importing.WRITERS): repeats across batches, bad rows
    and two target stoplists must still add up exactly."""
    phones = [f"1267234{i:04d}" for i in range(4000)]
    lines = ["phone"]
    bad = 0
    for i, phone in enumerate(phones):
        lines.append(phone)
        if i % 8 == 7:  # a repeat of a row from an earlier batch, from the second batch on
            lines.append(phones[i // 4])
        if i % 997 == 0:
            lines.append(f"not-a-phone-{i}")
            bad += 1
    repeats = len(lines) - 1 - len(phones) - bad
    assert len(lines) - 1 > (WRITERS + 1) * BATCH  # more batches than are ever in Postgres at once
    assert repeats == 500
    account = f"many-{uuid.uuid4().hex[:8]}"
    sup = await start_service("suppression")
    async with httpx.AsyncClient(base_url=sup.base_url, timeout=30) as c:
        a, b = await _stoplist(c, "many-a", account), await _stoplist(c, "many-b", account)
        started = await c.post(
            "/v1/imports",
            files={"file": ("many.csv", "\n".join(lines).encode(), "text/csv")},
            data={"stoplist_ids": f"{a['id']},{b['id']}"},
            headers=auth(account),
        )
        assert started.status_code == 202, started.text
        import_id = started.json()["import_id"]
        result = await _finished_import(c, import_id, timeout=120, account=account)
        assert result["status"] == "completed", result
        assert result["processed"] == result["total"] == len(lines) - 1
        assert result["counts"]["imported"] == 2 * len(phones)
        assert result["counts"]["duplicates"] == repeats
        assert result["counts"]["invalid"] == bad
        for sl in (a, b):
            got = (await c.get(f"/v1/stoplists/{sl['id']}", headers=auth(account))).json()
            assert got["record_count"] == len(phones), got
        errors = await c.get(f"/v1/imports/{import_id}/errors", headers=auth(account))
        assert len(list(csv.reader(io.StringIO(errors.text)))) == 1 + bad
    # ImportCompleted carries the counts the import row has (every batch moved them).
    [completed] = await account_events(infra.kafka_bootstrap, IMPORTS_COMPLETED, account, 1)
    assert completed["payload"]["import_id"] == import_id
    assert completed["payload"]["status"] == "completed"
    assert completed["payload"]["counts"] == result["counts"]


async def test_xlsx_and_zipped_xlsx_import(start_service: StartService) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Phone", "Email"])
    sheet.append([12672345678, "x@example.com"])
    sheet.append(["not a phone", None])
    raw = io.BytesIO()
    book.save(raw)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("list.xlsx", raw.getvalue())
    sup = await start_service("suppression")
    async with httpx.AsyncClient(base_url=sup.base_url, timeout=30) as c:
        for name, body in (("list.xlsx", raw.getvalue()), ("list.zip", zipped.getvalue())):
            sl = await _stoplist(c, name)
            started = await c.post(
                "/v1/imports", files={"file": (name, body)}, data={"stoplist_ids": sl["id"]}, headers=auth()
            )
            assert started.status_code == 202, started.text

            result = await _finished_import(c, started.json()["import_id"])
            assert result["status"] == "completed", result
            assert result["counts"]["imported"] == 2, result  # phone and email of row 2
            assert result["counts"]["invalid"] == 1, result


async def test_bad_files_are_refused_clearly(start_service: StartService) -> None:
    sup = await start_service("suppression")
    async with httpx.AsyncClient(base_url=sup.base_url, timeout=30) as c:
        sl = await _stoplist(c, "x")
        url = f"/v1/stoplists/{sl['id']}/imports:analyze"
        pdf = await c.post(url, files={"file": ("x.pdf", b"%PDF-1.4", "application/pdf")}, headers=auth())
        assert (pdf.status_code, pdf.json()["error"]["code"]) == (415, "unsupported_file_type")
        empty = await c.post(url, files={"file": ("x.csv", b"", "text/csv")}, headers=auth())
        assert (empty.status_code, empty.json()["error"]["code"]) == (422, "empty_file")
        header_only = await c.post(url, files={"file": ("x.csv", b"phone\n", "text/csv")}, headers=auth())
        assert header_only.status_code == 422
        big = await c.post(
            url, files={"file": ("x.csv", b"1" * (16 * 1024 * 1024), "text/csv")}, headers=auth()
        )
        assert big.status_code == 413
        not_multipart = await c.post(url, content=b"phone\n1", headers={**auth(), "content-type": "text/csv"})
        assert not_multipart.status_code == 415
        bad_map = await c.post(
            url,
            files={"file": ("x.csv", b"phone\n12672345678\n", "text/csv")},
            data={"mapping": '{"nope": "phone"}'},
            headers=auth(),
        )
        assert (bad_map.status_code, bad_map.json()["error"]["code"]) == (422, "invalid_mapping")
        other = await c.post(
            "/v1/imports",
            files={"file": ("x.csv", b"12672345678\n", "text/csv")},
            data={"stoplist_ids": str(uuid.uuid4())},
            headers=auth(),
        )
        assert other.status_code == 404
        zipped = io.BytesIO()
        with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("first.txt", "12672345678\n442079460958\n")
            zf.writestr("second.csv", "ignored\n")
        ok = await c.post(
            url, files={"file": ("x.zip", zipped.getvalue(), "application/zip")}, headers=auth()
        )
        assert ok.status_code == 200
        assert ok.json()["file"]["member"] == "first.txt"
        assert ok.json()["counts"]["valid"] == 2

        samples = await c.get("/v1/samples/stoplist.zip", headers=auth("acme", ["VIEWER"]))
        with zipfile.ZipFile(io.BytesIO(samples.content)) as zf:
            assert len(zf.namelist()) == 3

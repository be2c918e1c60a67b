"""Hostile files for the suppression and contact-list imports: every upload ends as a 4xx, or as an import
that finishes (completed / failed / validated) with an error report; never a 5xx, never a stuck import."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
import zipfile
from typing import Any

import httpx
import openpyxl
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from dialguard.testing.services import ServiceProcess

from .api import manager
from .conftest import LONG

EXAMPLES = 60 if LONG else 10
FINISHED = {"completed", "failed", "cancelled", "validated"}
IMPORT_DEADLINE = 45.0


def _xlsx(rows: list[list[str]]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _zip(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, data)
    return out.getvalue()


# Control characters cannot be written to a worksheet (openpyxl refuses them); random bytes cover them.
cells = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=40)
table = st.lists(st.lists(cells, min_size=1, max_size=4), min_size=1, max_size=8)
csv_text = table.map(lambda rows: "\n".join(",".join(f'"{c}"' if "," in c else c for c in r) for r in rows))


@st.composite
def hostile_file(draw: Any, extensions: tuple[str, ...]) -> tuple[str, bytes]:
    """A file name with an allowed extension and contents meant to break its parser."""
    ext = draw(st.sampled_from(extensions))
    kind = draw(st.sampled_from(["random", "text", "truncated", "huge cell", "wrong inside"]))
    if kind == "random":
        data = draw(st.binary(min_size=0, max_size=4096))
    elif kind == "text":
        data = ("phone,name,reason\n" + draw(csv_text)).encode()
    elif kind == "huge cell":
        size = draw(st.sampled_from([70_000, 1_100_000, 3_000_000]))
        data = b"phone,name\n12672345678," + b"x" * size + b"\n" + b"9" * size + b",y\n"
    else:
        rows = [["phone", "name"], *draw(table)]
        inner = "\n".join(",".join(r) for r in rows).encode()
        whole = {
            "zip": _zip("list.csv", inner),
            "xlsx": _xlsx(rows),
            "xls": _xlsx(rows),
        }.get(ext, inner)
        if kind == "truncated":
            data = whole[: draw(st.integers(0, max(0, len(whole) - 1)))]
        else:  # a zip or xlsx whose inside is garbage, or a text file holding a zip
            data = _zip("list.csv", draw(st.binary(max_size=512))) if ext != "zip" else _zip("x.bin", whole)
    return f"hostile-{uuid.uuid4().hex[:4]}.{ext}", data


def _wait_finished(c: httpx.Client, url: str, h: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + IMPORT_DEADLINE
    while True:
        r = c.get(url, headers=h)
        assert r.status_code == 200, f"{url}: {r.status_code} {r.text[:300]}"
        body: dict[str, Any] = r.json()
        if body["status"] in FINISHED:
            return body
        assert time.monotonic() < deadline, (
            f"import stuck in {body['status']!r} for {IMPORT_DEADLINE}s: {body}"
        )
        time.sleep(0.1)


def _check_upload(c: httpx.Client, r: httpx.Response, base: str, h: dict[str, str], what: str) -> None:
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
    if r.status_code != 202:
        assert r.status_code >= 400, f"{what}: {r.status_code} {r.text[:300]}"
        assert r.json()["error"]["code"], r.text
        return
    import_id = r.json()["import_id"]
    body = _wait_finished(c, f"{base}/v1/imports/{import_id}", h)
    errors = c.get(f"{base}/v1/imports/{import_id}/errors", headers=h)
    assert errors.status_code == 200, f"{what}: errors report {errors.status_code} {errors.text[:300]}"
    if body["status"] == "failed" or (body.get("counts") or {}).get("invalid"):
        assert errors.content, f"{what}: a failed or partly invalid import has an empty error report"


def _settings() -> Any:
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


async def test_suppression_import_survives_hostile_files(services: dict[str, ServiceProcess]) -> None:
    base = services["suppression"].base_url
    h = manager(f"fuzz-{uuid.uuid4().hex[:8]}")

    def run() -> None:
        with httpx.Client(timeout=60.0) as c:
            sl = c.post(f"{base}/v1/stoplists", json={"name": "fuzz"}, headers=h).json()["id"]

            @_settings()
            @given(f=hostile_file(("csv", "txt", "xlsx", "zip")), analyze=st.booleans())
            def upload(f: tuple[str, bytes], analyze: bool) -> None:
                name, data = f
                files = {"file": (name, io.BytesIO(data), "application/octet-stream")}
                if analyze:
                    r = c.post(f"{base}/v1/stoplists/{sl}/imports:analyze", files=files, headers=h)
                    assert r.status_code < 500, (
                        f"analyze {name} ({len(data)} B): {r.status_code} {r.text[:300]}"
                    )
                    return
                r = c.post(f"{base}/v1/imports", data={"stoplist_ids": sl}, files=files, headers=h)
                _check_upload(c, r, base, h, f"import {name} ({len(data)} B)")

            upload()

    await asyncio.to_thread(run)


async def test_contact_list_import_survives_hostile_files(services: dict[str, ServiceProcess]) -> None:
    base = services["contact-list"].base_url
    h = manager(f"fuzz-{uuid.uuid4().hex[:8]}")

    def run() -> None:
        with httpx.Client(timeout=60.0) as c:

            @_settings()
            @given(f=hostile_file(("csv", "xls", "xlsx")))
            def upload(f: tuple[str, bytes]) -> None:
                name, data = f
                lst = c.post(f"{base}/v1/contact-lists", json={"name": "fuzz", "source": "file"}, headers=h)
                assert lst.status_code == 201, lst.text
                r = c.post(
                    f"{base}/v1/contact-lists/{lst.json()['id']}/imports",
                    data={"consent_confirmed": "true"},
                    files={"file": (name, io.BytesIO(data), "application/octet-stream")},
                    headers=h,
                )
                _check_upload(c, r, base, h, f"import {name} ({len(data)} B)")

            upload()

    await asyncio.to_thread(run)

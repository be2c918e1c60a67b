"""Oversized input is refused (413/422), and SQL-looking or unicode-heavy values come back byte for byte.

Two bugs this suite found are fixed: U+0000 in any text field reached Postgres, which refuses it
(500s in suppression and lead-action; now 422 `invalid_characters` from the platform's error
handlers), and POST /v1/check with a well-formed but unknown region (e.g. "TB") was a 500 (now 422
naming `region`).
"""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest

from dialguard.testing.services import ServiceProcess

from .api import manager, ok

MB = 1024 * 1024
NASTY = [
    "Robert'); DROP TABLE entries;--",
    "' OR '1'='1' --",
    '"; SELECT pg_sleep(5); --',
    "%_\\%' ESCAPE '\\",
    "$1 $$ $tag$ :name ?",
    "名前 — Ünïcødé 🚫📞 ☎️",
    "Z̷̢͎a̸l̶g̵o̴ ﷽ ‮txt.exe",
    "Ω≈ç√∫˜µ≤≥÷ 𝕳𝖊𝖑𝖑𝖔",
    "tab\tnew\nline\r\nend",
    "emoji 👩🏽‍💻 zero-width\u200bjoiner",
]


def _big_csv(size: int) -> bytes:
    line = b"12672345678,a reason padded out to make the file large quickly.........................\n"
    return b"phone,reason\n" + line * (size // len(line) + 1)


async def _status(response: Any) -> httpx.Response:
    r: httpx.Response = await response
    assert r.status_code < 500, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    return r


@pytest.mark.timeout(300)
async def test_oversized_uploads_and_bodies_are_refused(
    services: dict[str, ServiceProcess], account: str
) -> None:
    h = manager(account)
    sup = services["suppression"].base_url
    cl = services["contact-list"].base_url
    la = f"{services['lead-action'].base_url}/v1/admin/accounts/{account}"
    async with httpx.AsyncClient(timeout=120.0) as c:
        sl = await ok(c.post(f"{sup}/v1/stoplists", json={"name": "big"}, headers=h))
        lst = await ok(c.post(f"{cl}/v1/contact-lists", json={"name": "big", "source": "file"}, headers=h))
        dg = await ok(c.post(f"{la}/dialGroups", json={"name": "big"}, headers=h))
        camp = await ok(c.post(f"{la}/dialGroups/{dg['id']}/campaigns", json={"name": "big"}, headers=h))
        llist = await ok(c.post(f"{la}/campaigns/{camp['id']}/lists", json={"name": "big"}, headers=h))

        over_15 = _big_csv(15 * MB + 4096)
        r = await _status(
            c.post(
                f"{sup}/v1/imports",
                data={"stoplist_ids": sl["id"]},
                files={"file": ("big.csv", io.BytesIO(over_15), "text/csv")},
                headers=h,
            )
        )
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"]
        r = await _status(
            c.post(
                f"{sup}/v1/stoplists/{sl['id']}/imports:analyze",
                files={"file": ("big.csv", io.BytesIO(over_15), "text/csv")},
                headers=h,
            )
        )
        assert r.status_code == 413, r.text
        r = await _status(
            c.post(
                f"{la}/lists/{llist['id']}/leads",
                files={"file": ("big.csv", io.BytesIO(over_15), "text/csv")},
                headers=h,
            )
        )
        assert r.status_code == 413, r.text
        r = await _status(
            c.post(
                f"{cl}/v1/contact-lists/{lst['id']}/imports",
                data={"consent_confirmed": "true"},
                files={"file": ("big.csv", io.BytesIO(_big_csv(20 * MB + 4096)), "text/csv")},
                headers=h,
            )
        )
        assert r.status_code == 413, r.text

        # A batch check above 10,000 ids, and a check body above its byte limit.
        ids = [{"type": "phone", "value": f"1267234{i % 10000:04d}"} for i in range(10_001)]
        r = await _status(c.post(f"{sup}/v1/check", json={"identifiers": ids}, headers=h))
        assert r.status_code in (413, 422), r.text
        assert r.json()["error"]["details"][0]["field"] == "identifiers"
        huge = b'{"identifiers": [{"type": "phone", "value": "' + b"1" * (9 * MB) + b'"}]}'
        r = await _status(
            c.post(f"{sup}/v1/check", content=huge, headers=h | {"content-type": "application/json"})
        )
        assert r.status_code in (413, 422), r.text
        # JSON leads above the per-request maximum, and megabyte-sized JSON fields.
        leads = [{"phone": "12672345678", "external_id": f"x{i}"} for i in range(10_001)]
        r = await _status(c.post(f"{la}/lists/{llist['id']}/leads", json={"leads": leads}, headers=h))
        assert r.status_code in (413, 422), r.text
        for url, body in (
            (f"{sup}/v1/stoplists", {"name": "n" * MB}),
            (f"{sup}/v1/stoplists/{sl['id']}/entries", {"identifier": {"type": "phone", "value": "1" * MB}}),
            (f"{sup}/v1/stoplists/{sl['id']}/entries:delete?confirm=true", {"entry_ids": ["x"] * 200_000}),
            (f"{cl}/v1/contact-lists", {"name": "n" * MB, "source": "file"}),
            (f"{la}/dialGroups", {"name": "n" * MB}),
        ):
            r = await _status(c.post(url, json=body, headers=h))
            assert r.status_code in (413, 422), f"{url}: {r.status_code} {r.text[:200]}"


async def test_sql_looking_and_unicode_values_round_trip(
    services: dict[str, ServiceProcess], account: str
) -> None:
    h = manager(account)
    sup = services["suppression"].base_url
    cl = services["contact-list"].base_url
    la = f"{services['lead-action'].base_url}/v1/admin/accounts/{account}"
    async with httpx.AsyncClient(timeout=30.0) as c:
        dg = await ok(c.post(f"{la}/dialGroups", json={"name": NASTY[0]}, headers=h))
        camp = await ok(c.post(f"{la}/dialGroups/{dg['id']}/campaigns", json={"name": NASTY[5]}, headers=h))
        llist = await ok(c.post(f"{la}/campaigns/{camp['id']}/lists", json={"name": NASTY[6]}, headers=h))
        assert (dg["name"], camp["name"], llist["name"]) == (NASTY[0], NASTY[5], NASTY[6])
        leads = []
        for i, value in enumerate(NASTY):
            sl = await ok(c.post(f"{sup}/v1/stoplists", json={"name": value}, headers=h))
            got = await ok(c.get(f"{sup}/v1/stoplists/{sl['id']}", headers=h))
            assert got["name"] == value
            body = {"identifier": {"type": "phone", "value": f"126723450{i:02d}"}, "reason": value}
            entry = await ok(c.post(f"{sup}/v1/stoplists/{sl['id']}/entries", json=body, headers=h))
            page = await ok(c.get(f"{sup}/v1/stoplists/{sl['id']}/entries", headers=h))
            assert [e["reason"] for e in page["items"]] == [value], value
            assert entry["reason"] == value
            # A filter value that looks like SQL is a value, not SQL: it matches nothing here.
            r = await c.get(f"{sup}/v1/stoplists/{sl['id']}/entries", params={"sender": value}, headers=h)
            assert r.status_code in (200, 422), r.text
            if r.status_code == 200:
                assert r.json()["items"] == []
            cl_list = await ok(
                c.post(f"{cl}/v1/contact-lists", json={"name": value, "source": "file"}, headers=h)
            )
            assert (await ok(c.get(f"{cl}/v1/contact-lists/{cl_list['id']}", headers=h)))["name"] == value
            leads.append(
                {
                    "phone": f"126723451{i:02d}",
                    "external_id": f"n{i}",
                    "first_name": value,
                    "last_name": value[::-1],
                }
            )
        await ok(c.post(f"{la}/lists/{llist['id']}/leads", json={"leads": leads}, headers=h))
        page = await ok(c.get(f"{la}/lists/{llist['id']}/leads", params={"limit": 100}, headers=h))
        names = {(lead["first_name"], lead["last_name"]) for lead in page["items"]}
        assert names == {(v, v[::-1]) for v in NASTY}


async def test_nul_bytes_are_refused_not_crashed(services: dict[str, ServiceProcess], account: str) -> None:
    """Postgres text cannot hold NUL: a value with one must be a 422 (or stored without it), never a 500."""
    h = manager(account)
    sup = services["suppression"].base_url
    cl = services["contact-list"].base_url
    la = f"{services['lead-action'].base_url}/v1/admin/accounts/{account}"
    async with httpx.AsyncClient(timeout=30.0) as c:
        sl = await ok(c.post(f"{sup}/v1/stoplists", json={"name": "nul"}, headers=h))
        wrong: list[str] = []
        for url, body in (
            (f"{sup}/v1/stoplists", {"name": "a\x00b"}),
            (
                f"{sup}/v1/stoplists/{sl['id']}/entries",
                {"identifier": {"type": "phone", "value": "12672345678"}, "reason": "a\x00b"},
            ),
            (
                f"{sup}/v1/stoplists/{sl['id']}/entries",
                {"identifier": {"type": "person_id", "value": "p\x00"}},
            ),
            (f"{cl}/v1/contact-lists", {"name": "a\x00b", "source": "file"}),
            (f"{la}/dialGroups", {"name": "a\x00b"}),
        ):
            try:
                r = await c.post(url, json=body, headers=h)
            except httpx.HTTPError as exc:  # the server dropped the connection without an answer
                wrong.append(f"POST {url} {body}: no response ({exc!r})")
                continue
            if r.status_code not in (201, 422):
                wrong.append(f"POST {url} {body}: {r.status_code} {r.text[:200]}")
    assert not wrong, "NUL bytes not refused:\n" + "\n".join(wrong)


async def test_check_with_an_unknown_region_is_422(services: dict[str, ServiceProcess], account: str) -> None:
    """A region that is two upper-case letters but no country is bad input naming `region`, not a 500."""
    sup = services["suppression"].base_url
    h = manager(account)
    async with httpx.AsyncClient(timeout=30.0) as c:
        one = await c.get(
            f"{sup}/v1/check", params={"type": "phone", "value": "2672345678", "region": "TB"}, headers=h
        )
        batch = await c.post(
            f"{sup}/v1/check",
            json={"identifiers": [{"type": "phone", "value": "12672345678"}], "region": "TB"},
            headers=h,
        )
    for r in (one, batch):
        assert r.status_code == 422, f"{r.request.method} /v1/check region=TB: {r.status_code} {r.text}"
        assert r.json()["error"]["details"][0]["field"] in ("region", "value")

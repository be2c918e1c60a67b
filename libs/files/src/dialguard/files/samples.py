"""The sample files users download to see the import format (GET /v1/samples/stoplist.zip)."""

from __future__ import annotations

import io
import zipfile

PHONES = "phone,channel,reason\n12672345678,voice,asked not to be called\n442079460958,,STOP by SMS\n4915123456789,sms,\n"
EMAILS = "email,reason\noptout@example.com,unsubscribe link\nno.marketing@example.org,complaint\n"
PERSON_IDS = "person_id,reason\nCRM-000123,GDPR erasure request\nCRM-000456,deceased\n"


def stoplist_samples_zip() -> bytes:
    """Three CSVs with header rows: phones, emails, person IDs."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("stoplist-phones.csv", PHONES)
        zf.writestr("stoplist-emails.csv", EMAILS)
        zf.writestr("stoplist-person-ids.csv", PERSON_IDS)
    return out.getvalue()

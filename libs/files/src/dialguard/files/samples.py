"""The sample files a user downloads to see the import format (GET /v1/samples/stoplist.zip)."""

from __future__ import annotations

import functools
import io
import zipfile
from typing import Final

_STAMP: Final = (2024, 1, 1, 0, 0, 0)
"""A fixed timestamp keeps the zip byte-identical between builds, so caches and ETags hold."""

PHONES: Final = (
    "phone,channel,sender,reason\r\n"
    "12672345678,voice,,asked not to be called\r\n"
    "442079460958,,,STOP reply by SMS\r\n"
    "4915123456789,sms,InfoSMS,opted out on website\r\n"
    "33612345678,whatsapp,,complaint\r\n"
    "12025550143,voice,12125550199,do not call registry\r\n"
)
EMAILS: Final = (
    "email,channel,reason\r\n"
    "optout@example.com,email,unsubscribe link\r\n"
    "no.marketing@example.org,,GDPR objection\r\n"
    "jane.doe+news@example.net,email,bounced complaint\r\n"
)
PERSON_IDS: Final = (
    "person_id,channel,reason\r\n"
    "CRM-000123,,GDPR erasure request\r\n"
    "CRM-000456,voice,deceased\r\n"
    "CRM-000789,sms,legal hold\r\n"
)
SAMPLES: Final = {
    "stoplist-phones.csv": PHONES,
    "stoplist-emails.csv": EMAILS,
    "stoplist-person-ids.csv": PERSON_IDS,
}


@functools.cache
def stoplist_samples_zip() -> bytes:
    """Three CSVs with header rows (phones, emails, person IDs), built once per process."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in SAMPLES.items():
            info = zipfile.ZipInfo(name, date_time=_STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, text.encode("utf-8"))
    return out.getvalue()

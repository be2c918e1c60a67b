"""Container health probe: exit 0 when GET http://127.0.0.1:<port><path> answers 2xx, else 1.

Usage: python /app/healthcheck.py [/health/live | /health/ready]
The port is HTTP_PORT when set, else the service's contract default (CONTRACT §1), chosen by
DIALGUARD_SERVICE, which the image sets. Standard library only: the slim image has no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORTS = {"suppression": 8001, "contact-list": 8002, "lead-action": 8003, "outbound-sync": 8004}


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/health/live"
    port = os.environ.get("HTTP_PORT") or str(
        DEFAULT_PORTS.get(os.environ.get("DIALGUARD_SERVICE", ""), 8000)
    )
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if 200 <= response.status < 300 else 1
    except urllib.error.HTTPError as exc:  # 503 from /health/ready names the failed dependency
        body = exc.read(500).decode("utf-8", "replace")
        print(f"{url}: HTTP {exc.code} {body}", file=sys.stderr)
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

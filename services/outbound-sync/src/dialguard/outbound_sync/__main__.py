"""Entry point: python -m dialguard.outbound_sync."""

from dialguard.outbound_sync.config import Settings
from dialguard.platform.serve import serve


def main() -> None:
    """Serve the app on HTTP_PORT (HTTP_WORKERS processes)."""
    serve("dialguard.outbound_sync.main:create_app", Settings())


if __name__ == "__main__":
    main()

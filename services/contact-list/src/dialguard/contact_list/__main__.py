"""Entry point: python -m dialguard.contact_list."""

from dialguard.contact_list.config import Settings
from dialguard.platform.serve import serve


def main() -> None:
    """Serve the app on HTTP_PORT (HTTP_WORKERS processes)."""
    serve("dialguard.contact_list.main:create_app", Settings())


if __name__ == "__main__":
    main()

"""Entry point: python -m dialguard.outbound_sync."""

from dialguard.outbound_sync.config import Settings
from dialguard.outbound_sync.main import create_app
from dialguard.platform.serve import serve


def main() -> None:
    """Serve the app on HTTP_PORT."""
    settings = Settings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()

"""Entry point: python -m dialguard.suppression."""

from dialguard.platform.serve import serve
from dialguard.suppression.config import Settings


def main() -> None:
    """Serve the app on HTTP_PORT (HTTP_WORKERS processes)."""
    serve("dialguard.suppression.main:create_app", Settings())


if __name__ == "__main__":
    main()

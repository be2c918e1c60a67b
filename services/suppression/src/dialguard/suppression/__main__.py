"""Entry point: python -m dialguard.suppression."""

from dialguard.platform.serve import serve
from dialguard.suppression.config import Settings
from dialguard.suppression.main import create_app


def main() -> None:
    """Serve the app on HTTP_PORT."""
    settings = Settings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()

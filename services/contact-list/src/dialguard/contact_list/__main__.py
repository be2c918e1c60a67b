"""Entry point: python -m dialguard.contact_list."""

from dialguard.contact_list.config import Settings
from dialguard.contact_list.main import create_app
from dialguard.platform.serve import serve


def main() -> None:
    """Serve the app on HTTP_PORT."""
    settings = Settings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()

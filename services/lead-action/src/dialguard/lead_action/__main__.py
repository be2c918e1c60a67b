"""Entry point: python -m dialguard.lead_action."""

from dialguard.lead_action.config import Settings
from dialguard.lead_action.main import create_app
from dialguard.platform.serve import serve


def main() -> None:
    """Serve the app on HTTP_PORT."""
    settings = Settings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()

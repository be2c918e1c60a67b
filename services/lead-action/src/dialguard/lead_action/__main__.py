"""Entry point: python -m dialguard.lead_action."""

from dialguard.lead_action.config import Settings
from dialguard.platform.serve import serve


def main() -> None:
    """Serve the app on HTTP_PORT (HTTP_WORKERS processes)."""
    serve("dialguard.lead_action.main:create_app", Settings())


if __name__ == "__main__":
    main()

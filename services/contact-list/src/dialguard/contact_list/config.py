"""Settings of the contact-list service."""

from dialguard.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    """Environment settings; defaults suit `make run`."""

    HTTP_PORT: int = 8002
    AUTO_ADD_POLL_SECONDS: float = 30.0

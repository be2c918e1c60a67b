"""Settings of the lead-action service."""

from dialguard.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    """Environment settings; defaults suit `make run`."""

    HTTP_PORT: int = 8003

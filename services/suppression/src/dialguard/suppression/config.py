"""Settings of the suppression service."""

from dialguard.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    """Environment settings; defaults suit `make run`."""

    HTTP_PORT: int = 8001
    EXPIRY_SWEEP_SECONDS: float = 30.0
    CACHE_ENABLED: bool = True

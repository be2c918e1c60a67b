"""Settings of the outbound-sync service."""

from pydantic import Field

from dialguard.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    """Environment settings; defaults suit `make run`."""

    HTTP_PORT: int = 8004
    OUTBOUND_TM_URL_TEMPLATE: str = "http://127.0.0.1:9100/outbound{system}"
    DELIVERY_TIMEOUT_S: float = Field(default=10.0, gt=0)
    DELIVERY_CONNECT_TIMEOUT_S: float = Field(default=3.0, gt=0)
    DELIVERY_MAX_ATTEMPTS: int = Field(default=10, ge=1)
    DELIVERY_BACKOFF_BASE_S: float = Field(default=1.0, gt=0)
    DELIVERY_BACKOFF_MAX_S: float = Field(default=300.0, gt=0)
    DELIVERY_RETRY_AFTER_MAX_S: float = Field(default=3600.0, gt=0)
    DELIVERY_CONCURRENCY_PER_TARGET: int = Field(default=16, ge=1, le=256)
    DELIVERY_POLL_S: float = Field(default=0.5, gt=0)
    EVENT_CLOCK_SKEW_S: float = Field(default=60.0, ge=0)
    BREAKER_THRESHOLD: int = Field(default=5, ge=1)
    BREAKER_COOLDOWN_S: float = Field(default=30.0, gt=0)

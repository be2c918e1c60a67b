"""Settings every service reads from the environment (CONTRACT §1 names)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dialguard.messaging.kafka import ConsumerTuning


class ServiceSettings(BaseSettings):
    """Base settings; services subclass to add their own."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    KAFKA_BOOTSTRAP_SERVERS: str = "127.0.0.1:9092"
    DATABASE_URL: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    AUTH_JWT_SECRET: str = Field(default="dev-secret-change-me", min_length=8)
    HTTP_PORT: int = 8000
    HTTP_HOST: str = "127.0.0.1"
    HTTP_WORKERS: int = Field(default=1, ge=1, le=64)
    CONSUMER_WORKERS: int = Field(default=1, ge=1, le=64)  # of the HTTP workers, how many also consume
    LOG_LEVEL: str = "INFO"
    DEFAULT_PHONE_REGION: str = Field(default="US", pattern=r"^[A-Z]{2}$")

    KAFKA_SESSION_TIMEOUT_MS: int = 10_000
    KAFKA_HEARTBEAT_INTERVAL_MS: int = 1_000
    KAFKA_FETCH_MAX_WAIT_MS: int = 25
    CONSUMER_MAX_RECORDS: int = 1_000
    CONSUMER_BATCH_TIMEOUT_MS: int = 250
    CONSUMER_GROUP_SUFFIX: str = ""
    DB_POOL_MAX: int = 10
    PING_CONSUMER_ENABLED: bool = (
        True  # off: this instance only sends pings (e.g. the producer side of a bench)
    )

    def consumer_tuning(self) -> ConsumerTuning:
        """The consumer timings as one value object."""
        return ConsumerTuning(
            session_timeout_ms=self.KAFKA_SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=self.KAFKA_HEARTBEAT_INTERVAL_MS,
            fetch_max_wait_ms=self.KAFKA_FETCH_MAX_WAIT_MS,
            max_records=self.CONSUMER_MAX_RECORDS,
            batch_timeout_ms=self.CONSUMER_BATCH_TIMEOUT_MS,
        )

"""Settings of the lead-action service."""

from pydantic import Field

from dialguard.platform.settings import ServiceSettings

RATE_PATTERN = r"^\s*\d+\s*/\s*\d+(\.\d+)?\s*$"


class Settings(ServiceSettings):
    """Environment settings; defaults suit `make run`."""

    HTTP_PORT: int = 8003
    # Bulk stoplist changes arrive by the ten thousand; a batch is one transaction, so bigger batches
    # spread its fixed cost (inbox claim, advisory lock, commit, fetch) thinner. A poll still returns as
    # soon as any records are there, so a lone event is not delayed.
    CONSUMER_MAX_RECORDS: int = 5_000
    RATE_LIMIT_ACTIONS: str = Field(default="30/10", pattern=RATE_PATTERN)
    RATE_LIMIT_SEARCHES: str = Field(default="15/10", pattern=RATE_PATTERN)
    SMTP_HOST: str = "127.0.0.1"
    SMTP_PORT: int = 25
    SMTP_FROM: str = "dialguard@localhost"
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: str | None = None
    SMTP_STARTTLS: bool = False
    SMTP_TIMEOUT_SECONDS: float = 10.0
    PUBLIC_BASE_URL: str = "http://127.0.0.1:8003"
    EXPORT_TTL_HOURS: float = 24.0
    EXPORT_MAX_LEADS: int = 1_000_000
    RETRY_DELAY_SECONDS: float = 3600.0
    DNC_DISPOSITIONS: str = "DNC,DO_NOT_CALL,DONOTCALL"
    MAX_UPLOAD_BYTES: int = 15 * 1024 * 1024

    def dnc_dispositions(self) -> frozenset[str]:
        """Agent dispositions that mean "do not call" (comma-separated, case-insensitive)."""
        return frozenset(d.strip().upper() for d in self.DNC_DISPOSITIONS.split(",") if d.strip())

"""Settings of the contact-list service."""

from dialguard.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    """Environment settings; defaults suit `make run`."""

    HTTP_PORT: int = 8002
    # Bulk stoplist changes arrive by the ten thousand; a batch is one transaction, so bigger batches spread
    # its fixed cost (inbox claim, commit, fetch) thinner. A poll still returns as soon as any records are
    # there, so a lone event is not delayed.
    CONSUMER_MAX_RECORDS: int = 5_000
    AUTO_ADD_POLL_SECONDS: float = 30.0

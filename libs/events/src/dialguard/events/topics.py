"""Topic names of CONTRACT §5 and the partition counts they are created with before any service starts."""

from typing import Final

LEADS_STOPPED: Final = "leads.stopped.v1"
SUPPRESSION_CHANGES: Final = "suppression.changes.v1"
CONTACTS_IMPORTED: Final = "contacts.imported.v1"
LEADS_MOVED: Final = "leads.moved.v1"
LEADS_ACTIONS: Final = "leads.actions.v1"
CALL_RESULTS: Final = "dialer.call-results.v1"
IMPORTS_COMPLETED: Final = "imports.completed.v1"
# Internal: the plumbing probe every service answers (outbox -> broker -> inbox round trip).
OPS_PINGS: Final = "ops.pings.v1"

SERVICES: Final = ("suppression", "contact-list", "lead-action", "outbound-sync")


def dlq_topic(service: str) -> str:
    """Dead-letter topic of one service, as CONTRACT §5 names it."""
    return f"dlq.{service}.v1"


DEFAULT_PARTITIONS: Final = 6

TOPICS: Final[dict[str, int]] = {
    LEADS_STOPPED: DEFAULT_PARTITIONS,
    SUPPRESSION_CHANGES: DEFAULT_PARTITIONS,
    CONTACTS_IMPORTED: DEFAULT_PARTITIONS,
    LEADS_MOVED: DEFAULT_PARTITIONS,
    LEADS_ACTIONS: DEFAULT_PARTITIONS,
    CALL_RESULTS: DEFAULT_PARTITIONS,
    IMPORTS_COMPLETED: 3,
    OPS_PINGS: DEFAULT_PARTITIONS,
    **{dlq_topic(s): 1 for s in SERVICES},
}

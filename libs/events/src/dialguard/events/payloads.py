"""Payload models of every event type in CONTRACT §5; extra fields are allowed, these must be present."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IdentifierType = Literal["phone", "email", "person_id", "client_id"]
ChannelName = Literal["voice", "sms", "whatsapp", "viber", "email", "messenger"]
StopSource = Literal[
    "end_user_message", "campaign_action", "url_opt_out", "manual", "agent_disposition", "api", "import"
]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow")


class IdentifierModel(_Payload):
    """An identifier as it travels in events (normalized by the producer where it owns the data)."""

    type: IdentifierType
    value: str = Field(min_length=1, max_length=512)


class LeadStopped(_Payload):
    """An upstream opt-out: stop contacting this identifier."""

    identifier: IdentifierModel
    channel: ChannelName | None = None
    stoplist_id: str | None = Field(default=None, description="null = the account's 'default' stoplist")
    source: StopSource = "api"
    sender: str | None = None
    reason: str | None = None
    expires_in_days: int | None = Field(default=None, ge=1, le=36500)
    region: str | None = Field(default=None, description="ISO region for national phone numbers")


class LeadUnstopped(_Payload):
    """Lift a stop: remove matching entries (null stoplist_id = every stoplist of the account)."""

    identifier: IdentifierModel
    channel: ChannelName | None = None
    stoplist_id: str | None = None
    reason: str | None = None
    region: str | None = None


class SuppressionEntry(_Payload):
    """A stoplist entry as published in SuppressionChanged."""

    entry_id: str
    stoplist_id: str
    identifier: IdentifierModel
    channel: ChannelName | None = None
    sender: str | None = None
    source: str | None = None
    reason: str | None = None
    added_at: datetime
    expires_at: datetime | None = None


class SuppressionChanged(_Payload):
    """One entry entered or left a stoplist; `suppressed` is the state after the change."""

    op: Literal["added", "removed", "expired"]
    entry: SuppressionEntry
    suppressed: bool


class ContactUnit(_Payload):
    type: str
    value: str
    channel: str | None = None
    priority: int = 1


class ContactModel(_Payload):
    contact_id: str
    external_id: str | None = None
    name: str | None = None
    units: list[ContactUnit] = Field(default_factory=list)
    fields: dict[str, Any] = Field(default_factory=dict)
    timezone: str | None = None


class CampaignLink(_Payload):
    campaign_id: str
    list_id: str


class ContactImported(_Payload):
    contact_list_id: str
    import_id: str
    contact: ContactModel
    campaign: CampaignLink | None = None


class LeadsMoved(_Payload):
    action_id: str
    from_campaign_id: str | None = None
    to_campaign_id: str
    to_list_id: str
    mode: Literal["move", "copy", "transition"]
    duplicate_action: Literal["MOVE", "IGNORE"]
    lead_ids: list[str] = Field(max_length=1000)
    total_moved: int


class LeadActionApplied(_Payload):
    action_id: str
    action: str
    criteria: dict[str, Any]
    params: dict[str, Any]
    affected: int
    campaign_id: str | None = None


class CallResult(_Payload):
    lead_id: str
    campaign_id: str
    identifier: IdentifierModel
    channel: ChannelName | None = None
    attempted_at: datetime
    system_disposition: Literal["ANSWERED", "NO_ANSWER", "BUSY", "MACHINE", "FAILED"]
    agent_disposition: str | None = None
    reached: bool = False
    do_not_call: bool = False


class ImportTarget(_Payload):
    kind: Literal["stoplist", "contact_list"]
    id: str


class ImportCounts(_Payload):
    total: int = 0
    imported: int = 0
    duplicates: int = 0
    invalid: int = 0
    skipped: int = 0


class ImportCompleted(_Payload):
    import_id: str
    target: ImportTarget
    status: Literal["completed", "failed", "cancelled"]
    counts: ImportCounts


class DeadLetter(_Payload):
    """A message a consumer could not parse or process after bounded retries."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: str
    error: str
    consumer: str | None = None


class Ping(_Payload):
    """Plumbing probe: proves outbox -> broker -> inbox between services."""

    ping_id: str
    origin: str
    note: str | None = None


PAYLOADS: dict[str, type[BaseModel]] = {
    "LeadStopped": LeadStopped,
    "LeadUnstopped": LeadUnstopped,
    "SuppressionChanged": SuppressionChanged,
    "ContactImported": ContactImported,
    "LeadsMoved": LeadsMoved,
    "LeadActionApplied": LeadActionApplied,
    "CallResult": CallResult,
    "ImportCompleted": ImportCompleted,
    "DeadLetter": DeadLetter,
    "Ping": Ping,
}

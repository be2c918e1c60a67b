"""Pure lead rules: action names, search criteria, action parameters, DNC dispositions. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from dialguard.identifiers import InvalidIdentifier, normalize_email, phone_candidates

ACTIONS: Final = (
    "RESET_LEADS",
    "CANCEL_LEADS",
    "DELETE_LEADS",
    "PAUSE_LEADS",
    "DIALER_REFRESH",
    "READY_LEADS",
    "MANUAL_LEADS",
    "EMAIL_LEADS",
    "CALLBACK_LEADS",
    "MOVE_TO_CAMPAIGN",
    "AGENT_RESERVATION",
    "SUPPRESS_LEADS",
    "UNSUPPRESS_LEADS",
)
# Lead actions that destroy data and so need ?confirm=true (CONTRACT §3).
DESTRUCTIVE_ACTIONS: Final = frozenset({"DELETE_LEADS"})
LEAD_STATES: Final = (
    "READY",
    "ACTIVE",
    "CALLBACK",
    "COMPLETE",
    "CANCELLED",
    "PAUSED",
    "TRANSITION",
)
PHYSICAL_STATES: Final = ("DIALABLE", "NOT_DIALABLE", "SUPPRESSED")
# A lead state's bit in lead_blocks.states; the same table as SQL's lead_state_bit (migration 0005).
# Bit 128 stands for any other status, so a mask of every bit never skips a block.
STATE_BITS: Final[dict[str, int]] = {state: 1 << i for i, state in enumerate(LEAD_STATES)}
ALL_STATES_MASK: Final = 255
DIALABLE_MASK: Final = STATE_BITS["READY"] | STATE_BITS["CALLBACK"]
SYSTEM_DISPOSITIONS: Final = ("ANSWERED", "NO_ANSWER", "BUSY", "MACHINE", "FAILED")
MANUAL: Final = "manual"
DNC: Final = "dnc"
MAX_CRITERIA_VALUES: Final = 10_000
LEADS_MOVED_CHUNK: Final = 1000


class ParamError(ValueError):
    """A missing, malformed or contradictory action parameter or criterion (422 naming `field`)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def parse_id(value: Any, field_name: str) -> int:
    """Ids are positive integers, sent as JSON numbers or numeric strings (as Engage Voice clients do)."""
    if isinstance(value, bool):
        raise ParamError(field_name, "must be an integer id")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise ParamError(field_name, "must be an integer id")
    if not 0 <= number < 2**63:
        raise ParamError(field_name, "out of range")
    return number


@dataclass(frozen=True, slots=True)
class Criteria:
    """A normalized campaignLeadSearchCriteria: AND across fields, OR within each list; None = no filter."""

    campaign_ids: tuple[int, ...] | None = None
    list_ids: tuple[int, ...] | None = None
    lead_ids: tuple[int, ...] | None = None
    phones: tuple[str, ...] | None = None
    agent_dispositions: tuple[str, ...] | None = None
    system_dispositions: tuple[str, ...] | None = None
    lead_states: tuple[str, ...] | None = None
    physical_states: tuple[str, ...] | None = None
    timezones: tuple[str, ...] | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_empty(self) -> bool:
        return all(
            v is None
            for v in (
                self.campaign_ids,
                self.list_ids,
                self.lead_ids,
                self.phones,
                self.agent_dispositions,
                self.system_dispositions,
                self.lead_states,
                self.physical_states,
                self.timezones,
            )
        )

    @property
    def state_mask(self) -> int:
        """The lead_blocks bits a matching lead's status can have (every bit when no state is asked for).

        physicalStates narrows by status too: DIALABLE is READY or CALLBACK, NOT_DIALABLE any other
        status; SUPPRESSED says nothing about the status."""
        mask = ALL_STATES_MASK
        if self.lead_states is not None:
            mask &= sum(STATE_BITS[s] for s in self.lead_states)
        if self.physical_states is not None:
            physical = 0
            for state in self.physical_states:
                if state == "DIALABLE":
                    physical |= DIALABLE_MASK
                elif state == "NOT_DIALABLE":
                    physical |= ALL_STATES_MASK & ~DIALABLE_MASK
                else:
                    physical |= ALL_STATES_MASK
            mask &= physical
        return mask

    @property
    def single_campaign(self) -> int | None:
        """The campaign an action names when it names exactly one (the LeadActionApplied key)."""
        if self.campaign_ids is not None and len(self.campaign_ids) == 1:
            return self.campaign_ids[0]
        return None


def _list(raw: dict[str, Any], key: str) -> list[Any] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise ParamError(f"campaignLeadSearchCriteria.{key}", "must be a list")
    if len(value) > MAX_CRITERIA_VALUES:
        raise ParamError(f"campaignLeadSearchCriteria.{key}", f"at most {MAX_CRITERIA_VALUES} values")
    return value or None  # an empty list filters nothing, as the Engage Voice examples send it


def _ids(raw: dict[str, Any], key: str) -> tuple[int, ...] | None:
    values = _list(raw, key)
    if values is None:
        return None
    return tuple(
        dict.fromkeys(parse_id(v, f"campaignLeadSearchCriteria.{key}.{i}") for i, v in enumerate(values))
    )


def _words(raw: dict[str, Any], key: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...] | None:
    values = _list(raw, key)
    if values is None:
        return None
    out: list[str] = []
    for i, v in enumerate(values):
        if not isinstance(v, str) or not v.strip() or len(v) > 256:
            raise ParamError(f"campaignLeadSearchCriteria.{key}.{i}", "must be a non-empty string")
        word = v.strip().upper() if allowed is not None else v.strip()
        if allowed is not None and word not in allowed:
            raise ParamError(f"campaignLeadSearchCriteria.{key}.{i}", f"one of {list(allowed)}")
        out.append(word)
    return tuple(dict.fromkeys(out))


def _phones(raw: dict[str, Any], region: str) -> tuple[str, ...] | None:
    values = _list(raw, "leadPhoneNumbers")
    if values is None:
        return None
    out: list[str] = []
    for i, v in enumerate(values):
        field_name = f"campaignLeadSearchCriteria.leadPhoneNumbers.{i}"
        if not isinstance(v, str | int) or isinstance(v, bool):
            raise ParamError(field_name, "must be a phone number")
        try:
            out.extend(phone_candidates(str(v), region=region))  # every reading: a search never misses
        except InvalidIdentifier as exc:
            raise ParamError(field_name, exc.reason) from exc
    return tuple(dict.fromkeys(out))


def parse_criteria(raw: dict[str, Any] | None, *, region: str) -> Criteria:
    """Validate and normalize the criteria object; unknown keys are ignored, as Engage Voice does."""
    raw = raw or {}
    campaigns: list[int] = []
    if raw.get("campaignId") not in (None, ""):
        campaigns.append(parse_id(raw["campaignId"], "campaignLeadSearchCriteria.campaignId"))
    many = _ids(raw, "campaignIds")
    if campaigns and many is not None and campaigns[0] not in many:
        raise ParamError("campaignLeadSearchCriteria.campaignIds", "contradicts campaignId")
    campaign_ids = tuple(campaigns) if campaigns else many
    return Criteria(
        campaign_ids=campaign_ids,
        list_ids=_ids(raw, "listIds"),
        lead_ids=_ids(raw, "leadIds"),
        phones=_phones(raw, region),
        agent_dispositions=_words(raw, "agentDispositions"),
        system_dispositions=_words(raw, "systemDispositions", SYSTEM_DISPOSITIONS),
        lead_states=_words(raw, "leadStates", LEAD_STATES),
        physical_states=_words(raw, "physicalStates", PHYSICAL_STATES),
        timezones=_words(raw, "leadTimezones"),
        raw=raw,
    )


# --- action parameters ------------------------------------------------------------------------------


def _param(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text or None


def _required(params: dict[str, Any], name: str) -> str:
    value = _param(params, name)
    if value is None:
        raise ParamError(f"leadActionParams.paramMap.{name}", "required")
    return value


def _flag(params: dict[str, Any], name: str) -> bool:
    value = _param(params, name)
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        raise ParamError(f"leadActionParams.paramMap.{name}", "must be true or false")
    return value.lower() == "true"


def parse_time(params: dict[str, Any], name: str) -> datetime:
    """RFC 3339 with an offset (naive times are ambiguous across lead timezones, so refused)."""
    value = _required(params, name)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ParamError(f"leadActionParams.paramMap.{name}", "must be an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        raise ParamError(f"leadActionParams.paramMap.{name}", "must carry a UTC offset (RFC 3339)")
    return parsed.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Schedule:
    """CALLBACK_LEADS / AGENT_RESERVATION: set a callback (optionally for an agent) or cancel it."""

    cancel: bool
    callback_at: datetime | None = None
    agent_id: str | None = None


def parse_schedule(params: dict[str, Any], *, with_agent: bool) -> Schedule:
    """Exactly one of CANCEL=true or CALLBACK_AT (+ AGENT_ID for reservations)."""
    cancel = _flag(params, "CANCEL")
    has_time = _param(params, "CALLBACK_AT") is not None
    if cancel and has_time:
        raise ParamError("leadActionParams.paramMap.CANCEL", "contradicts CALLBACK_AT: send one of them")
    if cancel:
        return Schedule(cancel=True)
    if not has_time:
        raise ParamError("leadActionParams.paramMap.CALLBACK_AT", "required (or CANCEL=true)")
    agent = _required(params, "AGENT_ID") if with_agent else None
    if agent is not None and len(agent) > 256:
        raise ParamError("leadActionParams.paramMap.AGENT_ID", "at most 256 characters")
    return Schedule(cancel=False, callback_at=parse_time(params, "CALLBACK_AT"), agent_id=agent)


def parse_disposition(params: dict[str, Any]) -> str:
    """MANUAL_LEADS' AGENT_DISPOSITION, required."""
    value = _required(params, "AGENT_DISPOSITION")
    if len(value) > 256:
        raise ParamError("leadActionParams.paramMap.AGENT_DISPOSITION", "at most 256 characters")
    return value


def is_dnc_disposition(disposition: str | None, dnc_dispositions: frozenset[str]) -> bool:
    """An agent disposition that means the person asked not to be called again."""
    return disposition is not None and disposition.strip().upper() in dnc_dispositions


def parse_emails(params: dict[str, Any]) -> tuple[str, ...]:
    """EMAIL_ADDRESSES: comma (or semicolon) separated, each valid, at most 50."""
    raw = _required(params, "EMAIL_ADDRESSES")
    parts = [p.strip() for p in raw.replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise ParamError("leadActionParams.paramMap.EMAIL_ADDRESSES", "required")
    if len(parts) > 50:
        raise ParamError("leadActionParams.paramMap.EMAIL_ADDRESSES", "at most 50 addresses")
    out: list[str] = []
    for part in parts:
        try:
            out.append(normalize_email(part))
        except InvalidIdentifier as exc:
            raise ParamError("leadActionParams.paramMap.EMAIL_ADDRESSES", f"{part!r}: {exc.reason}") from exc
    return tuple(dict.fromkeys(out))


MoveMode = Literal["move", "copy", "transition"]


@dataclass(frozen=True, slots=True)
class Move:
    """MOVE_TO_CAMPAIGN parameters; list_id None = create a new list named list_name."""

    campaign_id: int
    list_id: int | None
    list_name: str | None
    mode: MoveMode
    duplicate_action: Literal["MOVE", "IGNORE"]


def parse_move(params: dict[str, Any]) -> Move:
    """CAMPAIGN_ID required; LIST_ID 0 needs LIST_NAME; CREATE_COPY_SETTING false|true|TRANSITION."""
    prefix = "leadActionParams.paramMap."
    campaign_id = parse_id(_required(params, "CAMPAIGN_ID"), prefix + "CAMPAIGN_ID")
    list_raw = _param(params, "LIST_ID") or "0"
    list_id = parse_id(list_raw, prefix + "LIST_ID")
    name = _param(params, "LIST_NAME")
    if list_id == 0 and name is None:
        raise ParamError(prefix + "LIST_NAME", "required when LIST_ID is 0 (a new list)")
    if name is not None and len(name) > 200:
        raise ParamError(prefix + "LIST_NAME", "at most 200 characters")
    copy = (_param(params, "CREATE_COPY_SETTING") or "false").lower()
    modes: dict[str, MoveMode] = {"false": "move", "true": "copy", "transition": "transition"}
    if copy not in modes:
        raise ParamError(prefix + "CREATE_COPY_SETTING", "one of false, true, TRANSITION")
    duplicate = (_param(params, "DUPLICATE_ACTION_SETTING") or "MOVE").upper()
    if duplicate not in ("MOVE", "IGNORE"):
        raise ParamError(prefix + "DUPLICATE_ACTION_SETTING", "one of MOVE, IGNORE")
    return Move(
        campaign_id=campaign_id,
        list_id=list_id or None,
        list_name=name if list_id == 0 else None,
        mode=modes[copy],
        duplicate_action="MOVE" if duplicate == "MOVE" else "IGNORE",
    )


def chunks(values: list[Any], size: int = LEADS_MOVED_CHUNK) -> list[list[Any]]:
    """LeadsMoved carries at most `size` lead ids per message."""
    return [values[i : i + size] for i in range(0, len(values), size)] or [[]]


def lead_stop_key(account_id: str, phone: str) -> str:
    """Partition key of leads.stopped.v1 (CONTRACT §5)."""
    return f"{account_id}:phone:{phone}"

"""The probe contract: what every channel driver offers the scenario engine.

A :class:`Channel` is created once per monitor process from its ``channels.<kind>`` settings.
It owns the resources shared by all conversations on that channel (a browser, one IMAP watcher
per mailbox) and opens one :class:`Conversation` per probe contact. The runner owns timeouts and
turns exceptions into outcomes; a probe never schedules itself and never touches metrics.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from aiohttp import web
from pydantic import BaseModel

from probes.errors import (
    ChannelUnavailable,
    ContactRejected,
    CxprobeError,
    ProbeError,
    ProbeTimeout,
    ProviderError,
)
from probes.spool import SpooledFile

#: Every contact carries a reference token; replies are matched to runs by it when a channel
#: has no better thread key. Crockford base32 avoids look-alike characters.
TOKEN_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TOKEN_PATTERN = re.compile(r"\bCXP-[0-9A-HJKMNP-TV-Z]{10}\b")


def utc_now() -> datetime:
    """The wall clock in UTC: every time a channel records is UTC."""
    return datetime.now(UTC)


def new_token() -> str:
    """A fresh reference token such as ``CXP-7F3K9Q2M1Z`` (50 bits of randomness)."""
    return "CXP-" + "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(10))


class Responder(enum.StrEnum):
    """Who produced a reply, as far as the channel can tell."""

    HUMAN = "human"
    BOT = "bot"
    AUTO = "auto"
    IVR = "ivr"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Evidence:
    """One piece of raw evidence kept with a run (raw email, transcript, screenshot).

    Its bytes are ``content`` in memory, or, for content too large to hold (a received email),
    a spool ``file`` on disk (``content`` is then empty): the store copies the file in chunks.
    Whoever receives evidence with a file calls :meth:`release` once it is stored or dropped.
    """

    kind: str  # "email", "transcript", "screenshot", ...
    media_type: str  # "message/rfc822", "text/plain", "image/png", ...
    content: bytes = b""
    file: SpooledFile | None = None

    def __post_init__(self) -> None:
        if self.file is not None and self.content:
            raise ValueError("evidence is either in memory (content) or in a file, not both")

    @property
    def size(self) -> int:
        return self.file.size if self.file is not None else len(self.content)

    @property
    def sha256(self) -> str:
        """The digest of the bytes (computed as a spool file was written)."""
        if self.file is not None:
            return self.file.sha256
        return hashlib.sha256(self.content).hexdigest()

    def release(self) -> None:
        """This holder is done with the evidence: a spool file is removed after the last."""
        if self.file is not None:
            self.file.done()


def json_evidence(kind: str, document: Mapping[str, Any]) -> Evidence:
    """``document`` kept as readable JSON evidence (values JSON cannot hold written as text)."""
    content = json.dumps(document, indent=2, ensure_ascii=False, default=str).encode()
    return Evidence(kind, "application/json", content)


@dataclass(frozen=True)
class Contact:
    """What the scenario engine asks a channel to send."""

    token: str
    subject: str  # channels without subjects ignore it
    text: str  # already carries the token
    sender_name: str
    #: The team the contact should reach (a target queue id), for channels whose route is
    #: chosen by the customer (a phone menu path).
    expected_queue: str | None = None
    #: Whether the contact says it is a test (the target's ``contact_mode: declared``): the
    #: disclosure is in ``text`` already; channels with headers also mark the message itself.
    disclosed: bool = True
    #: The disclosure line alone (token filled in), for channels that say it rather than send
    #: ``text`` (a call says it to the person who answers); "" when not disclosed.
    disclosure: str = ""


@dataclass(frozen=True)
class Sent:
    """The channel accepted the contact at ``at``: t0 of every timing of the run."""

    at: datetime  # UTC
    external_id: str  # e.g. the email's Message-ID, a call SID
    evidence: Evidence | None = None
    #: The message as sent, where the evidence does not already hold it (chat).
    text: str = ""
    #: How ``at`` was measured, when the channel knows better than "channel-accepted".
    timing_method: str = ""
    #: Channel-specific, JSON-serialisable state needed to resume after a restart.
    resume_state: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A reply observed on a conversation."""

    observed_at: datetime  # UTC: when cxprobe saw it
    arrived_at: datetime  # UTC: best estimate of when it reached the customer; used for timing
    timing_method: str  # how arrived_at was measured, e.g. "imap-internaldate"
    sender: str
    text: str  # the reply's own text (quoted history removed where the channel can tell)
    responder: Responder
    external_id: str  # unique per channel (e.g. the reply's Message-ID); deduplicates
    subject: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    evidence: Evidence | None = None
    #: Keys tying the reply to a contact: referenced message ids and tokens found in it.
    thread_keys: frozenset[str] = frozenset()

    def release(self) -> None:
        """Done with the reply (stored, or dropped): see :meth:`Evidence.release`."""
        if self.evidence is not None:
            self.evidence.release()


@runtime_checkable
class Measured(Protocol):
    """A conversation with figures of its own (``ChannelType.measures``), read once closed."""

    def measures(self) -> Mapping[str, float]: ...


class Conversation(Protocol):
    """One probe contact on one channel."""

    async def send(self, contact: Contact) -> Sent:
        """Send the opening contact; return when the channel accepted it."""
        ...

    async def follow_up(self, contact: Contact) -> Sent:
        """Send another message in the same conversation (e.g. in the email's thread); replies
        to it are replies to the conversation."""
        ...

    def replies(self) -> AsyncIterator[Reply]:
        """Replies in arrival order (the runner owns the deadline). Ends only when the
        conversation cannot produce more (a call that has hung up); the run is then judged.

        An iteration that is interrupted (cancelled while waiting) may be replaced by a new
        call: no reply is lost between the two.

        Raises a :class:`ProbeError` subclass if the contact turns out to have failed
        (e.g. a bounce arrives).

        The caller owns each reply: it calls :meth:`Reply.release` once it is stored.
        """
        ...

    async def close(self) -> Sequence[Evidence]:
        """Stop listening (later replies go to the channel's ``on_unmatched`` sink) and leave
        the conversation politely where the channel can.

        Returns evidence of the conversation as a whole, kept with the run: a chat's transcript
        and final screenshot, say. Called after a failure too, when it is worth most.
        """
        ...


#: Receives replies no open conversation claimed (late replies to closed runs, strangers);
#: it owns the reply, and calls :meth:`Reply.release` once it has stored or dropped it.
UnmatchedSink = Callable[[Reply], Awaitable[None]]


class ChannelState(Protocol):
    """Small durable state a channel driver keeps across restarts (JSON-ready mappings), and
    holds on keys that every monitor sharing the state respects (one run at a time)."""

    async def load(self, key: str) -> Mapping[str, Any] | None: ...

    async def save(self, key: str, value: Mapping[str, Any]) -> None: ...

    async def hold(self, key: str, token: str) -> str | None:
        """Take ``key`` for the run of ``token``: None when it is now that run's, else the
        token of the run still holding it."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Give up ``key`` if the run of ``token`` holds it."""
        ...


@dataclass
class MemoryChannelState:
    """Channel state kept for the life of the process only (embedding, tests)."""

    values: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    holds: dict[str, str] = field(default_factory=dict)

    async def load(self, key: str) -> Mapping[str, Any] | None:
        return self.values.get(key)

    async def save(self, key: str, value: Mapping[str, Any]) -> None:
        self.values[key] = dict(value)

    async def hold(self, key: str, token: str) -> str | None:
        holder = self.holds.setdefault(key, token)
        return None if holder == token else holder

    async def release(self, key: str, token: str) -> None:
        if self.holds.get(key) == token:
            del self.holds[key]


@dataclass
class Webhooks:
    """The monitor's HTTP server as channel drivers see it.

    A driver that receives provider callbacks adds its routes in ``start`` (the server starts
    after the channels); ``local_url`` is the server's own address once it listens (None when
    the monitor runs without one).
    """

    routes: list[web.RouteDef] = field(default_factory=list)
    local_url: str | None = None


def _already_set() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@dataclass(frozen=True)
class ChannelServices:
    """What the application hands every channel driver."""

    logger: logging.Logger
    on_unmatched: UnmatchedSink
    #: Where the driver keeps what must survive a restart (the monitor's evidence store).
    state: ChannelState = field(default_factory=MemoryChannelState)
    webhooks: Webhooks = field(default_factory=Webhooks)
    #: Called for every webhook request refused for its signature (counted in the metrics).
    on_rejected_webhook: Callable[[], None] = lambda: None
    #: Where the driver spools what it receives until the store has it (``monitor.data_dir``
    #: /spool/<kind>); None: a temporary directory for the life of the driver, so spooled
    #: messages do not outlive the process (embedding, tests).
    spool_dir: Path | None = None
    #: Set once the monitor has re-attached the open runs it resumed at start: what a driver
    #: spooled before a restart is handed on only then, so it reaches its resumed run. Set
    #: from the start by default (nothing to resume: embedding, tests).
    runs_resumed: asyncio.Event = field(default_factory=_already_set)
    #: This monitor among those sharing the store (``monitor.name``): per-monitor URLs name it.
    monitor_name: str = "cxprobe"


SettingsT = TypeVar("SettingsT", bound=BaseModel)
AddressT = TypeVar("AddressT", bound=BaseModel)
#: A channel only takes addresses in, so a driver of a wider address type serves a narrower one.
AddressT_contra = TypeVar("AddressT_contra", bound=BaseModel, contravariant=True)


class Channel(Protocol[AddressT_contra]):
    """A channel driver, created once per process by its :class:`ChannelType`."""

    kind: ClassVar[str]

    async def start(self, stack: AsyncExitStack, addresses: Sequence[AddressT_contra] = ()) -> None:
        """Acquire shared resources lazily or now; register their clean-up on ``stack``.

        ``addresses`` are those the configured checks contact; a channel whose replies can
        arrive between runs (email) starts listening for them now.
        """
        ...

    async def open(self, address: AddressT_contra, token: str) -> Conversation:
        """A new conversation with a target at ``address``."""
        ...

    async def resume(self, address: AddressT_contra, token: str, sent: Sent) -> Conversation:
        """Re-attach to a conversation a previous process started (after a restart).

        Replies that arrived while no process was listening must be delivered too.
        """
        ...

    def health(self) -> Mapping[str, Any]:
        """The driver's connections as JSON-ready data, for ``/healthz``."""
        ...


@dataclass(frozen=True)
class DefaultSla:
    """A channel's industry-norm service levels (seconds; DESIGN.md "SLAs and alerting"), used
    where a target sets none of its own."""

    first_response: float | None
    human_response: float | None
    after_hours_response: float | None
    #: How long a run waits for answers before it is judged.
    deadline: float | None


@dataclass(frozen=True)
class Methodology:
    """How a channel times a run, for the audit report's methodology section."""

    t0: str  # the event that is t0, e.g. "the SMTP server's 250 reply to DATA"
    reply_timing: str  # how a reply's arrival is timed
    precision: str  # how precise the figures are, and why
    #: How the channel's own figures (``ChannelType.measures``) are taken, and how precise
    #: they are; empty for a channel without any.
    measures: str = ""


@dataclass(frozen=True)
class Measure:
    """A figure a channel's conversations measure besides the reply times, in seconds."""

    label: str  # for people, e.g. "time to a human (audio)"
    help: str  # what it measures, from when to when (the metric's help text)


#: Where in the configuration a problem is (``("targets", "acme", "slas")``).
KeyPath = tuple[str | int, ...]
#: A configuration problem: where, and what to do about it.
Problem = tuple[KeyPath, str]


@dataclass(frozen=True)
class AddressUse(Generic[AddressT]):
    """A target's address on a channel, as the channel's cross-check sees it."""

    address: AddressT
    #: The target's service levels on the channel (its own figures over the defaults).
    sla: DefaultSla
    where: KeyPath  # of the address (``targets.<id>.channels.<kind>``)
    sla_where: KeyPath  # of the target's SLAs (``targets.<id>.slas``)


@dataclass(frozen=True)
class ScenarioUse:
    """A check on a channel, as the channel's cross-check sees it: its scenario."""

    scenario: str
    #: Who may answer the scenario outside business hours.
    after_hours_accepts: frozenset[Responder]
    where: KeyPath  # of the check's scenario (``checks[<i>].scenario``)


@dataclass(frozen=True)
class ChannelUses(Generic[SettingsT, AddressT]):
    """Everything a configuration asks of one channel kind: what its cross-check reads."""

    settings: SettingsT | None  # the ``channels.<kind>`` section; None when it is missing
    addresses: Sequence[AddressUse[AddressT]]
    checks: Sequence[ScenarioUse]  # known scenarios only


#: Problems the models cannot see one at a time: references between the channel's section,
#: the targets' addresses and SLAs, and the scenarios its checks run.
CrossCheck = Callable[[ChannelUses[SettingsT, AddressT]], list[Problem]]
#: Lines for ``cxprobe once`` from one piece of a run's evidence (its content, the run's t0).
EvidenceSummary = Callable[[bytes, datetime | None], list[str]]


def per_address(
    rule: Callable[[AddressT, SettingsT | None], str | None],
) -> CrossCheck[SettingsT, AddressT]:
    """A cross-check of one rule per address: ``rule(address, settings)`` says what is wrong
    with the address given the channel's section (e.g. a mailbox the section does not define)."""

    def cross_check(uses: ChannelUses[SettingsT, AddressT]) -> list[Problem]:
        return [
            (use.where, message)
            for use in uses.addresses
            if (message := rule(use.address, uses.settings)) is not None
        ]

    return cross_check


@dataclass(frozen=True)
class CostUnits:
    """What one contact on a channel is charged in: ``count`` of the channel's ``unit``, to
    ``destination`` (an E.164 number, priced by its country; "" when none), billed to the
    provider ``account`` (e.g. the Twilio account SID; "" when the channel has none)."""

    unit: str  # "segment", "minute", "message", ...
    count: float
    destination: str = ""
    account: str = ""


@dataclass(frozen=True)
class Price:
    """What the provider charged for a contact (a positive amount in ``currency``)."""

    amount: float
    currency: str  # ISO 4217, as the provider reports it


#: A channel's estimate of what a contact costs, before it is sent: the units it will be
#: charged (``max_call_seconds`` for a call, the text's segments for an SMS).
CostEstimate = Callable[[SettingsT, AddressT, Contact], CostUnits]


@runtime_checkable
class PricedChannel(Protocol):
    """A channel driver that can ask its provider what a sent contact actually cost."""

    async def actual_price(self, external_id: str) -> Price | None:
        """The provider's price of the contact ``external_id``; None while it has none yet
        (Twilio rates a message or call some time after it is sent)."""
        ...


@dataclass(frozen=True)
class ChannelType(Generic[SettingsT, AddressT]):
    """One entry of the channel registry: everything the rest of cxprobe knows of a channel."""

    kind: str
    settings_model: type[SettingsT]  # the ``channels.<kind>`` section of the config
    address_model: type[AddressT]  # the ``targets.<id>.channels.<kind>`` section
    create: Callable[[SettingsT, ChannelServices], Channel[AddressT]]
    default_sla: DefaultSla
    methodology: Methodology
    cross_check: CrossCheck[SettingsT, AddressT]
    #: Evidence kinds this channel can summarise for ``cxprobe once`` (e.g. a call timeline).
    evidence_summaries: Mapping[str, EvidenceSummary] = field(default_factory=dict)
    #: Whether conversations may stay open for hours (persisted, resumed after restarts).
    resumable: bool = False
    #: Why a conversation of this kind cannot be resumed (added to the interrupted run's reason).
    cannot_resume: str = ""
    #: Whether the driver needs the monitor's HTTP server (provider webhooks).
    needs_http: bool = False
    #: Whether any member of the public reaches the target this way, with no account or
    #: agreement with the target (a support address, a public chat page or number): only
    #: public channels may be probed on a target marked ``competitor: true``.
    public: bool = False
    #: The units a contact is charged in, estimated before it is sent; None: contacts are
    #: free (their estimated cost is 0 and no budget is spent by them).
    estimate_cost: CostEstimate[SettingsT, AddressT] | None = None
    #: The responder kinds the driver can classify a reply as (a target's ``responders``
    #: rules may add others): a conversation turn waiting only for others can never match.
    responders: frozenset[Responder] = frozenset(Responder)
    #: Figures a conversation may measure besides the reply times (by name), each exported as
    #: ``cxprobe_<kind>_<name>_seconds``, kept in the store and in the report; a conversation
    #: hands them back from ``measures()`` when it closes (see :class:`Measured`).
    measures: Mapping[str, Measure] = field(default_factory=dict)
    #: What the measures are of, as a heading (the report's and the dashboards'), e.g.
    #: "Phone audio"; empty: "<kind> measures".
    measures_title: str = ""

    @property
    def measures_heading(self) -> str:
        return self.measures_title or f"{self.kind} measures"

    def settings_of(self, section: BaseModel | None) -> SettingsT:
        """``section`` (a validated config's ``channels.<kind>``) as this channel's settings."""
        if not isinstance(section, self.settings_model):
            raise TypeError(f"channels.{self.kind} is {type(section).__name__}, not configured")
        return section

    def address_of(self, section: BaseModel | None) -> AddressT:
        """``section`` (a target's ``channels.<kind>``) as this channel's address."""
        if not isinstance(section, self.address_model):
            raise TypeError(f"the target's channels.{self.kind} is {type(section).__name__}")
        return section

    def cost_units(
        self, settings: BaseModel | None, address: BaseModel | None, contact: Contact
    ) -> CostUnits | None:
        """:attr:`estimate_cost` on a validated configuration's sections (None: free)."""
        if self.estimate_cost is None:
            return None
        return self.estimate_cost(self.settings_of(settings), self.address_of(address), contact)

    def check_config(
        self,
        settings: BaseModel | None,
        addresses: Sequence[AddressUse[BaseModel]],
        checks: Sequence[ScenarioUse],
    ) -> list[Problem]:
        """Run this channel's cross-check on sections of a validated configuration."""
        uses = ChannelUses(
            settings=None if settings is None else self.settings_of(settings),
            addresses=[
                AddressUse(self.address_of(use.address), use.sla, use.where, use.sla_where)
                for use in addresses
            ],
            checks=checks,
        )
        return self.cross_check(uses)


__all__ = [
    "AddressUse",
    "Channel",
    "ChannelServices",
    "ChannelType",
    "ChannelUnavailable",
    "ChannelUses",
    "Contact",
    "ContactRejected",
    "Conversation",
    "CostEstimate",
    "CostUnits",
    "CrossCheck",
    "CxprobeError",
    "DefaultSla",
    "Evidence",
    "EvidenceSummary",
    "KeyPath",
    "Measure",
    "Measured",
    "Methodology",
    "Price",
    "PricedChannel",
    "ProbeError",
    "ProbeTimeout",
    "Problem",
    "ProviderError",
    "Reply",
    "Responder",
    "ScenarioUse",
    "Sent",
    "UnmatchedSink",
    "Webhooks",
    "json_evidence",
    "new_token",
    "per_address",
    "utc_now",
]

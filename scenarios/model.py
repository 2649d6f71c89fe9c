"""Scenario definitions (config) and run results (what every sink receives).

A scenario is a customer contact script that does not depend on the channel: the same
scenario runs on email, chat, phone and messaging so their answers can be compared.
"""

from __future__ import annotations

import contextvars
import enum
import functools
import re
import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

import re2
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    field_validator,
    model_validator,
)

from probes.base import Responder
from scenarios.durations import Duration
from scenarios.language import LanguageTag, primary_language
from scenarios.rubric_library import load_library_rubric


class Period(enum.StrEnum):
    """Where a contact fell in the target's calendar."""

    BUSINESS = "business"
    AFTER_HOURS = "after_hours"
    HOLIDAY = "holiday"

    @property
    def is_open(self) -> bool:
        return self is Period.BUSINESS


class Outcome(enum.StrEnum):
    """How a run ended. One per run; the metric label ``outcome``."""

    MET = "met"  # answered as the scenario expects, within its SLA
    BREACHED = "breached"  # no qualifying answer within the SLA (late answers are still kept)
    FAILED = "failed"  # the channel refused the contact (bounce, 5xx)
    ERROR = "error"  # the probe could not run (unreachable, provider error, crash)
    INTERRUPTED = "interrupted"  # the monitor stopped before the contact was sent
    #: No contact was sent on purpose (an opt-out, a maintenance window, a spent contact
    #: budget): never a breach, never an SLO event.
    SKIPPED = "skipped"


class SkipReason(enum.StrEnum):
    """Why a slot sent no contact on purpose (``skipped: <reason>``; the metric label)."""

    OPT_OUT = "opt_out"  # the recipient opted out (STOP, 21610, a permanent bounce)
    MAINTENANCE = "maintenance"  # a maintenance window in pause mode is open
    RATE_LIMIT = "rate_limit"  # the target's contacts per hour on the channel are spent
    BUDGET = "budget"  # the contact's estimated cost would take a money budget over its limit


class ContactMode(enum.StrEnum):
    """Whether a target's contacts say they are tests (``targets.<id>.contact_mode``)."""

    DECLARED = "declared"  # every contact discloses itself and carries its reference token
    MYSTERY = "mystery"  # no disclosure: mystery shopping, with a recorded reason


class RoutingResult(enum.StrEnum):
    CORRECT = "correct"
    WRONG = "wrong"
    UNKNOWN = "unknown"


class AnswerVerdict(enum.StrEnum):
    """What the human answers of a run say (``scenarios.answers``; the metric label
    ``verdict``)."""

    CORRECT = "correct"  # every must_mention fact, no must_not_mention fact
    INCOMPLETE = "incomplete"  # some must_mention fact missing, nothing wrong
    WRONG = "wrong"  # a must_not_mention fact was found
    NONE = "none"  # no human answer


class LanguageVerdict(enum.StrEnum):
    """Whether the human answers are in the scenario's language."""

    MATCH = "match"
    MISMATCH = "mismatch"
    UNKNOWN = "unknown"  # no human answer, or too little text to tell


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE | re.MULTILINE)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc


#: Placeholders a scenario's texts may use.
TEMPLATE_FIELDS = frozenset({"token", "customer_name", "target"})

Regex = Annotated[str, Field(description="A regular expression (case-insensitive, searched).")]


class Matcher(BaseModel):
    """Matches a reply when every given field matches (regular expressions, searched)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sender: Regex | None = None
    subject: Regex | None = None
    text: Regex | None = None
    headers: dict[str, Regex] = Field(default_factory=dict)

    @field_validator("sender", "subject", "text")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            _compile(value)
        return value

    @field_validator("headers")
    @classmethod
    def _valid_header_regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern in value.values():
            _compile(pattern)
        return value

    def model_post_init(self, context: Any, /) -> None:
        if self.sender is None and self.subject is None and self.text is None and not self.headers:
            raise ValueError("a matcher needs at least one of: sender, subject, text, headers")

    def matches(self, sender: str, subject: str, text: str, headers: dict[str, str]) -> bool:
        checks = [(self.sender, sender), (self.subject, subject), (self.text, text)]
        for pattern, value in checks:
            if pattern is not None and not _compile(pattern).search(value):
                return False
        lowered = {name.lower(): value for name, value in headers.items()}
        for name, pattern in self.headers.items():
            header_value = lowered.get(name.lower())
            if header_value is None or not _compile(pattern).search(header_value):
                return False
        return True


#: The persona keys of the scenario being validated, which its texts may use as placeholders
#: too. A context variable because a nested model's validator (a follow-up's or a turn's text)
#: cannot see its scenario, and checking there keeps the error at the text's own key and line.
_PERSONA_FIELDS: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "persona_fields", default=frozenset()
)


@contextmanager
def _persona_placeholders(names: frozenset[str]) -> Iterator[None]:
    token = _PERSONA_FIELDS.set(names)
    try:
        yield
    finally:
        _PERSONA_FIELDS.reset(token)


def _check_placeholders(value: str) -> str:
    known = TEMPLATE_FIELDS | _PERSONA_FIELDS.get()
    for _, name, _, _ in string.Formatter().parse(value):
        if name is not None and name not in known:
            raise ValueError(
                f"unknown placeholder {{{name}}}; use {', '.join(sorted(known))}"
                " (write {{ and }} for literal braces)"
            )
    return value


class FollowUp(BaseModel):
    """A message the customer sends in the same thread while still waiting for an answer."""

    model_config = ConfigDict(extra="forbid")

    after: Duration = Field(
        description="Sent this long after the opening contact, if the run is still undecided."
    )
    text: str = Field(description="The message; {token}, {customer_name}, {target} filled in.")

    @field_validator("text")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        return _check_placeholders(value)

    @field_validator("after")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be a positive duration, e.g. 30m")
        return value


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # a bad pattern is reported by validation, not on stderr
    return options


@functools.lru_cache(maxsize=1024)
def compile_fact_pattern(pattern: str) -> Any:
    """An answer expectation's regex, compiled with RE2: matching takes time linear in the
    reply's length (Python's ``re`` can backtrack for hours on a hostile reply), at the cost
    of RE2's syntax (no backreferences, no lookaround)."""
    try:
        return re2.compile(pattern, _re2_options())
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(
            f"invalid regular expression '{pattern}' for RE2 (linear-time: no backreferences "
            f"or lookaround): {detail}"
        ) from None


class KeywordMatcher(BaseModel):
    """Text conditions: all of ``all`` keywords, at least one of ``any``, and/or an RE2
    ``regex`` (case-insensitive, searched). Shared by facts, turn matchers and rubric items."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    all: list[str] = Field(default_factory=list, description="Every one of these keywords.")
    any: list[str] = Field(default_factory=list, description="At least one of these keywords.")
    regex: str | None = Field(default=None, description="An RE2 regular expression, searched.")

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            compile_fact_pattern(value)
        return value

    @field_validator("all", "any")
    @classmethod
    def _no_empty_keywords(cls, value: list[str]) -> list[str]:
        if any(not keyword.strip() for keyword in value):
            raise ValueError("keywords must not be empty")
        return value


class Fact(KeywordMatcher):
    """Something an answer says: all of ``all`` keywords, at least one of ``any``, and/or a
    ``regex`` (case-insensitive). Keywords are matched from the start of a word, ignoring case
    ("refund" finds "refunds"); a fact with several kinds of condition needs every one."""

    name: str = Field(min_length=1, description="What the fact is, e.g. refund-period.")

    @model_validator(mode="after")
    def _has_a_condition(self) -> Fact:
        if not self.all and not self.any and self.regex is None:
            raise ValueError(f"fact {self.name!r} needs at least one of: all, any, regex")
        return self


class AnswerFacts(BaseModel):
    """What a correct answer mentions, what it must not, and what counts as resolved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    must_mention: list[Fact] = Field(
        default_factory=list, description="Facts a complete answer states (all of them)."
    )
    must_not_mention: list[Fact] = Field(
        default_factory=list,
        description="Wrong facts or other customers' data patterns: any of them makes it wrong.",
    )
    resolution: Fact | None = Field(
        default=None, description="What a resolving answer says (default: a correct answer)."
    )


class Expectations(AnswerFacts):
    """A scenario's answer expectations; ``languages`` adds facts for one language (keyed by
    BCP 47 tag), used when the scenario's ``language`` has that language."""

    languages: dict[LanguageTag, AnswerFacts] = Field(default_factory=dict)

    def for_language(self, tag: str | None) -> AnswerFacts:
        """The facts that apply to a scenario in ``tag``: the common ones and its language's."""
        extra = [
            facts
            for key, facts in self.languages.items()
            if tag is not None and primary_language(key) == primary_language(tag)
        ]
        return AnswerFacts(
            must_mention=[*self.must_mention, *(f for e in extra for f in e.must_mention)],
            must_not_mention=[
                *self.must_not_mention,
                *(f for e in extra for f in e.must_not_mention),
            ],
            resolution=next(
                (e.resolution for e in reversed(extra) if e.resolution), self.resolution
            ),
        )


# -- the mystery-shopping rubric (issue 13): scored by scenarios/rubric.py -------------------


class RubricKind(enum.StrEnum):
    """What a rubric item checks. The text kinds read the human answers (each has a default
    matcher in :mod:`scenarios.rubric`); ``expectations`` and ``sla`` read the run's verdicts."""

    GREETING = "greeting"
    NAME = "name"  # the customer's name (monitor.customer_name or the item's keywords)
    EMPATHY = "empathy"  # scored only when the scenario is a complaint
    SIGN_OFF = "sign_off"
    REFERENCE = "reference"  # a reference or ticket number given
    EXPECTATIONS = "expectations"  # the answer verdict is correct
    SLA = "sla"  # the run's outcome is met
    CUSTOM = "custom"  # the item's own matcher


#: Rubric items that read the run's verdicts, not the answers' text: they take no matcher.
VERDICT_KINDS = frozenset({RubricKind.EXPECTATIONS, RubricKind.SLA})
#: What a rubric's weights add up to (its score is 0-100).
RUBRIC_TOTAL = 100.0


class RubricItem(KeywordMatcher):
    """One rubric item: a kind, a weight, and for text kinds an optional matcher replacing the
    kind's default (``all``/``any`` keywords, which may use persona placeholders, and/or an RE2
    ``regex``)."""

    kind: RubricKind
    name: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_-]{0,39}$",
        description="The item's id in metrics and the report (default: its kind).",
    )
    weight: float = Field(gt=0, le=RUBRIC_TOTAL, description="Points out of 100.")

    @field_validator("all", "any")
    @classmethod
    def _known_placeholders(cls, value: list[str]) -> list[str]:
        for keyword in value:
            _check_placeholders(keyword)
        return value

    @model_validator(mode="after")
    def _matcher_fits_kind(self) -> RubricItem:
        has_matcher = bool(self.all or self.any or self.regex)
        if self.kind in VERDICT_KINDS and has_matcher:
            raise ValueError(
                f"a {self.kind} item reads the run's verdict, not the text: remove all/any/regex"
            )
        if self.kind is RubricKind.CUSTOM and not (has_matcher and self.name):
            raise ValueError("a custom item needs a name and a matcher (all, any or regex)")
        return self

    @property
    def id(self) -> str:
        return self.name or str(self.kind)


class Rubric(BaseModel):
    """A mystery-shopping rubric: items whose weights sum to 100. An item that does not apply
    to a run (empathy outside a complaint, expectations without ``expect``) is left out and
    the others are rescaled to 100."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: list[RubricItem] = Field(min_length=1)

    @field_validator("items")
    @classmethod
    def _weights_sum_to_100(cls, items: list[RubricItem]) -> list[RubricItem]:
        ids = [item.id for item in items]
        repeated = sorted({name for name in ids if ids.count(name) > 1})
        if repeated:
            raise ValueError(
                f"item names must be unique; {', '.join(repeated)} appear twice: give one a name"
            )
        total = sum(item.weight for item in items)
        if abs(total - RUBRIC_TOTAL) > 1e-6:
            weights = " + ".join(f"{item.weight:g}" for item in items)
            raise ValueError(f"the weights must sum to 100, not {total:g} ({weights}); adjust them")
        return items


def _library_rubric(value: Any) -> Any:
    """``rubric: <name>`` is a library rubric (scenarios/library/rubrics/<name>.yaml)."""
    if not isinstance(value, str):
        return value
    return load_library_rubric(value)


# -- conversation scripts: the probe answers an agent's questions (issue 13) -----------------

#: What the fallback answers unless it says otherwise: a human reply with a line that ends in a
#: question mark (a bot's greeting, "How can I help?", is not a question about the contact).
DEFAULT_QUESTION_PATTERN = r"(?m)\?\s*$"
#: Turns a scripted conversation sends at most, unless the scenario says otherwise.
DEFAULT_MAX_TURNS = 5


class TurnMatcher(KeywordMatcher):
    """Matches the last reply when every given condition holds: all of ``all`` keywords, at
    least one of ``any``, the RE2 ``regex`` (case-insensitive, searched), and a responder in
    ``responder``. Keywords match from the start of a word, ignoring case, as in ``expect``."""

    responder: list[Responder] = Field(
        default_factory=list, description="The reply's responder is one of these (any if empty)."
    )

    @model_validator(mode="after")
    def _has_a_condition(self) -> TurnMatcher:
        if not (self.regex or self.all or self.any or self.responder):
            raise ValueError("a turn's when needs at least one of: regex, all, any, responder")
        return self

    def text_fact(self, name: str) -> Fact | None:
        """The text conditions as a :class:`Fact` (None: the matcher reads no text)."""
        if not (self.regex or self.all or self.any):
            return None
        return Fact(name=name, all=self.all, any=self.any, regex=self.regex)


class Turn(BaseModel):
    """What the probe says when the last reply matches ``when``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    when: TurnMatcher
    say: str = Field(min_length=1, description="The answer; persona placeholders filled in.")
    repeat: bool = Field(default=False, description="May be used more than once in a run.")

    @field_validator("say")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        return _check_placeholders(value)


class Fallback(BaseModel):
    """What the probe says to a question no turn matched (``when``: by default a human reply
    with a line ending in "?"). Used as often as it matches, within ``max_turns``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    when: TurnMatcher = TurnMatcher(regex=DEFAULT_QUESTION_PATTERN, responder=[Responder.HUMAN])
    say: str = Field(min_length=1)

    @field_validator("say")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        return _check_placeholders(value)


class Scenario(BaseModel):
    """A channel-agnostic customer contact script."""

    model_config = ConfigDict(extra="forbid")

    # Before the texts: their placeholders are checked against its keys.
    persona: dict[str, str] = Field(
        default_factory=dict,
        description="The customer's data (e.g. order_number, account_email), usable as "
        "placeholders in the opening, follow-ups and turns.",
    )
    intent: str = Field(description="What the customer wants, e.g. billing-question.")
    description: str = ""
    subject: str = Field(description="Subject line where the channel has one ({token} allowed).")
    opening: str = Field(
        description="The opening message; {token}, {customer_name} and {target} are filled in."
    )
    expected_queue: str | None = Field(
        default=None, description="The team this contact should reach (a target queue id)."
    )
    after_hours_accepts: list[Responder] = Field(
        default_factory=lambda: [Responder.BOT, Responder.AUTO, Responder.HUMAN],
        description="Responders that count as an answer outside business hours.",
    )
    closed_notice: Matcher | None = Field(
        default=None,
        description="After hours, an answer must also match this (e.g. states opening hours).",
    )
    follow_ups: list[FollowUp] = Field(
        default_factory=list,
        description="Chasers sent in the same thread while no qualifying answer has come.",
    )
    language: LanguageTag | None = Field(
        default=None,
        description="The language the contact is written in (BCP 47); a human answer in "
        "another is recorded as language: mismatch.",
    )
    expect: Expectations | None = Field(
        default=None, description="What the human answers must (not) mention, and resolution."
    )
    turns: list[Turn] = Field(
        default_factory=list,
        description="Answers to the agent's questions: the first turn whose when matches the "
        "last reply is said in the same conversation.",
    )
    fallback: Fallback | None = Field(
        default=None, description="What to say to a question no turn matched."
    )
    max_turns: int = Field(
        default=DEFAULT_MAX_TURNS, ge=1, le=50, description="Turns sent at most in one run."
    )
    complaint: bool = Field(
        default=False, description="The customer complains: the rubric scores empathy."
    )
    rubric: Rubric | None = Field(
        default=None,
        description="The mystery-shopping rubric (items and weights), or a library rubric's "
        "name (e.g. mystery-shopper).",
    )

    @field_validator("rubric", mode="before")
    @classmethod
    def _rubric_by_name(cls, value: Any) -> Any:
        return _library_rubric(value)

    @model_validator(mode="wrap")
    @classmethod
    def _persona_known_to_texts(
        cls, data: Any, handler: ModelWrapValidatorHandler[Scenario]
    ) -> Scenario:
        persona = data.get("persona") if isinstance(data, dict) else None
        names = frozenset(persona) if isinstance(persona, dict) else frozenset()
        with _persona_placeholders(frozenset(str(name) for name in names)):
            return handler(data)

    @field_validator("persona")
    @classmethod
    def _placeholder_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name.isidentifier():
                raise ValueError(f"persona key {name!r} must be a name like order_number")
            if name in TEMPLATE_FIELDS:
                raise ValueError(f"persona key {name!r} is filled in by cxprobe; rename it")
        return value

    @field_validator("subject", "opening")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        return _check_placeholders(value)

    @property
    def scripted(self) -> bool:
        """Whether the probe answers the agent's questions (it has turns or a fallback)."""
        return bool(self.turns) or self.fallback is not None

    def render(self, text: str, **values: str) -> str:
        fields = {**self.persona, **{name: values.get(name, "") for name in TEMPLATE_FIELDS}}
        return text.format_map(fields)


class SloName(enum.StrEnum):
    """The service-level objectives a run produces events for (the metric label ``slo``), each
    named as the :class:`Thresholds` figure it is judged by. The one list of SLO names."""

    FIRST_RESPONSE = "first_response"
    HUMAN_RESPONSE = "human_response"
    AFTER_HOURS_RESPONSE = "after_hours_response"


@dataclass(frozen=True)
class Thresholds:
    """The SLA figures that applied to one run (seconds): one per :class:`SloName`, and the
    deadline."""

    first_response: float | None
    human_response: float | None
    after_hours_response: float | None
    deadline: float

    def limit(self, slo: SloName) -> float | None:
        """The figure ``slo`` is judged by (None: the SLA sets none)."""
        limit: float | None = getattr(self, slo.value)
        return limit

    def as_dict(self) -> dict[str, float | None]:
        return {**{slo.value: self.limit(slo) for slo in SloName}, "deadline": self.deadline}

    def slos(self) -> list[tuple[str, float]]:
        """The SLOs a run can produce events for (those with a figure), with their limits."""
        return [(slo.value, limit) for slo in SloName if (limit := self.limit(slo)) is not None]


@dataclass(frozen=True)
class ObservedReply:
    """A reply as the engine judged it."""

    arrived_at: datetime
    observed_at: datetime
    seconds: float  # arrived_at - sent_at
    responder: Responder
    sender: str
    queue: str | None
    late: bool
    #: The reply's id on its channel (e.g. its Message-ID); "" when unknown.
    external_id: str = ""
    #: Whether it answers the run as the scenario asks (None: not known, e.g. an old record).
    qualifies: bool | None = None


@dataclass
class TurnRecord:
    """One message the probe sent in a scripted conversation, and how fast it was answered.

    Turn 0 is the opening contact; the others answer a reply (``reply``: its external id) that
    matched ``matched`` (``turns[<i>]`` or ``fallback``). The seconds are the next reply's and
    the next human reply's ``arrived_at`` minus this message's ``sent_at``, at the channel's
    timing precision; None while none has come.
    """

    index: int
    said: str
    sent_at: datetime
    matched: str = ""
    reply: str = ""
    next_reply_seconds: float | None = None
    next_human_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "turn": self.index,
            "said": self.said,
            "when": self.matched or "opening",
            "reply": self.reply or None,
            "sent_at": self.sent_at.isoformat(),
            "next_reply_seconds": self.next_reply_seconds,
            "next_human_seconds": self.next_human_seconds,
        }


@dataclass(frozen=True)
class RubricItemResult:
    """How one rubric item scored on a run: ``met`` (None: not applicable, left out and the
    other items rescaled), the points it earned out of 100, and the span that showed it."""

    item: str
    kind: RubricKind
    weight: float
    met: bool | None
    points: float = 0.0
    #: Where the text was found: ``{"answer", "start", "end", "text"}``; None: not found or
    #: not a text item.
    span: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "kind": str(self.kind),
            "weight": self.weight,
            "met": self.met,
            "points": self.points,
            "span": self.span,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RubricItemResult:
        return cls(
            item=str(data["item"]),
            kind=RubricKind(data["kind"]),
            weight=float(data["weight"]),
            met=data["met"],
            points=float(data.get("points", 0.0)),
            span=data.get("span"),
        )


@dataclass
class RunResult:
    """Everything known about one run; what the store, metrics and CLI receive."""

    run_id: str
    check_id: str
    target: str
    channel: str
    scenario: str
    location: str
    slot: datetime
    token: str
    period: Period
    thresholds: Thresholds
    outcome: Outcome | None = None  # None while the run is open
    reason: str = ""
    sent_at: datetime | None = None
    first_response_seconds: float | None = None
    first_response_responder: Responder | None = None
    first_human_seconds: float | None = None
    routed_queue: str | None = None
    expected_queue: str | None = None
    routing: RoutingResult = RoutingResult.UNKNOWN
    replies: list[ObservedReply] = field(default_factory=list)
    finished_at: datetime | None = None
    #: Whether the contact disclosed itself: recorded on every run for the auditors.
    contact_mode: ContactMode = ContactMode.DECLARED
    #: Why the run counts for no SLO (a maintenance window in ``exclude_from_slo`` mode);
    #: None when it counts.
    slo_excluded: str | None = None
    #: What the human answers said (``scenarios.answers``); None: the scenario asks nothing.
    answer: AnswerVerdict | None = None
    #: Resolved by an answer before any follow-up (a first-contact-resolution proxy).
    resolved: bool | None = None
    #: Whether the human answers are in the scenario's language; None: it names none.
    language: LanguageVerdict | None = None
    #: The language detected in the human answers (ISO 639-1), None when unknown.
    reply_language: str | None = None
    #: A scripted conversation's timeline (the opening first); empty when not scripted.
    turns: list[TurnRecord] = field(default_factory=list)
    #: The mystery-shopping rubric's score (0-100) of the human answers; None: the scenario
    #: has no rubric, no human answered, or no item applied.
    rubric_score: float | None = None
    #: Each rubric item's result (``scenarios.rubric``), in the rubric's order.
    rubric_items: list[RubricItemResult] = field(default_factory=list)
    #: The channel's own figures (``ChannelType.measures``, seconds), e.g. a call's time on
    #: hold from its audio; stored (``run_measures``), sealed with the run and exported.
    measures: dict[str, float] = field(default_factory=dict)

    @property
    def deadline_at(self) -> datetime | None:
        if self.sent_at is None:
            return None
        return self.sent_at + timedelta(seconds=self.thresholds.deadline)

    def first_by_responder(self) -> dict[Responder, float]:
        """Seconds to the first reply of each responder kind (on-time or late)."""
        firsts: dict[Responder, float] = {}
        for reply in self.replies:
            firsts.setdefault(reply.responder, reply.seconds)
        return firsts

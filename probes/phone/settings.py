"""Configuration models of the phone channel (``channels.phone`` and a target's phone line)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from probes.base import ChannelUses, CrossCheck, KeyPath, Problem, Responder, per_address
from probes.settings import Strict, valid_regex
from probes.twilio.account import TwilioAccount, e164

#: Placeholder of a per-monitor URL (media_stream_url, webhook.public_url): the monitor's name.
MONITOR_PLACEHOLDER = "{monitor}"


def _one_placeholder(value: str | None) -> str | None:
    if value is not None and re.sub(re.escape(MONITOR_PLACEHOLDER), "", value).count("{"):
        raise ValueError(
            f"{value!r}: the only placeholder is {MONITOR_PLACEHOLDER} (the monitor's "
            "monitor.name), e.g. wss://cxprobe.example.com/{monitor}"
        )
    return value


class WebhookSettings(Strict):
    """How Twilio reaches the monitor (status callbacks, speech results)."""

    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^?#]+[^/?#]$",
        description="The monitor's HTTP server as Twilio reaches it, e.g. "
        "https://cxprobe.example.com (a reverse proxy in front of monitor.http); default: the "
        "server's own address, which only a local sandbox can reach. Several monitors sharing "
        "the file: {monitor} is each one's monitor.name (https://cxprobe.example.com/{monitor}), "
        "so a call's webhooks reach the monitor that placed it.",
    )

    @field_validator("public_url")
    @classmethod
    def _placeholder(cls, value: str | None) -> str | None:
        return _one_placeholder(value)

    status_only: bool = Field(
        default=False,
        description="No webhooks at all (sites that cannot expose one): poll the call's status "
        "and measure time to answer only.",
    )
    poll_interval: float = Field(
        default=1.0, gt=0, description="Status-only mode: seconds between status polls."
    )


class MediaStreamSettings(Strict):
    """How the monitor listens to a call's audio (Twilio Media Streams, ``listen: stream``)."""

    connect_timeout: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="Seconds from the answer for Twilio's WebSocket to connect; past it the run "
        "fails with a reason (use 'listen: gather' where no WebSocket can be exposed).",
    )
    silence_limit: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds of stream with no speech, music or ringback (silence or noise only) "
        "after which the run fails with that reason.",
    )
    recording_max_seconds: int = Field(
        default=600,
        ge=0,
        le=14400,
        description="The far end's recording kept as evidence (8 kHz mu-law in a WAV, 8 kB a "
        "second) stops after this many seconds; 0 keeps none.",
    )


class PhoneChannelSettings(Strict):
    """The ``channels.phone`` section."""

    twilio: TwilioAccount
    from_number: str = Field(description="The probe's own number (E.164).")
    webhook: WebhookSettings = Field(default_factory=lambda: WebhookSettings())
    media_stream_url: str | None = Field(
        default=None,
        description="The monitor's Media Streams WebSocket as Twilio reaches it, e.g. "
        "wss://cxprobe.example.com (a reverse proxy in front of monitor.http that forwards "
        "WebSocket upgrades); required when a phone line has 'listen: stream'. Several "
        "monitors sharing the file: {monitor} is each one's monitor.name "
        "(wss://cxprobe.example.com/{monitor}), as a call's stream must reach the monitor that "
        "placed it.",
    )
    media_stream: MediaStreamSettings = Field(default_factory=lambda: MediaStreamSettings())
    max_call_seconds: int = Field(
        default=900, ge=30, le=14400, description="Hard limit on a call's length (TimeLimit)."
    )
    max_calls: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Calls in progress at once (each holds a line and an agent at the target; "
        "keep it within the Twilio account's concurrency).",
    )
    ring_timeout: int = Field(
        default=60, ge=5, le=600, description="Seconds to let the line ring before giving up."
    )
    listen_timeout: int = Field(
        default=10,
        ge=1,
        le=60,
        description="Seconds of silence after which one listening turn ends (and another starts).",
    )
    closing_line: str = Field(
        default="Thank you, that is all I needed. This was an automated test call. Goodbye.",
        description="Said once the probe has what it needs, before it hangs up.",
    )

    @field_validator("from_number")
    @classmethod
    def _number(cls, value: str) -> str:
        return e164(value)

    @field_validator("media_stream_url")
    @classmethod
    def _websocket_url(cls, value: str | None) -> str | None:
        _one_placeholder(value)
        if value is not None and not re.fullmatch(r"wss?://[^?#/\s]+(/[^?#\s]*)?[^/?#\s]", value):
            raise ValueError(
                f"{value!r} is not a WebSocket URL: give ws:// or wss:// and a host, without a "
                "trailing slash, query or fragment (e.g. wss://cxprobe.example.com)"
            )
        return value


class IvrStep(Strict):
    """One move through a phone menu, made once a prompt has been heard."""

    digits: str | None = Field(
        default=None,
        pattern=r"^[0-9*#wW]+$",
        description="Keys to press; w waits 0.5 s, W 1 s (e.g. 'w1').",
    )
    say: str | None = Field(default=None, description="Words to say (speech menus).")
    when: str | None = Field(
        default=None,
        description="Act only once a prompt matches this regular expression (else the next "
        "prompt heard). Gather mode only: a stream acts at the end of each prompt.",
    )
    expect_to_hear: list[str] = Field(
        default_factory=list,
        description="Stream mode: words the prompt before this move must contain (e.g. "
        "[billing]), spotted with the local recogniser; a prompt without them fails the run.",
    )

    @field_validator("when")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return None if value is None else valid_regex(value)

    @model_validator(mode="after")
    def _one_action(self) -> IvrStep:
        if (self.digits is None) == (self.say is None):
            raise ValueError("give exactly one of 'digits' (e.g. '1') or 'say' (e.g. 'billing')")
        return self


class AudioCues(Strict):
    """Stream mode: what tells a voice bot, the closed message and a person apart on the audio.

    Words are spotted in each utterance with the local recogniser (its English dictionary:
    common words; a phrase is spotted whole); the first kind with a word spotted names the
    speaker, in gather mode's order (bot, closed, human). An utterance with none is named by
    its place in the call (before hold: the IVR; the first speech after hold: a person)."""

    bot: list[str] = Field(
        default_factory=list,
        description="Spoken words that mark a voice bot (bot), e.g. [automated, assistant].",
    )
    closed: list[str] = Field(
        default_factory=list,
        description="Spoken words that mark the after-hours closed message (auto), e.g. "
        "[closed, tomorrow].",
    )
    human: list[str] = Field(
        default_factory=list,
        description="Spoken words that mark a person even without hold music before them "
        "(optional; a person is otherwise the first speech after hold).",
    )
    answer_to_say: Literal["ivr", "bot"] = Field(
        default="ivr",
        description="Who the speech answering the probe's own spoken move ('say', with no hold "
        "music between) is: 'bot' for a voice bot that converses, 'ivr' (default) for a speech "
        "menu.",
    )
    first_human: Literal["after_hold", "first_speech"] = Field(
        default="after_hold",
        description="Without a word cue, a person is the first speech after hold music "
        "('after_hold', default) or the first speech at all ('first_speech': lines that "
        "answer with a person).",
    )

    @field_validator("bot", "closed", "human")
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        for words in value:
            if not re.fullmatch(r"[A-Za-z']+( [A-Za-z']+)*", words):
                raise ValueError(
                    f"{words!r} is not a spoken word or phrase: give plain English words "
                    "separated by single spaces (e.g. 'virtual assistant'), no punctuation "
                    "or regular expressions"
                )
        return [words.lower() for words in value]

    @property
    def words(self) -> list[str]:
        return [*self.bot, *self.closed, *self.human]

    @property
    def active(self) -> bool:
        """True when something other than an utterance's place names its speaker."""
        return bool(self.words) or self.answer_to_say != "ivr"


#: Phrases that, in most support lines, only a person says.
DEFAULT_HUMAN = [
    r"\b(speaking|you'?re through to|how (can|may) I help|my name is|this is \w+ (from|in))\b"
]


class PhoneAddress(Strict):
    """A target's ``channels.phone`` section: the number, its menu, and what its voices say."""

    number: str = Field(description="The support line (E.164).")
    listen: Literal["gather", "stream"] = Field(
        default="gather",
        description="How the probe hears the line: 'gather' (Twilio's speech recognition, turn "
        "by turn) or 'stream' (the call's audio over Media Streams, analysed frame by frame "
        "on the monitor; needs channels.phone.media_stream_url).",
    )
    ivr: dict[str, list[IvrStep]] = Field(
        default_factory=dict,
        description="The menu path to each queue (a target queue id), used for contacts expected "
        "there; 'default' for the rest. An empty path just listens.",
    )
    human: list[str] = Field(
        default_factory=lambda: list(DEFAULT_HUMAN),
        min_length=1,
        description="Regular expressions on what is heard that mark a person answering.",
    )
    closed: list[str] = Field(
        default_factory=lambda: [
            r"\b(we are|we're|office is|lines are) (now |currently )?closed\b",
            r"\boutside (of )?(our )?(opening|business|office) hours\b",
            r"\bplease call (us )?(back|again) (then|later|during|between|when|on|tomorrow)\b",
        ],
        description="Regular expressions marking the after-hours closed message (auto).",
    )
    voicebot: list[str] = Field(
        default_factory=list, description="Regular expressions marking a voice bot (bot)."
    )
    audio_cues: AudioCues = Field(
        default_factory=lambda: AudioCues(),
        description="'listen: stream' only: spoken words (and structure) telling a voice bot, "
        "the closed message and a person apart on the call's audio (human, closed and "
        "voicebot are regular expressions on transcripts: gather mode).",
    )

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        return e164(value)

    @field_validator("human", "closed", "voicebot")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        return [valid_regex(pattern) for pattern in value]

    def path_to(self, queue: str | None) -> list[IvrStep]:
        if queue is not None and queue in self.ivr:
            return self.ivr[queue]
        return self.ivr.get("default", [])

    def check_against(self, settings: PhoneChannelSettings | None) -> str | None:
        if settings is None:
            return "the target has a phone number but there is no 'channels.phone' section"
        if self.number == settings.from_number:
            return "the target's number is the probe's own number (channels.phone.from_number)"
        return None

    def stream_problems(self, settings: PhoneChannelSettings) -> list[tuple[KeyPath, str]]:
        """What 'listen: stream' needs that is missing (keys relative to the address)."""
        if self.listen != "stream":
            return [
                (("ivr", queue, index, "expect_to_hear"), _EXPECT_NEEDS_STREAM)
                for queue, steps in self.ivr.items()
                for index, step in enumerate(steps)
                if step.expect_to_hear
            ] + (
                [(("audio_cues",), _CUES_NEED_STREAM)]
                if "audio_cues" in self.model_fields_set
                else []
            )
        problems: list[tuple[KeyPath, str]] = []
        if settings.media_stream_url is None:
            problems.append(
                (
                    ("listen",),
                    "'listen: stream' needs channels.phone.media_stream_url, the wss:// address "
                    "Twilio reaches the monitor's WebSocket at (behind your reverse proxy); "
                    "set it, or use 'listen: gather'",
                )
            )
        if settings.webhook.status_only:
            problems.append(
                (
                    ("listen",),
                    "'listen: stream' needs webhooks (the call's TwiML starts the stream), but "
                    "channels.phone.webhook.status_only is true",
                )
            )
        for queue, steps in self.ivr.items():
            for index, step in enumerate(steps):
                if step.when is not None:
                    problems.append(
                        (
                            ("ivr", queue, index, "when"),
                            "'when' needs a transcript, which 'listen: stream' does not make: "
                            "a stream takes each move at the end of a prompt; remove 'when' (or "
                            "use expect_to_hear to check the prompt)",
                        )
                    )
        return problems


_CUES_NEED_STREAM = (
    "audio_cues are heard on the call's audio: set 'listen: stream' on this phone line, or "
    "remove audio_cues (gather mode reads the human, closed and voicebot patterns)"
)
_EXPECT_NEEDS_STREAM = (
    "expect_to_hear is checked on the call's audio: set 'listen: stream' on this phone line, "
    "or remove expect_to_hear"
)


def cross_check(uses: ChannelUses[PhoneChannelSettings, PhoneAddress]) -> list[Problem]:
    """Each phone line against ``channels.phone``, and what status-only calls cannot measure."""
    each_address: CrossCheck[PhoneChannelSettings, PhoneAddress]
    each_address = per_address(PhoneAddress.check_against)
    problems = each_address(uses)
    if uses.settings is not None:
        for use in uses.addresses:
            for keys, message in use.address.stream_problems(uses.settings):
                problems.append(((*use.where, *keys), message))
    if uses.settings is None or not uses.settings.webhook.status_only:
        return problems
    for use in uses.addresses:
        if use.sla.human_response is not None:
            # Status-only calls cannot hear who answers: a human SLA would always be breached.
            problems.append(
                (
                    use.sla_where,
                    "channels.phone.webhook.status_only measures time to answer only: set "
                    "'phone: {human_response: null}' under this target's slas (and use "
                    "first_response), or give the monitor a webhook URL",
                )
            )
    for check in uses.checks:
        if Responder.UNKNOWN not in check.after_hours_accepts:
            # Status-only calls cannot hear who answered: after hours every run would breach.
            problems.append(
                (
                    check.where,
                    f"channels.phone.webhook.status_only cannot tell who answers, so scenario "
                    f"{check.scenario!r} can never be answered after hours: give this check a "
                    "scenario whose after_hours_accepts includes 'unknown'",
                )
            )
    return problems

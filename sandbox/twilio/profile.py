"""The `twilio:` section of a sandbox profile: the account, the IVR tree, queues and faults.

The reference phone line is a tree: menus (a prompt, options chosen by digit or by a spoken
keyword) whose leaves are queues (a hold, then an agent's greeting). Names are checked here so
a typo in `goto` fails when the profile loads, not in the middle of a call.

Example (all keys shown; most have defaults)::

    twilio:
      account_sid: AC00000000000000000000000000000001
      auth_token: sandbox-auth-token
      port: 0                        # REST API and /_control on 127.0.0.1 (0: a free port)
      speech_rate: 15                # characters per second, for prompts, greetings and <Say>
      speech_confidence: 0.92        # Confidence posted with every SpeechResult
      partial_result_delay: {distribution: fixed, seconds: 0.4}  # speech start -> 1st partial
      partial_result_interval: 1.0   # seconds between a Gather's partial results
      post_dial_delay: {distribution: fixed, seconds: 1.0}     # initiated -> ringing
      answer_ringback_seconds: 0     # ringback after the answer, before the first prompt
      ring_time: {distribution: uniform, low: 2, high: 6}      # ringing -> answered
      max_call_seconds: 3600         # the line drops a call that lasts longer
      hangup_delay_seconds: 1.0      # silence after the closed message or goodbye, then hangup
      price_per_minute: "0.0130"     # charged per started minute, like Twilio
      price_unit: USD
      ivr:
        root: main
        sorry: "Sorry, I didn't get that."
        goodbye: "Thank you for calling. Goodbye."
        misroute_rate: 0.0           # chance a caller is put through to another queue
        menus:
          main:
            prompt: >-
              Welcome to Acme. For billing press 1 or say billing.
              For technical support press 2 or say support.
            options:
              - {digit: "1", keywords: [billing, invoice], goto: billing}
              - {digit: "2", keywords: [support, technical], goto: tech}
            no_input_seconds: 5      # silence after the prompt before it is repeated
            max_attempts: 3          # prompts (first one included) before the IVR hangs up
            on_invalid: repeat       # or the name of a menu or queue wrong input leads to
        queues:
          billing:
            label: Billing
            bot_message: null        # said by a voice bot (its own voice) before the hold
            hold_message: "Thanks for calling. Please hold, an agent will be with you shortly."
            wait: {distribution: lognormal, median: 30, p95: 120}
            agents: [Sam, Alex]
            greeting: "Hi, you're through to {agent} in {label}. How can I help?"
          tech:
            label: Technical Support
            wait: {distribution: fixed, seconds: 20}
            agents: [Jo]
      after_hours:
        message: >-
          Thank you for calling Acme. Our lines are open Monday to Friday 9 to 5:30.
          Please call back then. Goodbye.
        voicebot: null               # a prompt spoken after the message; the call stays up
        voicebot_pause_seconds: 1.0  # silence between the message and the voice bot
      faults:
        outage: false                # every call rings until its Timeout: no-answer, and
                                     # the messaging lines (messaging:) do not answer
        call_result: null            # busy | failed | no-answer for every call
        rate_limit: 0                # the first N API requests get 429 (Retry-After)
        server_error: 0              # the first N API requests get server_error_status
        server_error_status: 500
        stream: null                 # drop | silence | noise | bad_signature (Media Streams)
        stream_drop_after: 2.0       # seconds of stream before a drop

Business hours, the time zone and the clock offset are the profile's top-level ones.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator, model_validator

from sandbox.latency import FixedLatency, Latency
from sandbox.profile_model import StrictModel

CallResult = Literal["busy", "failed", "no-answer"]

_DEFAULT_GREETING = "Hi, you're through to {agent} in {label}. How can I help?"


class MenuOption(StrictModel):
    """One way out of a menu: a key, spoken keywords, or both."""

    digit: str | None = Field(default=None, pattern=r"^[0-9*#]$")
    keywords: list[str] = []
    goto: str
    # The queue the prompt promises for this option, when it differs from where `goto`
    # really leads: a deliberately miswired menu, which a probe should report as a misroute.
    intended: str | None = None

    @model_validator(mode="after")
    def _reachable(self) -> MenuOption:
        if self.digit is None and not self.keywords:
            raise ValueError(f"option to {self.goto!r} needs a digit or keywords")
        return self

    def matches_speech(self, text: str) -> bool:
        return any(
            re.search(rf"\b{re.escape(keyword)}\b", text, re.IGNORECASE)
            for keyword in self.keywords
        )


class Menu(StrictModel):
    prompt: str = Field(min_length=1)
    options: list[MenuOption] = Field(min_length=1)
    no_input_seconds: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    on_invalid: str = "repeat"

    @model_validator(mode="after")
    def _distinct_digits(self) -> Menu:
        digits = [o.digit for o in self.options if o.digit is not None]
        if len(digits) != len(set(digits)):
            raise ValueError(f"a digit is used by two options: {digits}")
        return self

    def by_digit(self, digit: str) -> MenuOption | None:
        return next((o for o in self.options if o.digit == digit), None)

    def by_speech(self, text: str) -> MenuOption | None:
        return next((o for o in self.options if o.matches_speech(text)), None)


class CallQueue(StrictModel):
    label: str | None = None  # how the greeting names the team; default: the queue's name
    # Said in the voice bot's voice as the caller enters the queue, before the hold message
    # and the music: a voice bot that answers first, then hands over to a person.
    bot_message: str | None = None
    hold_message: str | None = None
    wait: Latency = FixedLatency(seconds=5)  # from the end of the hold message to the greeting
    agents: list[str] = Field(default=["Sam"], min_length=1)
    greeting: str = _DEFAULT_GREETING

    @field_validator("greeting")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        try:
            value.format(agent="", label="")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(
                f"greeting {value!r} may only use the placeholders {{agent}} and {{label}}"
            ) from err
        return value


class IvrSettings(StrictModel):
    root: str = "main"
    menus: dict[str, Menu] = Field(min_length=1)
    queues: dict[str, CallQueue] = Field(min_length=1)
    sorry: str = "Sorry, I didn't get that."
    goodbye: str = "Thank you for calling. Goodbye."
    misroute_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _names_resolve(self) -> IvrSettings:
        shared = sorted(set(self.menus) & set(self.queues))
        if shared:
            raise ValueError(f"{shared} name both a menu and a queue; names must be unique")
        if self.root not in self.menus:
            raise ValueError(f"root {self.root!r} is not one of the menus {sorted(self.menus)}")
        targets = sorted({*self.menus, *self.queues})
        for name, menu in self.menus.items():
            for option in menu.options:
                if option.goto not in targets:
                    raise ValueError(
                        f"menus.{name}: goto {option.goto!r} is not a menu or queue {targets}"
                    )
                if option.intended is not None and option.intended not in self.queues:
                    raise ValueError(
                        f"menus.{name}: intended {option.intended!r} is not a queue "
                        f"{sorted(self.queues)}"
                    )
            if menu.on_invalid != "repeat" and menu.on_invalid not in targets:
                raise ValueError(
                    f"menus.{name}: on_invalid {menu.on_invalid!r} is neither 'repeat' nor a "
                    f"menu or queue {targets}"
                )
        return self


class AfterHoursLine(StrictModel):
    message: str = (
        "Thank you for calling. Our lines are open Monday to Friday 9 to 5:30. "
        "Please call back then. Goodbye."
    )
    voicebot: str | None = None
    # Silence between the closed message and the voice bot (a new speaker, a new utterance).
    voicebot_pause_seconds: float = Field(default=1.0, ge=0)


StreamFault = Literal["drop", "silence", "noise", "bad_signature"]


class TwilioFaults(StrictModel):
    outage: bool = False
    call_result: CallResult | None = None
    # Media Streams: drop (the socket closes without `stop` after stream_drop_after seconds),
    # silence or noise (instead of the far end's audio), bad_signature (a forged
    # X-Twilio-Signature on the upgrade).
    stream: StreamFault | None = None
    stream_drop_after: float = Field(default=2.0, gt=0)
    rate_limit: int = Field(default=0, ge=0)
    server_error: int = Field(default=0, ge=0)
    server_error_status: Literal[500, 503] = 500


class TwilioSettings(StrictModel):
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: str = Field(min_length=1)
    port: int = Field(default=0, ge=0, le=65535)
    speech_rate: float = Field(default=15.0, gt=0)
    speech_confidence: float = Field(default=0.92, ge=0.0, le=1.0)
    # The recognizer's latency: a Gather's partialResultCallback gets its first interim result
    # this long after the far end starts speaking, then one every partial_result_interval
    # seconds while it goes on (see sandbox/twilio/partials.py).
    partial_result_delay: Latency = FixedLatency(seconds=0.4)
    partial_result_interval: float = Field(default=1.0, gt=0)
    post_dial_delay: Latency = FixedLatency(seconds=1.0)
    ring_time: Latency = FixedLatency(seconds=3.0)
    # After the answer, the target's PBX rings this long before its first prompt (a hunt
    # group, a forwarded line); only a media stream hears it.
    answer_ringback_seconds: float = Field(default=0.0, ge=0)
    max_call_seconds: float = Field(default=3600.0, gt=0)
    # Silence between the far end's last words (closed message, goodbye) and its hangup; a
    # Gather listening to those words gets their SpeechResult before the line goes dead.
    hangup_delay_seconds: float = Field(default=1.0, ge=0)
    price_per_minute: Decimal = Field(default=Decimal("0.0130"), ge=0)
    price_unit: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    ivr: IvrSettings
    after_hours: AfterHoursLine = AfterHoursLine()
    faults: TwilioFaults = TwilioFaults()

    def speaking_seconds(self, text: str) -> float:
        """How long saying text takes at the profile's speaking rate."""
        return len(text) / self.speech_rate

"""The sandbox profile: how the reference contact centre behaves, loaded from YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic import model_validator as _model_validator

from sandbox.answers import AnswerKind, Answers, ScriptedAnswer
from sandbox.chat.profile import ChatSettings
from sandbox.clock import WeeklyHours
from sandbox.generic.profile import GenericPeerSettings
from sandbox.latency import FixedLatency, Latency
from sandbox.messaging_profile import MessagingSettings
from sandbox.profile_model import StrictModel, check_default_queue
from sandbox.scripted_agent import Ask
from sandbox.twilio.profile import TwilioSettings

PROFILES_DIR = Path(__file__).parent / "profiles"
#: Scripted answers (sandbox/answers.py) are part of the profile's schema.
__all__ = ["AnswerKind", "Answers", "Profile", "ProfileError", "ScriptedAnswer", "load_profile"]


class ProfileError(ValueError):
    """A profile file is missing, is not YAML, or does not match the schema."""


class Mailbox(StrictModel):
    address: str
    password: str


class SmtpAuth(StrictModel):
    username: str
    password: str


class SmtpSettings(StrictModel):
    port: int = Field(default=0, ge=0, le=65535)
    tls: Literal["none", "starttls", "implicit"] = "none"
    auth: SmtpAuth | None = None


class PortSettings(StrictModel):
    port: int = Field(default=0, ge=0, le=65535)


class AutoAck(StrictModel):
    enabled: bool = True
    delay: Latency = FixedLatency(seconds=0)
    sender: str
    text: str = (
        "Thank you for contacting us. We have received your message and a member of our "
        "team will reply as soon as possible. Please keep the reference in the subject line."
    )


class AfterHours(StrictModel):
    auto_reply: bool = True
    delay: Latency = FixedLatency(seconds=0)
    text: str = "Our office is closed. We will answer your message on the next business day."
    # None: the auto-acknowledgement sender answers after hours too.
    sender: str | None = None


class Queue(StrictModel):
    keywords: list[str] = []
    sender: str
    signature: str
    latency: Latency
    text: str = "Thank you for your message. I have looked into this for you."
    #: Questions the agent asks before answering (sandbox/scripted_agent.py).
    asks: list[Ask] = []


class MailSettings(StrictModel):
    support_address: str
    probe_mailboxes: list[Mailbox] = Field(min_length=1)
    smtp: SmtpSettings = SmtpSettings()
    imap: PortSettings = PortSettings()
    lmtp: PortSettings = PortSettings()
    auto_ack: AutoAck
    after_hours: AfterHours = AfterHours()
    queues: dict[str, Queue] = Field(min_length=1)
    default_queue: str
    misroute_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    #: None: every human answer is the queue's ``text``.
    answers: Answers | None = None
    outage: bool = False
    reject: bool = False
    defer: bool = False

    @_model_validator(mode="after")
    def _default_queue_exists(self) -> MailSettings:
        check_default_queue(self.default_queue, self.queues)
        return self


class ClockSettings(StrictModel):
    offset_seconds: float = 0.0


class Profile(StrictModel):
    seed: int = 0
    timezone: str = "UTC"
    business_hours: WeeklyHours = WeeklyHours()
    clock: ClockSettings = ClockSettings()
    # The mail desk (sandbox/mail/desk.py) with its Dovecot; absent: no mail desk. Every part
    # is optional, so a profile for `python -m sandbox --only twilio` needs no other section.
    mail: MailSettings | None = None
    control: PortSettings = PortSettings()
    # The web-chat site (sandbox/chat/site.py); absent: no chat site.
    chat: ChatSettings | None = None
    # The Twilio-compatible phone line (sandbox/twilio/server.py); absent: no phone line.
    twilio: TwilioSettings | None = None
    # SMS and WhatsApp lines on the Twilio sandbox (sandbox/twilio/messaging.py). They run on
    # its account and port, so they are off without twilio: (`python -m sandbox` refuses that
    # combination; loading it stays possible so a profile can drop its phone line alone).
    messaging: MessagingSettings | None = None
    # A generic messaging platform: send API + reply webhook (sandbox/generic/peer.py).
    generic_peer: GenericPeerSettings | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown IANA time zone {value!r}") from err
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def load_profile(path: Path) -> Profile:
    """Read and validate a profile; ProfileError names the file and every offending key."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ProfileError(f"cannot read sandbox profile {path}: {err}") from err
    except yaml.YAMLError as err:
        raise ProfileError(f"{path} is not valid YAML: {err}") from err
    try:
        return Profile.model_validate(raw)
    except ValidationError as err:
        problems = "\n".join(
            f"  {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in err.errors()
        )
        raise ProfileError(f"{path} is not a valid sandbox profile:\n{problems}") from err

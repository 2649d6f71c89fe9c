"""The `chat:` section of a sandbox profile: how the reference web-chat site behaves.

Business hours, time zone, clock offset and seed are the profile's top-level settings, shared
with the mail desk, so both channels of the sandbox agree on when the contact centre is open.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, field_validator, model_validator

from sandbox.latency import FixedLatency, Latency
from sandbox.profile_model import StaffedQueue, StrictModel, check_default_queue
from sandbox.scripted_agent import Ask
from sandbox.templates import check_placeholders


class ChatBot(StrictModel):
    """The virtual assistant that greets every chat and hands it to a human team."""

    name: str = Field(default="Acme Assistant", min_length=1)
    latency: Latency = FixedLatency(seconds=0.3)
    greeting: str = "Hi {name}! I'm Acme's virtual assistant. What can I do for you?"
    handoff_text: str = (
        "Thanks, {name}. I'm passing you to our {team}; an agent will be with you shortly."
    )
    after_hours_text: str = (
        "Our agents are available Monday to Friday, 09:00-17:30 UK time. I've noted your "
        "message, {name}; please come back during opening hours to chat with the team."
    )

    @field_validator("greeting", "after_hours_text")
    @classmethod
    def _name_only(cls, value: str) -> str:
        return check_placeholders(value, ("name",))

    @field_validator("handoff_text")
    @classmethod
    def _name_and_team(cls, value: str) -> str:
        return check_placeholders(value, ("name", "team"))


class ChatQueue(StaffedQueue):
    """A human team; each agent's first word is the author shown in the widget ("Sam Carter"
    -> "Sam")."""

    text: str = "I can help you with that."
    followup_text: str = "Thanks, let me look into that for you."
    #: Questions the agent asks before answering (sandbox/scripted_agent.py).
    asks: list[Ask] = []


class ChatSettings(StrictModel):
    port: int = Field(default=0, ge=0, le=65535)
    # A second origin serving the same app: the source of the cross-origin iframe variant.
    alt_port: int = Field(default=0, ge=0, le=65535)
    widget_delay: Latency = FixedLatency(seconds=0.2)
    bot: ChatBot = ChatBot()
    handoff_latency: Latency = FixedLatency(seconds=0.5)
    # How long before an agent's reply the "is typing" indicator shows (shorter if the agent
    # joined more recently than that).
    typing_seconds: float = Field(default=0.5, ge=0)
    queues: dict[str, ChatQueue] = Field(min_length=1)
    default_queue: str
    misroute_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    outage: bool = False
    page_error: bool = False
    widget_missing: bool = False
    alert_on_load: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_default_queue(self.default_queue, self.queues)
        if self.port and self.port == self.alt_port:
            raise ValueError(
                f"port and alt_port are both {self.port}; the cross-origin iframe needs a second "
                "port (or 0 for a free one)"
            )
        return self

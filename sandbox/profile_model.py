"""What the sections of a sandbox profile are built from: a strict model, a staffed queue, and
the check that a default queue is one of the queues."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sandbox.latency import Latency


class StrictModel(BaseModel):
    """Unknown keys are refused (a misspelt key is an error, not a default) and values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StaffedQueue(StrictModel):
    """A human team of chat or messaging: which words route a contact to it, who answers and
    how fast. Each channel adds its texts."""

    label: str = Field(min_length=1)
    keywords: list[str] = []
    agents: list[str] = Field(min_length=1)
    latency: Latency

    @field_validator("agents")
    @classmethod
    def _named_agents(cls, value: list[str]) -> list[str]:
        if any(not agent.strip() for agent in value):
            raise ValueError("agent names must not be empty")
        return value


def check_default_queue(default_queue: str, queues: Mapping[str, object]) -> None:
    if default_queue not in queues:
        raise ValueError(
            f"default_queue {default_queue!r} is not one of the queues {sorted(queues)}"
        )


def check_webhook_url(url: str, key: str) -> str:
    """A monitor webhook in a profile: an http(s) URL, or a path under --webhook-base-url."""
    if not re.match(r"^(?:https?://[^/\s]+|/\S*$)", url):
        raise ValueError(
            f"{key} = {url!r} is neither an http(s) URL nor a path (/...) to join to "
            "python -m sandbox --webhook-base-url"
        )
    return url

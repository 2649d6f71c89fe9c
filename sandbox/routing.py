"""Which queue answers a contact: keyword routing, with deliberate misrouting."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class Keyworded(Protocol):
    """A queue of any channel (mail or chat): routing needs only its keywords."""

    @property
    def keywords(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Route:
    intended: str  # what the keywords say
    actual: str  # who answers (differs when misrouted)


def intended_queue(text: str, queues: Mapping[str, Keyworded], default: str) -> str:
    """First queue (in profile order) with a keyword in text as a whole word, else default."""
    for name, queue in queues.items():
        for keyword in queue.keywords:
            if re.search(rf"\b{re.escape(keyword)}\b", text, re.IGNORECASE):
                return name
    return default


def route(
    text: str,
    queues: Mapping[str, Keyworded],
    default: str,
    misroute_rate: float,
    rng: random.Random,
) -> Route:
    intended = intended_queue(text, queues, default)
    others = [name for name in queues if name != intended]
    # Draw even when it cannot matter so the random stream does not depend on the text.
    misrouted = rng.random() < misroute_rate
    if misrouted and others:
        return Route(intended=intended, actual=rng.choice(others))
    return Route(intended=intended, actual=intended)

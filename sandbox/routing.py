"""Which queue answers a contact: keyword routing, with deliberate misrouting."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sandbox.profile import Queue


@dataclass(frozen=True)
class Route:
    intended: str  # what the keywords say
    actual: str  # who answers (differs when misrouted)


def intended_queue(text: str, queues: Mapping[str, Queue], default: str) -> str:
    """First queue (in profile order) with a keyword in text as a whole word, else default."""
    for name, queue in queues.items():
        for keyword in queue.keywords:
            if re.search(rf"\b{re.escape(keyword)}\b", text, re.IGNORECASE):
                return name
    return default


def route(
    text: str,
    queues: Mapping[str, Queue],
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

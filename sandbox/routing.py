"""Which queue answers a contact: keyword routing, with deliberate misrouting; and the seeded
random streams every desk draws its decisions from."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class DeskStreams:
    """One desk's seeded random streams, one per kind of decision.

    Each stream is derived from the profile's seed, the desk's name and the decision kind
    (`random.Random("7:mail:routing")`), so every desk of a profile has streams of its own
    and each kind of decision is a fixed sequence: the n-th routing decision of a desk is the
    same whatever latencies, agents or answers were drawn before it. One shared stream made
    the routing draws land on whichever values the other draws left over: with the demo's
    seed, 3 of its first 3 calls were misrouted at a configured rate of 0.1.
    """

    def __init__(self, seed: int, desk: str) -> None:
        self.seed = seed
        self.desk = desk
        #: Misrouting: two draws per decision (routing.misroute).
        self.routing = self.stream("routing")
        #: Every delay: answer latencies, rings, holds, deliveries, the widget's appearance.
        self.latency = self.stream("latency")
        #: Who answers and what they say: the agent of a queue, the kind of scripted answer.
        self.answers = self.stream("answers")

    def stream(self, purpose: str) -> random.Random:
        return random.Random(f"{self.seed}:{self.desk}:{purpose}")


class Keyworded(Protocol):
    """A queue of any channel (mail or chat): routing needs only its keywords."""

    @property
    def keywords(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Route:
    intended: str  # what the keywords say
    actual: str  # who answers (differs when misrouted)

    @property
    def misrouted(self) -> bool:
        return self.actual != self.intended


def intended_queue(text: str, queues: Mapping[str, Keyworded], default: str) -> str:
    """First queue (in profile order) with a keyword in text as a whole word, else default."""
    for name, queue in queues.items():
        for keyword in queue.keywords:
            if re.search(rf"\b{re.escape(keyword)}\b", text, re.IGNORECASE):
                return name
    return default


def misroute(intended: str, queues: Iterable[str], rate: float, rng: random.Random) -> str:
    """Who answers a contact meant for intended: intended, or with chance rate another queue.

    Exactly two draws per decision whatever the outcome, so a desk's n-th decision depends on
    its routing stream and n alone (not on the text, the queues or the rate of earlier ones).
    """
    misrouted = rng.random() < rate
    pick = rng.random()
    others = [name for name in queues if name != intended]
    if misrouted and others:
        return others[int(pick * len(others))]
    return intended


def route(
    text: str,
    queues: Mapping[str, Keyworded],
    default: str,
    misroute_rate: float,
    rng: random.Random,
) -> Route:
    """The keywords' queue for text, and who answers it; rng is the desk's routing stream."""
    intended = intended_queue(text, queues, default)
    return Route(intended=intended, actual=misroute(intended, queues, misroute_rate, rng))

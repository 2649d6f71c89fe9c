"""Scripted agents: a desk's human asks the customer questions before answering.

A queue (a mail desk queue, a chat team, a messaging reply team) may list ``asks``::

    asks:
      - question: "Could you give me your order number?"
        expects: "\\b\\d{6}\\b"
      - question: "And the e-mail address on the account?"
        expects: "[\\w.+-]+@[\\w-]+(\\.[\\w-]+)+"

The first message of a conversation (a thread, a chat session, a number pair; the desk gives
the key) is answered with the first question; each later message that satisfies the question
asked last (``expects``, a regular expression searched, ignoring case) gets the next question,
and the desk's usual answer once every question is satisfied. A message that does not satisfy
it gets the same question again. The conversation stays with the queue that first took it.

One module for every desk, so the three behave alike; the desks record what they sent (and
which question, ``asked``) in their ground truth.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import Field, field_validator

from sandbox.profile_model import StrictModel


class Ask(StrictModel):
    """A question the agent asks, and what the customer's answer must contain."""

    question: str = Field(min_length=1)
    expects: str = Field(min_length=1, description="A regular expression (searched, any case).")

    @field_validator("expects")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"expects {value!r} is not a regular expression: {err}") from err
        return value

    def satisfied_by(self, text: str) -> bool:
        return re.search(self.expects, text, re.IGNORECASE) is not None


@dataclass(frozen=True)
class Step:
    """What the agent sends next: ``question`` (the ``asked``-th ask) or, when ``question`` is
    None, the desk's usual answer; ``queue`` is the queue holding the conversation."""

    queue: str
    question: str | None = None
    asked: int | None = None


@dataclass
class _Progress:
    queue: str
    asking: int  # the ask whose answer the agent waits for; len(asks): all satisfied


class ScriptedAgents:
    """The agents of one desk: the asks of each queue and where each conversation stands."""

    def __init__(self, asks: Mapping[str, Sequence[Ask]]) -> None:
        self._asks = {queue: tuple(questions) for queue, questions in asks.items()}
        self._progress: dict[str, _Progress] = {}

    def next_step(self, key: str | None, queue: str, text: str) -> Step:
        """The agent's next message in conversation ``key`` after the customer wrote ``text``;
        ``queue`` is where the desk would route it (used for a new conversation)."""
        if key is None:
            return Step(queue)
        progress = self._progress.get(key)
        if progress is None:
            if not self._asks.get(queue):
                return Step(queue)
            progress = self._progress[key] = _Progress(queue, 0)
            return self._ask(progress)
        asks = self._asks[progress.queue]
        if progress.asking >= len(asks):
            return Step(progress.queue)
        if asks[progress.asking].satisfied_by(text):
            progress.asking += 1
            if progress.asking == len(asks):
                return Step(progress.queue)
        return self._ask(progress)

    def _ask(self, progress: _Progress) -> Step:
        question = self._asks[progress.queue][progress.asking].question
        return Step(progress.queue, question, progress.asking)

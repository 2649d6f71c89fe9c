"""Interim speech results that a `<Gather partialResultCallback>` posts while the far end speaks.

A monitor times the start of the far end's speech (an agent's greeting, say) from the first
partial result, so their timing is part of the contract:

- The recognizer hears an utterance from its start, or from when the Gather started listening
  if it was already being spoken then. The first partial result is posted
  `partial_result_delay` (sampled per utterance) after that, then one every
  `partial_result_interval` seconds, none later than the utterance's planned end.
- An utterance that ends (or is cut short) before its first one is due gets a single partial
  result at its end, so every utterance a Gather hears gets at least one.
- UnstableSpeechResult holds the words begun in the time spoken so far at `speech_rate`;
  Stability is the share of the utterance spoken; SequenceNumber counts 1, 2, ... per Gather.
- Twilio ignores the answers, so a post that fails or answers non-2xx is a violation and a
  `webhook_error` but the call goes on. Posts do not wait for earlier ones; once sent, one is
  not aborted when the Gather or the call ends. Only the ones not yet due are dropped then.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from sandbox.clock import iso_utc, real_now
from sandbox.twilio.line import Record, Utterance
from sandbox.twilio.profile import TwilioSettings
from sandbox.twilio.resource import CallRecord
from sandbox.twilio.spec import Violation
from sandbox.twilio.webhooks import WebhookError, Webhooks

# Starts a webhook delivery that belongs to the call rather than to the Gather that sent it.
Background = Callable[[Coroutine[Any, Any, None]], object]

_WORD = re.compile(r"\S+")


class PartialResults:
    def __init__(
        self,
        *,
        call: CallRecord,
        webhooks: Webhooks,
        settings: TwilioSettings,
        rng: random.Random,
        record: Record,
        report: Callable[[Violation], None],
        background: Background,
        url: str,
        method: Literal["GET", "POST"],
    ) -> None:
        self._call = call
        self._webhooks = webhooks
        self._settings = settings
        self._rng = rng
        self._record = record
        self._report = report
        self._background = background
        self._url = url
        self._method = method

    async def follow(self, utterance: Utterance, listening_since: float) -> None:
        """Post the utterance's partial results; returns once it has ended or none are left.

        Cancelling it drops the results not yet due, which is what ends them with the Gather.
        """
        due = max(utterance.started, listening_since)
        due += self._settings.partial_result_delay.sample(self._rng)
        planned_end = utterance.started + utterance.seconds
        sequence = 0
        while True:
            if await _ends_before(utterance, due):
                if sequence == 0:
                    self._post(1, utterance)
                return
            sequence += 1
            self._post(sequence, utterance)
            due += self._settings.partial_result_interval
            if due > planned_end:
                return

    def _post(self, sequence: int, utterance: Utterance) -> None:
        spoken = _loop_time() - utterance.started
        text = words_begun(utterance.text, spoken * self._settings.speech_rate)
        stability = 1.0 if utterance.seconds <= 0 else min(1.0, spoken / utterance.seconds)
        # Recorded before it is sent, so the ground truth always leads what the monitor sees.
        self._record(
            "partial_result",
            at=real_now(),
            sequence=sequence,
            text=text,
            utterance_started_at=iso_utc(utterance.started_at),
        )
        params = [
            *self._call.webhook_params(),
            ("UnstableSpeechResult", text),
            ("Stability", f"{stability:.2f}"),
            ("SequenceNumber", str(sequence)),
        ]
        self._background(self._deliver(params))

    async def _deliver(self, params: list[tuple[str, str]]) -> None:
        try:
            await self._webhooks.send(self._method, self._url, params)
        except WebhookError as err:
            self._report(Violation("webhook", err.code, err.message, self._method, self._url))
            self._record("webhook_error", code=err.code, message=err.message)


def words_begun(text: str, characters: float) -> str:
    """text up to the end of the last word begun within its first characters; never empty.

    A recognizer's interim hypothesis includes the word it is hearing, so a word counts as
    soon as its first character has been spoken; the first word counts from the start.
    """
    end = 0
    for word in _WORD.finditer(text):
        if end and word.start() >= characters:
            break
        end = word.end()
    return text[:end]


async def _ends_before(utterance: Utterance, due: float) -> bool:
    """Wait until loop time due; True (at once) if the utterance ends first."""
    try:
        async with asyncio.timeout_at(due):
            await utterance.ended.wait()
    except TimeoutError:
        return False
    return True


def _loop_time() -> float:
    return asyncio.get_running_loop().time()

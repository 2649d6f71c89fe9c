"""The far end of a call: the target's IVR menus, queues and agents, or its closed message.

It speaks in real time on the `Line`, listens for the probe's digits and speech between and
during its prompts (callers may barge in with a key or a keyword), and writes what it did to
the ground truth the monitor is checked against. Each utterance is recorded when it ends, before
anyone listening to it is told, so the log always leads what the probe can observe.
"""

from __future__ import annotations

import asyncio

from sandbox.clock import Period, iso_utc, real_now
from sandbox.ground_truth import EventName
from sandbox.routing import DeskStreams, misroute
from sandbox.twilio.line import Heard, Line, Record, Speaker
from sandbox.twilio.profile import Menu, MenuOption, TwilioSettings


class FarEnd:
    def __init__(
        self, settings: TwilioSettings, line: Line, streams: DeskStreams, record: Record
    ) -> None:
        self._settings = settings
        self._ivr = settings.ivr
        self._line = line
        self._streams = streams
        self._record = record

    async def run(self, period: Period) -> None:
        if self._settings.answer_ringback_seconds:
            self._line.play_tone("ringback")
            await asyncio.sleep(self._settings.answer_ringback_seconds)
            self._line.play_tone(None)
        if period == "after_hours":
            await self._closed()
        else:
            await self._menus()

    # -- after hours -------------------------------------------------------------------

    async def _closed(self) -> None:
        hours = self._settings.after_hours
        await self._say(hours.message, "ivr", "closed_message")
        if hours.voicebot is None:
            await self._hang_up("closed message ended")
            return
        await asyncio.sleep(hours.voicebot_pause_seconds)
        await self._say(hours.voicebot, "bot", "ivr_prompt", menu="voicebot")
        # The voicebot keeps the line open and listens; the caller or the time limit ends it.

    # -- menus -------------------------------------------------------------------------

    async def _menus(self) -> None:
        name, attempts, preface = self._ivr.root, 0, ""
        while True:
            menu = self._ivr.menus[name]
            attempts += 1
            prompt = f"{preface} {menu.prompt}".strip()
            heard = await self._say(prompt, "ivr", "ivr_prompt", interruptible=True, menu=name)
            if heard is None:
                heard = await self._listen(menu.no_input_seconds)
            if heard is None:
                if attempts >= menu.max_attempts:
                    await self._goodbye(f"no input after {attempts} prompts in menu {name!r}")
                    return
                preface = ""
                continue
            option = _choose(menu, heard)
            if option is None and menu.on_invalid == "repeat":
                if attempts >= menu.max_attempts:
                    await self._goodbye(f"invalid input after {attempts} prompts in {name!r}")
                    return
                preface = self._ivr.sorry
                continue
            target = option.goto if option is not None else menu.on_invalid
            if target in self._ivr.menus:
                name, attempts, preface = target, 0, ""
                continue
            intended = _intended(option, target)
            await self._queue(target, intended, via=f"{heard.kind} {heard.value!r} in {name}")
            return

    async def _goodbye(self, reason: str) -> None:
        await self._say(self._ivr.goodbye, "ivr", "ivr_prompt", menu="goodbye")
        await self._hang_up(reason)

    async def _hang_up(self, reason: str) -> None:
        await asyncio.sleep(self._settings.hangup_delay_seconds)
        self._line.hang_up("callee", reason)

    # -- queue and agent ---------------------------------------------------------------

    async def _queue(self, name: str, intended: str | None, via: str) -> None:
        # Only a caller who chose this queue is put through to another one by mistake; the
        # decision is drawn for every caller, so later ones do not depend on this route.
        rate = self._ivr.misroute_rate if intended == name else 0.0
        name = misroute(name, self._ivr.queues, rate, self._streams.routing)
        queue = self._ivr.queues[name]
        entered = real_now()
        self._record("queue_entered", queue=name, intended_queue=intended, via=via)
        if queue.bot_message:
            await self._say(queue.bot_message, "bot", "ivr_prompt", menu=f"queue {name} bot")
        if queue.hold_message:
            await self._say(queue.hold_message, "ivr", "ivr_prompt", menu=f"queue {name}")
        self._line.play_tone("hold")
        await asyncio.sleep(queue.wait.sample(self._streams.latency))
        self._line.play_tone(None)
        agent = self._streams.answers.choice(queue.agents)
        greeting = queue.greeting.format(agent=agent, label=queue.label or name)
        await self._say(
            greeting,
            "agent",
            "agent_answered",
            agent=agent,
            queue=name,
            intended_queue=intended,
            queue_entered_at=iso_utc(entered),
        )
        # The agent now listens; the caller, an API hangup or the time limit ends the call.

    # -- speaking and listening --------------------------------------------------------

    async def _say(
        self,
        text: str,
        speaker: Speaker,
        event: EventName,
        *,
        interruptible: bool = False,
        **fields: object,
    ) -> Heard | None:
        """Speak text; with interruptible, a key or keyword cuts it short and is returned."""
        seconds = self._settings.speaking_seconds(text)
        utterance = self._line.start_utterance(text, speaker, seconds)
        heard: Heard | None = None
        if interruptible:
            heard = await self._listen(seconds)
        else:
            await asyncio.sleep(seconds)
        ended = real_now()
        self._record(
            event,
            at=utterance.started_at,
            text=text,
            speaker=speaker,
            started_at=iso_utc(utterance.started_at),
            ended_at=iso_utc(ended),
            interrupted=heard is not None,
            **fields,
        )
        self._line.finish_utterance(utterance, interrupted=heard is not None)
        return heard

    async def _listen(self, seconds: float) -> Heard | None:
        try:
            async with asyncio.timeout(seconds):
                return await self._line.heard.get()
        except TimeoutError:
            return None


def _choose(menu: Menu, heard: Heard) -> MenuOption | None:
    if heard.kind == "digit":
        return menu.by_digit(heard.value)
    return menu.by_speech(heard.value)


def _intended(option: MenuOption | None, target: str) -> str | None:
    """The queue the caller asked for; None when wrong input led them to `on_invalid`."""
    if option is None:
        return None
    return option.intended or target

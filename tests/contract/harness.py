"""What the channel contract suite needs from each channel kind: a :class:`Harness`.

A harness knows one kind's sandbox peer: how to start it with the test's switches (a
:class:`Setup`), the monitor config that probes it, how to point the peer's webhooks at a
running monitor, how to break and mend the provider, what the peer's ground truth says about a
run, and how to forge one of the kind's webhooks. Every contract test is written once against
this interface and runs for every registered kind.

Peers are started per test from their public constructors, with the switches of the profile
(misrouting, opening hours, latencies): a peer starts in under half a second (Dovecot included),
and a fresh one keeps a test from seeing another test's late replies.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import aiohttp

from cxprobe.app import Monitor, open_monitor
from cxprobe.settings import load_config
from probes.base import Responder
from scenarios.model import RunResult

#: Every contract config names its one target and location so; the metrics carry them.
TARGET = "acme"
LOCATION = "test"
#: Longest any contract step may wait for the sandbox or the store.
STEP_TIMEOUT = 20.0

P = TypeVar("P")


class Pace(enum.Enum):
    """When the peer's human answers, relative to the run's SLA."""

    #: Well within the human-response SLA.
    PROMPT = "prompt"
    #: A few seconds in, still within the deadline: time enough to restart the monitor first.
    AFTER_RESTART = "after-restart"
    #: After the run's deadline: the run is judged before the answer comes.
    AFTER_DEADLINE = "after-deadline"


@dataclass(frozen=True)
class Setup:
    """The sandbox switches of one contract test."""

    after_hours: bool = False
    misroute: bool = False
    pace: Pace = Pace.PROMPT
    #: The peer's agents ask SCRIPTED_ASKS before answering, and the check runs
    #: SCRIPTED_SCENARIO, which answers them (conversation scripts).
    scripted: bool = False


#: The library scenario whose persona answers SCRIPTED_ASKS, and the questions themselves.
SCRIPTED_SCENARIO = "order-status"
SCRIPTED_ASKS = [
    {"question": "Could you give me your order number, please?", "expects": r"\b482913\b"},
    {"question": "Thanks. And the e-mail address?", "expects": r"pat\.probe@example\.net"},
]


def asking(queues: dict[str, Any], scripted: bool) -> dict[str, Any]:
    """A profile's ``queues`` (as data), every one asking SCRIPTED_ASKS when ``scripted``."""
    if not scripted:
        return queues
    return {name: {**queue, "asks": SCRIPTED_ASKS} for name, queue in queues.items()}


@dataclass(frozen=True)
class Tolerance:
    """How far (seconds) a run's figures may be from the peer's ground truth on this kind."""

    first_answer: float
    first_human: float


@dataclass(frozen=True)
class Truth:
    """What the peer says happened to one run's contact (seconds from the contact)."""

    first_answer_seconds: float
    first_human_seconds: float | None
    #: The team the peer really put the contact through to, and the one it meant to.
    queue: str | None
    intended_queue: str | None


class Harness(ABC, Generic[P]):
    """One channel kind's sandbox peer, as the contract tests drive it (``P``: the peer)."""

    kind: ClassVar[str]
    tolerance: ClassVar[Tolerance]
    #: The scenario of the contract's checks, and the one the peer misroutes when the setup
    #: asks for a misroute (the same, unless the peer's misrouting is wired into a path).
    scenario: ClassVar[str] = "billing-question"
    misroute_scenario: ClassVar[str] = "billing-question"
    #: Who answers, in order, in business hours and after hours.
    business_responders: ClassVar[tuple[Responder, ...]]
    after_hours_responders: ClassVar[tuple[Responder, ...]]
    #: Whether the provider calls the monitor back (then ``forge_webhooks`` forges a call).
    has_webhooks: ClassVar[bool]
    #: Whether a run left open at a restart goes on in the next process (else: interrupted).
    resumes: ClassVar[bool]
    #: Whether replies sent while no monitor listened reach the resumed run (a mailbox, a
    #: message list); if not, the peer's human must answer after the restart.
    catches_up: ClassVar[bool]
    #: Whether a reply after the deadline can still reach the monitor (the conversation
    #: outlives the run); if not, the probe leaves the conversation at the deadline.
    late_replies: ClassVar[bool]
    #: What the reason of a run says while the provider is down.
    outage_reason: ClassVar[str]
    #: The artifact kinds kept with a run that ended in an error (what the probe could save).
    failure_evidence: ClassVar[frozenset[str]]
    #: Whether the peer's agents can ask questions (a ``Setup(scripted=True)``).
    scripted_agents: ClassVar[bool] = True

    def require(self) -> None:
        """Fail (never skip) when a real peer this kind needs is not installed."""

    @abstractmethod
    def peer(self, workdir: Path, setup: Setup) -> AbstractAsyncContextManager[P]:
        """The running sandbox peer, switched as ``setup`` says."""

    @abstractmethod
    def config(self, tmp_path: Path, peer: P, setup: Setup) -> Path:
        """A monitor config with one check probing ``peer``; its SLA suits ``setup.pace``."""

    async def attach(self, peer: P, monitor: Monitor) -> None:
        """Point the peer's webhooks at ``monitor`` (its HTTP server listens by now)."""

    @abstractmethod
    async def truth(self, peer: P, monitor: Monitor, result: RunResult) -> Truth:
        """What the peer's ground truth says about the run's contact."""

    @abstractmethod
    async def human_answered(self, peer: P, result: RunResult) -> None:
        """Return once the peer's human has sent the run its answer."""

    async def human_replies(self, peer: P, result: RunResult) -> list[datetime]:
        """When the peer's humans sent each of their replies to the run's conversation (the
        opening and every turn), in order: a scripted run's ground truth."""
        raise AssertionError(f"{self.kind}'s peer has no scripted agents")

    @abstractmethod
    def provider_down(self, peer: P, monitor: Monitor, down: bool) -> None:
        """Make the provider unreachable or failing (``down``), or mend it."""

    async def check_happy_path(self, peer: P, monitor: Monitor, result: RunResult) -> None:
        """The kind's own evidence of a met business-hours run (raw messages, transcripts)."""

    async def check_after_hours(self, peer: P, monitor: Monitor, result: RunResult) -> None:
        """The kind's own evidence of a met after-hours run."""

    async def forge_webhooks(self, peer: P, monitor: Monitor, live: RunResult) -> list[int]:
        """POST one wrongly signed and one unsigned webhook that would change the live run;
        return the HTTP statuses. Only kinds with ``has_webhooks``."""
        raise AssertionError(f"{self.kind} has no webhooks to forge")

    async def conversation_left(self, peer: P, result: RunResult) -> None:
        """For kinds without ``late_replies``: show, from the peer's ground truth, that the
        probe left the conversation at the deadline and that no answer can follow."""
        raise AssertionError(f"{self.kind} keeps its conversations open after the deadline")

    @asynccontextmanager
    async def sandbox(self, tmp_path: Path, setup: Setup) -> AsyncIterator[Sandbox[P]]:
        """The switched peer and the config probing it."""
        self.require()
        async with self.peer(tmp_path / "peer", setup) as peer:
            yield Sandbox(self, peer, self.config(tmp_path, peer, setup))


@dataclass
class Sandbox(Generic[P]):
    """A harness bound to its running peer and the config that probes it."""

    harness: Harness[P]
    peer: P
    config: Path

    @asynccontextmanager
    async def monitoring(self) -> AsyncIterator[Monitor]:
        """A monitor of the config, HTTP server listening, the peer's webhooks pointed at it.

        Entered again (after the first has stopped), it is the restarted monitor: a new
        runner, store connection and metrics registry over the same database.
        """
        config = load_config(self.config)
        async with open_monitor(config, logging.getLogger("cxprobe.test.contract")) as monitor:
            await self.harness.attach(self.peer, monitor)
            yield monitor

    async def truth(self, monitor: Monitor, result: RunResult) -> Truth:
        return await self.harness.truth(self.peer, monitor, result)


# -- running checks and reading what they left ----------------------------------------------


async def run_once(monitor: Monitor) -> RunResult:
    """Run the config's check now, to its end."""
    result = await monitor.runner.execute(monitor.config.checks[0], datetime.now(UTC))
    assert result is not None, "the slot was not claimed"
    return result


async def stored_run(
    monitor: Monitor, until: Callable[[RunResult], bool], run_id: str | None = None
) -> RunResult:
    """The run (the newest, or ``run_id``) as stored, once ``until`` holds for it.

    The store has no change notification, so it is read every 50 ms; the test fails after
    STEP_TIMEOUT seconds.
    """
    async with asyncio.timeout(STEP_TIMEOUT):
        while True:
            if run_id is None:
                runs = await monitor.store.recent_runs(1)
                run = runs[0] if runs else None
            else:
                run = await monitor.store.load_run(run_id)
            if run is not None and until(run):
                return run
            await asyncio.sleep(0.05)


def responders(result: RunResult) -> list[Responder]:
    return [reply.responder for reply in result.replies]


def seconds_between(start: datetime, iso_end: str) -> float:
    return (datetime.fromisoformat(iso_end) - start).total_seconds()


def check_labels(kind: str, scenario: str = "billing-question") -> dict[str, str]:
    """The labels of the contract check's series (``cxprobe_runs_total`` and friends)."""
    return {"target": TARGET, "channel": kind, "scenario": scenario, "location": LOCATION}


def sample(monitor: Monitor, name: str, labels: dict[str, str]) -> float | None:
    """One sample of the monitor's own registry (None: the series does not exist)."""
    return monitor.registry.get_sample_value(name, labels)


async def post_statuses(
    url: str, attempts: Sequence[tuple[bytes | dict[str, str], dict[str, str]]]
) -> list[int]:
    """POST each (body, headers) to ``url``; the statuses, in order."""
    statuses = []
    async with aiohttp.ClientSession() as session:
        for body, headers in attempts:
            async with session.post(url, data=body, headers=headers) as response:
                statuses.append(response.status)
    return statuses

"""What every sandbox peer (mail desk, chat site, Twilio sandbox, generic peer) shares.

A peer is an `async with` block: entering it creates its work directory and opens its
ground-truth log, then the peer starts its own parts on an exit stack (`_start`); leaving it
closes them in reverse order, the log last. Every peer has a shiftable clock and business
hours (the profile's), and the control routes for its state, clock and ground truth
(`_controls`); each adds its own switches, routes and behaviour.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, ClassVar, Self, TypedDict, TypeVar
from zoneinfo import ZoneInfo

from aiohttp import web

from sandbox.clock import DeskClock, Period, WeeklyHours
from sandbox.control import ControlRoutes
from sandbox.ground_truth import Event, GroundTruthLog
from sandbox.net import LOOPBACK
from sandbox.profile import Profile
from sandbox.server import DEFAULT_SHUTDOWN_TIMEOUT, HttpServer

_T = TypeVar("_T")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS_OPEN = WeeklyHours.model_validate({day: ["00:00-24:00"] for day in _DAYS})


class HoursAndClock(TypedDict):
    hours: WeeklyHours
    zone: ZoneInfo
    clock: DeskClock


def hours_and_clock(profile: Profile) -> HoursAndClock:
    """The profile's business hours and zone, and a clock at its offset for one peer.

    A clock of its own for each peer: each control API shifts only its own channel's "now".
    """
    return HoursAndClock(
        hours=profile.business_hours,
        zone=profile.zone,
        clock=DeskClock(profile.clock.offset_seconds),
    )


class SandboxPeer(ABC):
    host: str = LOOPBACK
    # Subclasses name their log file and what to say when used outside `async with`.
    ground_truth_file: ClassVar[str]
    not_running: ClassVar[str]
    # Where the control routes sit on the peer's HTTP server ("": at its root).
    control_prefix: ClassVar[str] = "/_control"

    def __init__(
        self,
        workdir: Path,
        *,
        hours: WeeklyHours | None = None,
        zone: ZoneInfo | None = None,
        clock: DeskClock | None = None,
    ) -> None:
        """hours, zone and clock are the profile's top-level ones (default: always open, UTC)."""
        self.workdir = Path(workdir).resolve()
        self._hours = hours or ALWAYS_OPEN
        self._zone = zone or ZoneInfo("UTC")
        self._clock = clock or DeskClock()
        self._stack = AsyncExitStack()
        self._log: GroundTruthLog | None = None
        self._http: HttpServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- addresses ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The (first) port of the peer's HTTP server."""
        return self._started(self._http).port

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT of the peer's HTTP server."""
        return self._started(self._http).url()

    @property
    def control_url(self) -> str:
        return f"{self.base_url}{self.control_prefix}"

    # -- what happened -----------------------------------------------------------------

    @property
    def ground_truth_path(self) -> Path:
        return self.workdir / self.ground_truth_file

    def ground_truth(self) -> list[Event]:
        return self._truth.events()

    async def wait_for(self, predicate: Callable[[Event], bool], count: int = 1) -> list[Event]:
        """Wait (bound it with asyncio.timeout) until count events match; returns all matches."""
        return await self._truth.wait_for(predicate, count)

    # The mail desk's name for it, so helpers can wait on any peer.
    wait_for_events = wait_for

    # -- the clock ---------------------------------------------------------------------

    def set_clock_offset(self, seconds: float) -> None:
        self._clock.offset_seconds = seconds

    def period_now(self) -> Period:
        return self._hours.period_at(self._clock.now(), self._zone)

    def clock_state(self) -> dict[str, Any]:
        """The clock's part of state(): offset, the desk's local time and the period."""
        return {
            "clock_offset_seconds": self._clock.offset_seconds,
            "desk_time": self._clock.now().astimezone(self._zone).isoformat(),
            "period": self.period_now(),
        }

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """What GET .../state answers: the peer's switches, clock and counts, as JSON."""

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._log = GroundTruthLog(self.ground_truth_path)
            self._stack.callback(self._log.close)
            await self._start(self._stack)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    @abstractmethod
    async def _start(self, stack: AsyncExitStack) -> None:
        """Start the peer's own parts; each one's cleanup goes on stack (run in reverse)."""

    # -- helpers for subclasses --------------------------------------------------------

    @property
    def _truth(self) -> GroundTruthLog:
        return self._started(self._log)

    def _controls(self) -> ControlRoutes:
        """GET state, POST clock and GET ground-truth under control_prefix; add the peer's own."""
        return (
            ControlRoutes(self.control_prefix, self.state)
            .clock(self._clock)
            .ground_truth(self._truth)
        )

    async def _serve(
        self,
        app: web.Application,
        name: str,
        ports: Sequence[int],
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        """Serve app on 127.0.0.1 until the peer stops: the peer's HTTP server."""
        server = HttpServer(app, name=name, ports=ports, shutdown_timeout=shutdown_timeout)
        self._http = await self._stack.enter_async_context(server)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A task of the peer (a pending reply): held until done, cancelled by _cancel_tasks."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _cancel_tasks(self) -> None:
        """Cancel the peer's tasks and wait until they have ended; push it on the stack last,
        so it runs before the parts those tasks use are closed."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _started(self, part: _T | None) -> _T:
        if part is None:
            raise RuntimeError(self.not_running)
        return part

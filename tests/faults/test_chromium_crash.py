"""Chromium killed mid-chat: the browser process Playwright launched for the web-chat
channel is SIGKILLed while a scheduled run chats with the sandbox site's agent. The run is a
recorded ``error`` saying the browser exited, and the next slot's run starts a new browser
and is met."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import psutil

from sandbox.chat.site import ChatSite
from scenarios.model import Outcome
from tests.contract.harness import Pace, Setup
from tests.contract.harnesses import HARNESSES
from tests.faults.harness import (
    descendants,
    edit_config,
    every,
    finished,
    later_run_finished,
    run_where,
    scheduled,
    settle,
)

WEBCHAT = HARNESSES["webchat"]
#: Seconds between slots: a chat whose agent answers at 3 s is met in about four.
INTERVAL = 6


def _browser_process() -> psutil.Process:
    """The Chromium browser process this test process launched (through Playwright's
    driver): the one Chromium whose parent is not a Chromium (renderers, GPU and zygote
    processes are its children)."""
    browsers = descendants(
        psutil.Process(), lambda name, parent: _chromium(name) and not _chromium(parent or "")
    )
    assert len(browsers) == 1, f"expected one browser process, found {browsers}"
    return browsers[0]


def _chromium(name: str) -> bool:
    return "chrom" in name


async def test_browser_killed_mid_chat_is_an_error_and_the_next_run_relaunches_it(
    tmp_path: Path,
) -> None:
    async with WEBCHAT.sandbox(tmp_path, Setup(pace=Pace.AFTER_RESTART)) as sandbox:
        site: ChatSite = sandbox.peer
        edit_config(sandbox.config, every(INTERVAL))
        async with scheduled(sandbox) as monitor:
            # The agent has joined and answers in 3 s: the chat is in full flow.
            (handoff,) = await site.wait_for(lambda e: e["event"] == "handoff")
            browser = _browser_process()
            browser.send_signal(signal.SIGKILL)
            killed_at = datetime.now(UTC)
            faulted = await run_where(
                monitor, lambda run: run.token == handoff["token"], "run of the killed chat"
            )
            faulted = await finished(monitor, faulted)
            later = await later_run_finished(monitor, after=killed_at)
            health = monitor.runner.health()["channels"]["webchat"]
            figures = await settle(
                monitor,
                "chromium-crash",
                launches=health["launches"],
                crashes=health["crashes"],
            )
    assert faulted.outcome is Outcome.ERROR
    assert "browser exited mid-chat" in (faulted.reason or ""), faulted.reason
    assert later.outcome is Outcome.MET, later.reason
    assert health["launches"] == 2 and health["crashes"] == 1
    assert figures.lost == 0 and figures.stalled == 0 and figures.recorded == figures.runs

"""Concurrent web chats on this machine: CPU per chat, memory per browser context, and the timing
error against the chat site's ground truth as concurrency rises.

For each concurrency level N, the web-chat channel (``max_contexts = N``, one Chromium) runs
``rounds`` rounds of N simultaneous chats (their starts spread evenly over ``spread`` seconds,
as a schedule's jitter would) against the sandbox chat site, which runs in its own
process so its work is not counted. Each chat: load the page, accept cookies, open the widget,
fill the pre-chat form, send, wait for the bot, the hand-off and the agent, end the chat, keep
the transcript and a screenshot.

* **CPU per chat**: user+system seconds of this process, the Playwright driver and every
  Chromium process over the measured rounds, divided by the chats run, in total and by process
  role (:mod:`bench.processes`; the chat site's process is left out). Processes that exited
  during the level are counted through their parents' ``children_*`` times. Each level first
  runs ``warmup_rounds`` unmeasured rounds, so that warm contexts are a running monitor's.
* **Memory per context**: the PSS of the Chromium processes with N chats open, minus the PSS of
  the idle browser, divided by N.
* **Timing error against the page's own truth** (the goal's measure): for every reply,
  cxprobe's ``arrived_at - sent_at`` minus the widget's own ``inserted - sent`` (stamped in the
  page by the sandbox widget, ``window.acmeChatTruth``): median, p99 and max.
* **Against the server's truth**: cxprobe's ``arrived_at - sent_at`` minus the site's
  ``reply_sent - received``, with the one-way parts (send: page click -> server receipt;
  answer: server write -> page render); these include the socket and the site, not only cxprobe.

Each level runs twice in the same run, interleaved: ``before`` is the channel module as it was
at ``BASELINE`` (loaded from git into a temporary package), ``after`` is today's.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

from bench.processes import cpu_by_role, difference
from probes.base import ChannelServices, Contact, Reply, Responder, Sent, new_token
from probes.webchat import channel as current_channel
from probes.webchat import settings as current_settings
from probes.webchat.channel import page_time
from tests.support import chat_site_profile, sandbox_widget

LEVELS = (1, 4, 8, 16)
#: The web-chat channel before issue 15 (main at 8e33d46): the "before" of every figure.
BASELINE = "8e33d46"
ROOT = Path(__file__).resolve().parent.parent
OPENING = "Hello, my latest invoice is higher than usual; can you explain the charge? Ref {token}"


@dataclass
class _Chat:
    token: str
    sent: Sent | None = None
    replies: list[Reply] = field(default_factory=list)
    page_truth: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class _Variant:
    """One version of the channel: its module and its settings module."""

    name: str
    channel: ModuleType
    settings: ModuleType


def _module_from(name: str, source: str) -> ModuleType:
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pydantic look their module up
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def _baseline(revision: str) -> _Variant:
    """The channel, its settings and its observer as they were at revision, from git."""

    def at_revision(path: str) -> str:
        return subprocess.run(
            ["git", "show", f"{revision}:{path}"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    settings = _module_from(
        "bench_webchat_before_settings", at_revision("probes/webchat/settings.py")
    )
    source = at_revision("probes/webchat/channel.py").replace(
        "from probes.webchat.settings import", "from bench_webchat_before_settings import"
    )
    channel = _module_from("bench_webchat_before_channel", source)
    observer = at_revision("probes/webchat/observer.js")
    # Its observer_script() would read today's observer.js from the installed package.
    setattr(channel, "observer_script", lambda: observer)  # noqa: B010
    return _Variant("before", channel, settings)


def _summary(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 2),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 2),
        "max_abs_ms": round(max(abs(v) for v in ordered) * 1000, 2),
    }


def _tree() -> list[psutil.Process]:
    me = psutil.Process()
    return [me, *me.children(recursive=True)]


def _chromium_pss() -> float:
    """PSS (MiB) of the Chromium processes under this one."""
    total = 0
    for process in _tree()[1:]:
        try:
            if "chrom" in process.name():
                total += process.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


async def _chat(
    channel: Any,
    address: Any,
    record: _Chat,
    all_sent: _Countdown,
    delay: float = 0.0,
) -> None:
    await asyncio.sleep(delay)
    conversation: Any = None
    try:
        conversation = await channel.open(address, record.token)
        text = OPENING.format(token=record.token)
        record.sent = await conversation.send(
            Contact(token=record.token, subject="", text=text, sender_name="Bench Customer")
        )
        all_sent.done()
        async with asyncio.timeout(60):
            async for reply in conversation.replies():
                record.replies.append(reply)
                if reply.responder is Responder.HUMAN:
                    break
        record.page_truth = await conversation._page.evaluate("window.acmeChatTruth")
    except Exception as exc:  # a failed chat is a figure, not a crash of the benchmark
        record.error = f"{type(exc).__name__}: {exc}"
        all_sent.done()
    finally:
        if conversation is not None:
            await conversation.close()


class _Countdown:
    def __init__(self, count: int) -> None:
        self._left = count
        self.reached = asyncio.Event()

    def done(self) -> None:
        self._left -= 1
        if self._left <= 0:
            self.reached.set()


async def _round(
    channel: Any, address: Any, level: int, spread: float
) -> tuple[list[_Chat], list[asyncio.Task[None]]]:
    """Start N chats, their starts spread over ``spread`` seconds; returns once all have sent
    (the chats and their tasks, to be awaited)."""
    batch = [_Chat(new_token()) for _ in range(level)]
    all_sent = _Countdown(level)
    tasks = [
        asyncio.create_task(_chat(channel, address, c, all_sent, i * spread / level))
        for i, c in enumerate(batch)
    ]
    await all_sent.reached.wait()
    return batch, tasks


async def _close_warm_contexts(channel: Any) -> None:
    """Close the contexts a channel keeps warm (today's channel only), so that the idle
    browser's memory is that of a browser without contexts, as before."""
    for tab in list(getattr(channel, "_idle", ())):
        await tab.close()
    getattr(channel, "_idle", []).clear()


async def _level(
    variant: _Variant,
    level: int,
    rounds: int,
    spread: float,
    url: str,
    site_pid: int,
    warmup_rounds: int = 0,
) -> tuple[dict[str, Any], list[_Chat]]:
    logger = logging.getLogger("bench.webchat")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False

    async def unmatched(reply: Reply) -> None:
        return None

    models = variant.settings
    settings = models.WebchatChannelSettings(browser=models.BrowserSettings(max_contexts=level))
    channel = variant.channel.WebchatChannel(settings, ChannelServices(logger, unmatched))
    address = models.WebchatAddress.model_validate(sandbox_widget(url))
    chats: list[_Chat] = []
    async with AsyncExitStack() as stack:
        await channel.start(stack)
        await _chat(channel, address, _Chat(new_token()), _Countdown(1))  # starts the browser
        await _close_warm_contexts(channel)
        await asyncio.sleep(1.0)
        idle_pss = await asyncio.to_thread(_chromium_pss)
        for _ in range(warmup_rounds):  # not measured: a monitor's steady state
            batch, tasks = await _round(channel, address, level, spread)
            await asyncio.gather(*tasks)
        cpu_before = cpu_by_role(exclude={site_pid})
        open_pss: list[float] = []
        started = asyncio.get_running_loop().time()
        for _ in range(rounds):
            batch, tasks = await _round(channel, address, level, spread)
            open_pss.append(await asyncio.to_thread(_chromium_pss))
            await asyncio.gather(*tasks)
            chats += batch
        wall = asyncio.get_running_loop().time() - started
        cpu_roles = difference(cpu_by_role(exclude={site_pid}), cpu_before)
        cpu = sum(cpu_roles.values())
    figures = {
        "chats": len(chats),
        "failed": sum(c.error is not None for c in chats),
        "errors": sorted({c.error for c in chats if c.error})[:3],
        "wall_seconds": round(wall, 1),
        "cpu_seconds_per_chat": round(cpu / len(chats), 3),
        "cpu_seconds_per_chat_by_process": {
            role: round(seconds / len(chats), 3) for role, seconds in cpu_roles.items()
        },
        "cpu_share_of_2_cores": round(cpu / wall / (psutil.cpu_count() or 1), 2),
        "browser_idle_pss_mib": round(idle_pss, 1),
        "pss_per_context_mib": round((statistics.fmean(open_pss) - idle_pss) / level, 1),
    }
    return figures, chats


def _truth(path: Path) -> dict[str, list[dict[str, Any]]]:
    by_token: dict[str, list[dict[str, Any]]] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event.get("token"):
            by_token.setdefault(event["token"], []).append(event)
    return by_token


def _errors(chats: list[_Chat], truth: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    total: list[float] = []
    send: list[float] = []
    answer: list[float] = []
    for chat in chats:
        events = truth.get(chat.token, [])
        received = [e for e in events if e["event"] == "received"]
        if chat.sent is None or not received:
            continue
        received_at = datetime.fromisoformat(received[0]["at"])
        answers = [
            e
            for e in events
            if e["event"] == "reply_sent" and datetime.fromisoformat(e["at"]) >= received_at
        ]
        send.append((chat.sent.at - received_at).total_seconds())
        for reply, event in zip(chat.replies, answers, strict=False):
            sent_at = datetime.fromisoformat(event["at"])
            measured = (reply.arrived_at - chat.sent.at).total_seconds()
            actual = (sent_at - received_at).total_seconds()
            total.append(measured - actual)
            answer.append((reply.arrived_at - sent_at).total_seconds())
    return {
        "page_truth_error": _page_errors(chats),
        "answer_time_error": _summary(total),
        "send_one_way": _summary(send),
        "answer_one_way": _summary(answer),
    }


def _page_errors(chats: list[_Chat]) -> dict[str, float | int]:
    """cxprobe's reply times against the widget's own stamps: median, p99, max (ms)."""
    errors: list[float] = []
    for chat in chats:
        sent = [e for e in chat.page_truth if e["event"] == "sent"]
        if chat.sent is None or not sent:
            continue
        inserted = [
            e for e in chat.page_truth if e["event"] == "inserted" and e["at"] >= sent[0]["at"]
        ]
        for reply, truth in zip(chat.replies, inserted, strict=False):
            measured = (reply.arrived_at - chat.sent.at).total_seconds()
            actual = (page_time(truth["at"]) - page_time(sent[0]["at"])).total_seconds()
            errors.append(abs(measured - actual))
    if not errors:
        return {"n": 0}
    ordered = sorted(errors)
    return {
        "n": len(ordered),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def measure(
    levels: tuple[int, ...] = LEVELS,
    rounds: int = 3,
    spread: float = 2.0,
    baseline: str | None = BASELINE,
    warmup_rounds: int = 1,
) -> dict[str, Any]:
    profile = chat_site_profile(True)
    chat = profile["chat"]
    chat["bot"]["latency"] = {"distribution": "fixed", "seconds": 0.3}
    chat["handoff_latency"] = {"distribution": "fixed", "seconds": 0.5}
    for queue in chat["queues"].values():
        queue["latency"] = {"distribution": "uniform", "low": 1.0, "high": 3.0}
    results: dict[str, Any] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        site = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.chat_site",
            json.dumps(profile),
            tmp,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert site.stdout is not None
            async with asyncio.timeout(30):
                info = json.loads(await site.stdout.readline())
            variants = [_Variant("after", current_channel, current_settings)]
            if baseline:
                variants.insert(0, _baseline(baseline))
            runs: dict[str, list[_Chat]] = {}
            for level in levels:
                for variant in variants:  # interleaved: both see the same machine
                    key = f"{level} {variant.name}"
                    results[key], runs[key] = await _level(
                        variant, level, rounds, spread, info["url"], site.pid, warmup_rounds
                    )
            truth = _truth(Path(info["ground_truth"]))
            for key, chats in runs.items():
                results[key].update(_errors(chats, truth))
        finally:
            site.terminate()
            await site.wait()
    return {
        "levels": results,
        "rounds": rounds,
        "warmup_rounds": warmup_rounds,
        "spread_seconds": spread,
        "baseline": baseline,
        "loadavg_before_after": [load_before, os.getloadavg()],
    }

"""Open email runs per process: cxprobe's one IMAP watcher per mailbox against a
connection-per-contact baseline, in the same run, against the same real Dovecot.

* **cxprobe**: N conversations opened and sent through the email channel (SMTP into a sink),
  all listening on ONE IMAP IDLE connection; then a reply to each is delivered over LMTP and
  we time until every conversation has its reply.
* **baseline**: N aioimaplib connections, each logged in, SELECTed and in IDLE, as a naive
  prober that opens a connection per contact would hold them.

Each side is held open for ``hold`` seconds; we report the client process's CPU seconds,
memory growth (USS) and peak resident memory (RSS, sampled throughout, against the goal of
300 MB at 10,000 open runs), and the Dovecot server processes' memory (PSS) while held.

The baseline needs a Dovecot process per connection (~0.6 MiB PSS each) and the sandbox's
Dovecot accepts 2000 connections, so it is capped (``baseline_runs``, default 1000): its cost
per contact is linear, which the capped figure shows well enough.

The SMTP server the contacts go to (aiosmtpd) and the LMTP client that delivers the replies
run in the benchmark's process: their CPU and memory are counted as the client's, so the
client figures are an upper bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import tempfile
import time
from contextlib import AsyncExitStack
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import aioimaplib
import psutil

from bench.stats import rss_bytes
from probes.base import ChannelServices, Contact, Reply
from probes.email.channel import EmailChannel
from probes.email.settings import EmailAddress, EmailChannelSettings
from sandbox.mail.dovecot import Dovecot, MailUser
from sandbox.mail.smtp_front import SmtpFront

USER = MailUser("probe@cxprobe.test", "probe-secret")
LOGIN_BATCH = 50
#: The baseline's connections at most (each is a Dovecot process; the sandbox allows 2000).
BASELINE_CAP = 1000
#: The goal at 10,000 open runs (issue 11).
RSS_GOAL_MIB = 300
#: How often the client's RSS is sampled for its peak.
RSS_SAMPLE_SECONDS = 0.2


def _client_usage() -> tuple[float, int]:
    gc.collect()  # so memory growth is what the open runs hold, not garbage awaiting collection
    process = psutil.Process()
    cpu = process.cpu_times()
    return cpu.user + cpu.system, process.memory_full_info().uss


class PeakRss:
    """Samples this process's RSS in the background; ``peak`` is the highest seen."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes())
            await asyncio.sleep(RSS_SAMPLE_SECONDS)

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.peak = max(self.peak, rss_bytes())


def _server_pss(dovecot: Dovecot) -> dict[str, float]:
    assert dovecot.pid is not None
    root = psutil.Process(dovecot.pid)
    imap = [p for p in root.children(recursive=True) if p.name() == "imap"]
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_full_info().pss
        except psutil.NoSuchProcess:
            continue
    return {"imap_processes": len(imap), "server_pss_mib": round(total / 2**20, 1)}


def _settings(port: int, smtp_port: int) -> EmailChannelSettings:
    return EmailChannelSettings.model_validate(
        {
            "mailboxes": {
                "probe": {
                    "address": USER.address,
                    "smtp": {"host": "127.0.0.1", "port": smtp_port, "tls": "none"},
                    "imap": {
                        "host": "127.0.0.1",
                        "port": port,
                        "tls": "none",
                        "username": USER.address,
                        "password": USER.password,
                    },
                }
            }
        }
    )


def _reply_to(raw: bytes) -> bytes:
    original = BytesHeaderParser().parsebytes(raw)
    reply = EmailMessage()
    reply["From"] = "billing@acme.test"
    reply["To"] = USER.address
    reply["Subject"] = "Re: " + str(original["Subject"])
    reply["Message-ID"] = f"<r.{time.time_ns()}@acme.test>"
    reply["In-Reply-To"] = str(original["Message-ID"])
    reply.set_content("Thank you, we have refunded the charge.\n-- \nAcme Billing Team")
    return reply.as_bytes()


async def _open_and_send(channel: EmailChannel, runs: int) -> list[Any]:
    """``runs`` conversations, each with its contact sent: the open runs to hold."""
    address = EmailAddress(to="support@acme.test", mailbox="probe")
    conversations = []
    for index in range(runs):
        conversation = await channel.open(address, f"CXP-{index:010d}")
        await conversation.send(
            Contact(token=f"CXP-{index:010d}", subject="Bench", text="Hi", sender_name="Bench")
        )
        conversations.append(conversation)
    return conversations


async def _cxprobe_side(
    dovecot: Dovecot, runs: int, hold: float, stack: AsyncExitStack
) -> dict[str, Any]:
    outgoing: list[bytes] = []

    async def sink(mail_from: str, recipients: list[str], raw: bytes) -> None:
        outgoing.append(raw)

    smtp = await stack.enter_async_context(SmtpFront(lambda _: None, sink))
    unmatched: list[Reply] = []

    async def on_unmatched(reply: Reply) -> None:
        unmatched.append(reply)

    logger = logging.getLogger("bench.capacity")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    channel = EmailChannel(
        _settings(dovecot.imap_port, smtp.port), ChannelServices(logger, on_unmatched)
    )
    await channel.start(stack)
    cpu0, mem0 = _client_usage()
    rss_before = rss_bytes()
    peak = PeakRss()
    peak.start()
    started = time.perf_counter()
    conversations = await _open_and_send(channel, runs)
    open_seconds = time.perf_counter() - started
    await asyncio.sleep(hold)
    cpu1, mem1 = _client_usage()
    rss_held = rss_bytes()
    server = _server_pss(dovecot)
    delivered_from = time.perf_counter()
    routed, delivered_seconds = await _deliver_and_route(dovecot, conversations, outgoing)
    routed_seconds = time.perf_counter() - delivered_from
    cpu2, _ = _client_usage()
    await peak.stop()
    for conversation in conversations:
        await conversation.close()
    stats = channel.stats()
    return {
        "open_runs": runs,
        "imap_connections": len(stats),
        "open_and_send_seconds": round(open_seconds, 2),
        "open_and_hold_cpu_seconds": round(cpu1 - cpu0, 3),
        "client_uss_growth_mib": round((mem1 - mem0) / 2**20, 1),
        "client_rss_before_mib": round(rss_before / 2**20, 1),
        "client_rss_holding_mib": round(rss_held / 2**20, 1),
        "client_rss_peak_mib": round(peak.peak / 2**20, 1),
        **server,
        "replies_delivered_seconds": round(delivered_seconds, 2),
        "all_replies_routed_seconds": round(routed_seconds, 2),
        "routing_cpu_seconds": round(cpu2 - cpu1, 3),
        "replies_routed": routed,
        "unmatched": len(unmatched),
        "goal": {"client_rss_peak_mib_max": RSS_GOAL_MIB, "all_routed": True, "unmatched": 0},
        "passed": peak.peak / 2**20 <= RSS_GOAL_MIB and routed == runs and not unmatched,
    }


async def _deliver_and_route(
    dovecot: Dovecot, conversations: list[Any], outgoing: list[bytes]
) -> tuple[int, float]:
    """Deliver a reply to every contact; return how many conversations got theirs (waiting
    a minute plus 10 ms per run at most) and the seconds the deliveries took."""

    async def first_reply(conversation: Any) -> None:
        async for _ in conversation.replies():
            return

    waiting = [asyncio.create_task(first_reply(c)) for c in conversations]
    delivered_from = time.perf_counter()
    for raw in outgoing:
        await dovecot.deliver("billing@acme.test", USER.address, _reply_to(raw))
    delivered_seconds = time.perf_counter() - delivered_from
    await asyncio.wait(waiting, timeout=60 + 0.01 * len(conversations))
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    routed = sum(1 for task in waiting if not task.cancelled() and task.exception() is None)
    return routed, delivered_seconds


async def _baseline_side(dovecot: Dovecot, runs: int, hold: float) -> dict[str, Any]:
    clients: list[Any] = []

    async def connect() -> Any:
        client = aioimaplib.IMAP4(host="127.0.0.1", port=dovecot.imap_port, timeout=60)
        await client.wait_hello_from_server()
        await client.login(USER.address, USER.password)
        await client.select("INBOX")
        await client.idle_start(timeout=600)
        return client

    cpu0, mem0 = _client_usage()
    started = time.perf_counter()
    for first in range(0, runs, LOGIN_BATCH):
        batch = min(LOGIN_BATCH, runs - first)
        clients += await asyncio.gather(*(connect() for _ in range(batch)))
    open_seconds = time.perf_counter() - started
    await asyncio.sleep(hold)
    cpu1, mem1 = _client_usage()
    server = _server_pss(dovecot)
    for client in clients:
        try:
            client.idle_done()
            await asyncio.wait_for(client.logout(), 10)
        except (TimeoutError, aioimaplib.Abort, OSError):
            continue
    return {
        "open_runs": runs,
        "imap_connections": len(clients),
        "open_seconds": round(open_seconds, 2),
        "open_and_hold_cpu_seconds": round(cpu1 - cpu0, 3),
        "client_uss_growth_mib": round((mem1 - mem0) / 2**20, 1),
        **server,
    }


async def measure(
    runs: int = 1000, hold: float = 10.0, baseline_runs: int | None = None
) -> dict[str, Any]:
    """``baseline_runs``: connections of the baseline (default: ``runs`` up to
    :data:`BASELINE_CAP`; 0 skips it)."""
    if baseline_runs is None:
        baseline_runs = min(runs, BASELINE_CAP)
    with tempfile.TemporaryDirectory() as tmp:
        async with Dovecot(Path(tmp) / "dovecot", [USER]) as dovecot:
            async with AsyncExitStack() as stack:
                cxprobe = await _cxprobe_side(dovecot, runs, hold, stack)
            baseline = await _baseline_side(dovecot, baseline_runs, hold) if baseline_runs else None
    return {
        "hold_seconds": hold,
        "cxprobe_one_connection": cxprobe,
        "baseline_per_contact": baseline,
    }

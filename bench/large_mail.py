"""Large replies and the event loop (issue 17): /healthz latency and RSS growth while ten
20 MiB replies arrive at once, against a real Dovecot, before and after in the same run.

"after" is the watcher as shipped (sizes first, bodies in batches bounded by
``max_message_bytes``, parsing in a worker thread on at most that many bytes). "before" emulates
the old watcher in the same process: one batch of whole messages, parsed on the event loop. A
/healthz served by aiohttp on the same loop is requested back to back while the replies are
fetched; its round trip is what a scrape or a health check would wait. "after" runs first, so
its RSS growth is not hidden by memory the old path freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.capacity import USER, PeakRss, _settings
from bench.stats import percentile, rss_bytes
from probes.base import ChannelServices, Contact, Reply
from probes.email.channel import EmailChannel
from probes.email.parse import ParsedMail, parse_mail
from probes.email.settings import EmailAddress
from probes.email.watcher import MailboxWatcher
from sandbox.mail import lmtp
from sandbox.mail.dovecot import Dovecot
from sandbox.mail.smtp_front import SmtpFront

MESSAGES = 10
MESSAGE_MIB = 20
P99_GOAL_MS = 50.0
RSS_GOAL_MIB = 50.0


def _large_reply(in_reply_to: str, index: int, mib: int) -> bytes:
    reply = EmailMessage()
    reply["From"] = "billing@acme.test"
    reply["To"] = USER.address
    reply["Subject"] = f"Re: Bench {index}"
    reply["Message-ID"] = f"<large.{index}.{time.time_ns()}@acme.test>"
    reply["In-Reply-To"] = in_reply_to
    reply.set_content("Here is the statement you asked for.\n-- \nAcme Billing Team")
    reply.add_attachment(b"\x00statement" * (mib * 2**20 // 10), "application", "pdf")
    return reply.as_bytes()


async def _deliver_elsewhere(dovecot: Dovecot, in_reply_to: str, count: int, mib: int) -> None:
    """Build and deliver the replies at once from a child process, so this process's RSS is
    the monitor's alone (the replies and their LMTP copies are the outside world's)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.large_mail",
        dovecot.host,
        str(dovecot.lmtp_port),
        in_reply_to,
        str(count),
        str(mib),
    )
    if await child.wait() != 0:
        raise RuntimeError("delivering the large replies failed")


async def _deliver(host: str, port: int, in_reply_to: str, count: int, mib: int) -> None:
    replies = [_large_reply(in_reply_to, index, mib) for index in range(count)]
    await asyncio.gather(*(lmtp.send(host, port, "", [USER.address], raw) for raw in replies))


@contextlib.contextmanager
def _old_watcher() -> Iterator[None]:
    """The watcher before issue 17: whole messages parsed on the event loop."""

    async def inline(self: MailboxWatcher, raw: bytes) -> ParsedMail:
        return parse_mail(raw)

    shipped = MailboxWatcher._parse
    MailboxWatcher._parse = inline  # type: ignore[method-assign]
    try:
        yield
    finally:
        MailboxWatcher._parse = shipped  # type: ignore[method-assign]


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _healthz_latencies(url: str, done: asyncio.Event) -> list[float]:
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        while not done.is_set():
            started = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)
    return latencies


async def _phase(dovecot: Dovecot, name: str, mib: int, count: int) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        outgoing: list[bytes] = []

        async def sink(mail_from: str, recipients: list[str], raw: bytes) -> None:
            outgoing.append(raw)

        smtp = await stack.enter_async_context(SmtpFront(lambda _: None, sink))

        async def on_unmatched(reply: Reply) -> None:
            pass

        logger = logging.getLogger(f"bench.large_mail.{name}")
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
        settings = _settings(dovecot.imap_port, smtp.port)
        if name == "before":
            settings.mailboxes["probe"].imap.max_message_bytes = 2**40  # one batch, whole
        channel = EmailChannel(settings, ChannelServices(logger, on_unmatched))
        await channel.start(stack)
        token = f"CXP-{len(name):010d}"
        conversation = await channel.open(
            EmailAddress(to="support@acme.test", mailbox="probe"), token
        )
        sent = await conversation.send(
            Contact(token=token, subject="Bench", text="Hi", sender_name="B")
        )
        app = web.Application()
        app.router.add_get("/healthz", _healthz)
        runner = web.AppRunner(app)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        rss_before = rss_bytes()
        peak = PeakRss()
        peak.start()
        done = asyncio.Event()
        pinger = asyncio.create_task(_healthz_latencies(f"http://127.0.0.1:{port}/healthz", done))
        started = time.perf_counter()
        await _deliver_elsewhere(dovecot, sent.external_id or "", count, mib)
        received = 0
        async with asyncio.timeout(600):
            async for _ in conversation.replies():
                received += 1
                if received == count:
                    break
        seconds = time.perf_counter() - started
        done.set()
        latencies = await pinger
        await peak.stop()
        await conversation.close()
    p99_ms = percentile(latencies, 0.99) * 1000
    growth_mib = (peak.peak - rss_before) / 2**20
    return {
        "messages": count,
        "message_mib": mib,
        "all_received_seconds": round(seconds, 2),
        "healthz_requests": len(latencies),
        "healthz_p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "healthz_p99_ms": round(p99_ms, 2),
        "healthz_max_ms": round(max(latencies) * 1000, 2),
        "rss_growth_mib": round(growth_mib, 1),
        "passed": p99_ms <= P99_GOAL_MS and growth_mib <= RSS_GOAL_MIB,
    }


async def measure(count: int = MESSAGES, mib: int = MESSAGE_MIB) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with Dovecot(Path(tmp) / "dovecot", [USER]) as dovecot:
            after = await _phase(dovecot, "after", mib, count)
            with _old_watcher():
                before = await _phase(dovecot, "before", mib, count)
    return {
        "after": after,
        "before": before,
        "goal": {"healthz_p99_ms_max": P99_GOAL_MS, "rss_growth_mib_max": RSS_GOAL_MIB},
    }


if __name__ == "__main__":  # the child that delivers: host, LMTP port, In-Reply-To, count, MiB
    host, port, in_reply_to, count, mib = sys.argv[1:6]
    asyncio.run(_deliver(host, int(port), in_reply_to, int(count), int(mib)))

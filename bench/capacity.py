"""Open email runs per process: cxprobe's one IMAP watcher per mailbox against a
connection-per-contact baseline, in the same run, against the same real Dovecot.

* **cxprobe**: N conversations opened and sent through the email channel (SMTP into a sink),
  all listening on ONE IMAP IDLE connection; then a reply to each is delivered over LMTP and
  we time until every conversation has its reply.
* **baseline**: N aioimaplib connections, each logged in, SELECTed and in IDLE, as a naive
  prober that opens a connection per contact would hold them.

Each side is held open for ``hold`` seconds; we report the client process's CPU seconds and
memory growth (USS), and the Dovecot server processes' memory (PSS) while held.
"""

from __future__ import annotations

import asyncio
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

from probes.base import ChannelServices, Contact, Reply
from probes.email.channel import EmailChannel
from probes.email.settings import EmailAddress, EmailChannelSettings
from sandbox.mail.dovecot import Dovecot, MailUser
from sandbox.mail.smtp_front import SmtpFront

USER = MailUser("probe@cxprobe.test", "probe-secret")
LOGIN_BATCH = 50


def _client_usage() -> tuple[float, int]:
    gc.collect()  # so memory growth is what the open runs hold, not garbage awaiting collection
    process = psutil.Process()
    cpu = process.cpu_times()
    return cpu.user + cpu.system, process.memory_full_info().uss


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
    started = time.perf_counter()
    conversations = await _open_and_send(channel, runs)
    open_seconds = time.perf_counter() - started
    await asyncio.sleep(hold)
    cpu1, mem1 = _client_usage()
    server = _server_pss(dovecot)

    async def first_reply(conversation: Any) -> None:
        async for _ in conversation.replies():
            return

    waiting = [asyncio.create_task(first_reply(c)) for c in conversations]
    delivered_from = time.perf_counter()
    for raw in outgoing:
        await dovecot.deliver("billing@acme.test", USER.address, _reply_to(raw))
    delivered_seconds = time.perf_counter() - delivered_from
    await asyncio.wait_for(asyncio.gather(*waiting), timeout=120)
    routed_seconds = time.perf_counter() - delivered_from
    cpu2, _ = _client_usage()
    for conversation in conversations:
        await conversation.close()
    stats = channel.stats()
    return {
        "open_runs": runs,
        "imap_connections": len(stats),
        "open_and_send_seconds": round(open_seconds, 2),
        "open_and_hold_cpu_seconds": round(cpu1 - cpu0, 3),
        "client_uss_growth_mib": round((mem1 - mem0) / 2**20, 1),
        **server,
        "replies_delivered_seconds": round(delivered_seconds, 2),
        "all_replies_routed_seconds": round(routed_seconds, 2),
        "routing_cpu_seconds": round(cpu2 - cpu1, 3),
        "unmatched": len(unmatched),
    }


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


async def measure(runs: int = 1000, hold: float = 10.0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with Dovecot(Path(tmp) / "dovecot", [USER]) as dovecot:
            async with AsyncExitStack() as stack:
                cxprobe = await _cxprobe_side(dovecot, runs, hold, stack)
            baseline = await _baseline_side(dovecot, runs, hold)
    return {
        "hold_seconds": hold,
        "cxprobe_one_connection": cxprobe,
        "baseline_per_contact": baseline,
    }

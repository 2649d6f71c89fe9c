"""Large replies and the event loop (issue 17): /healthz latency and RSS growth while ten
20 MiB replies arrive at once, against a real Dovecot, and are stored in the evidence store
(SQLite), before and after in the same run.

Each phase runs in a fresh child process (its RSS is the monitor's alone): the email channel
watches the probe mailbox, a child of its own delivers the replies over LMTP at once, and each
reply the conversation yields is recorded with ``EvidenceStore.record_reply``, as the runner
does; a /healthz served by aiohttp on the same loop is requested back to back meanwhile. RSS
growth is the peak over the phase (sampled every 0.2 s) minus the RSS when delivery starts.

"after" is today's code (bodies fetched a chunk at a time into spool files, parsed from the
file, stored in chunks); "before" is the code at ``BASELINE`` (bodies fetched whole in batches
bounded by ``max_message_bytes``, parsed in a worker thread, the raw bytes held in memory until
stored), extracted from git into a temporary directory that the child imports instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.capacity import USER, PeakRss, _settings
from bench.stats import percentile, rss_bytes
from sandbox.mail import lmtp
from sandbox.mail.dovecot import Dovecot
from sandbox.mail.smtp_front import SmtpFront

MESSAGES = 10
MESSAGE_MIB = 20
P99_GOAL_MS = 50.0
RSS_GOAL_MIB = 50.0
#: The last revision that held a reply's raw bytes in memory until the store had them.
BASELINE = "b257730"
ROOT = Path(__file__).resolve().parent.parent
#: What the "before" child imports from ``BASELINE`` (the benchmark and the sandbox are today's).
PRODUCT_PACKAGES = ("probes", "cxprobe", "scenarios", "exporters")


def _large_reply(in_reply_to: str, index: int, mib: int) -> bytes:
    reply = EmailMessage()
    reply["From"] = "billing@acme.test"
    reply["To"] = USER.address
    reply["Subject"] = f"Re: Bench {index}"
    reply["Message-ID"] = f"<large.{index}.{time.time_ns()}@acme.test>"
    reply["In-Reply-To"] = in_reply_to
    reply.set_content("Here is the statement you asked for.\n-- \nAcme Billing Team")
    reply.add_attachment(b"\x00statement" * (mib * 2**20 // 10), "application", "pdf")
    return reply.as_bytes(policy=SMTP)


async def _deliver_elsewhere(
    lmtp_host: str, lmtp_port: int, in_reply_to: str, count: int, mib: int
) -> None:
    """Build and deliver the replies at once from a child process, so the phase's RSS is the
    monitor's alone (the replies and their LMTP copies are the outside world's)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.large_mail",
        "deliver",
        lmtp_host,
        str(lmtp_port),
        in_reply_to,
        str(count),
        str(mib),
        cwd=ROOT,
    )
    if await child.wait() != 0:
        raise RuntimeError("delivering the large replies failed")


async def _deliver(host: str, port: int, in_reply_to: str, count: int, mib: int) -> None:
    replies = [_large_reply(in_reply_to, index, mib) for index in range(count)]
    await asyncio.gather(*(lmtp.send(host, port, "", [USER.address], raw) for raw in replies))


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


async def _claimed_run(store: Any, sent: Any) -> Any:
    """A run in the store for the replies to be recorded on, as the runner claims one."""
    from scenarios.model import Period, RunResult, Thresholds

    now = datetime.now(UTC)
    result = RunResult(
        run_id=str(uuid.uuid4()),
        check_id="large-mail",
        target="acme",
        channel="email",
        scenario="billing-question",
        location="bench",
        slot=now,
        token="CXP-0000000000",
        period=Period.BUSINESS,
        thresholds=Thresholds(None, 3600.0, None, 7200.0),
    )
    await store.claim_slot(result)
    await store.record_sent(result.run_id, sent, None)
    return result


def _observed(reply: Any, sent_at: datetime) -> Any:
    from scenarios.model import ObservedReply

    return ObservedReply(
        arrived_at=reply.arrived_at,
        observed_at=reply.observed_at,
        seconds=(reply.arrived_at - sent_at).total_seconds(),
        responder=reply.responder,
        sender=reply.sender,
        queue=None,
        late=False,
        external_id=reply.external_id,
        qualifies=True,
    )


async def _phase(
    imap_port: int, lmtp_host: str, lmtp_port: int, count: int, mib: int, workdir: Path
) -> dict[str, Any]:
    """One phase, with the product code this process imports (today's or the baseline's)."""
    from cxprobe.store.database import EvidenceStore
    from probes.base import ChannelServices, Contact, Reply
    from probes.email.channel import EmailChannel
    from probes.email.settings import EmailAddress

    async with AsyncExitStack() as stack:

        async def sink(mail_from: str, recipients: list[str], raw: bytes) -> None:
            pass

        smtp = await stack.enter_async_context(SmtpFront(lambda _: None, sink))

        async def on_unmatched(reply: Reply) -> None:
            pass

        logger = logging.getLogger("bench.large_mail")
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
        services: dict[str, Any] = {}
        if "spool_dir" in {f.name for f in dataclasses.fields(ChannelServices)}:
            services["spool_dir"] = workdir / "spool"
        channel = EmailChannel(
            _settings(imap_port, smtp.port), ChannelServices(logger, on_unmatched, **services)
        )
        await channel.start(stack)
        store = await stack.enter_async_context(
            EvidenceStore(f"sqlite+aiosqlite:///{workdir / 'cxprobe.db'}")
        )
        token = "CXP-" + uuid.uuid4().hex[:10].upper()
        conversation = await channel.open(
            EmailAddress(to="support@acme.test", mailbox="probe"), token
        )
        sent = await conversation.send(
            Contact(token=token, subject="Bench", text="Hi", sender_name="B")
        )
        run = await _claimed_run(store, sent)
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
        await _deliver_elsewhere(lmtp_host, lmtp_port, sent.external_id or "", count, mib)
        stored = 0
        async with asyncio.timeout(600):
            async for reply in conversation.replies():
                stored += await store.record_reply(run.run_id, reply, _observed(reply, sent.at))
                if stored == count:
                    break
        seconds = time.perf_counter() - started
        done.set()
        latencies = await pinger
        await peak.stop()
        await conversation.close()
        artifacts = await store.artifacts(run.run_id)
    p99_ms = percentile(latencies, 0.99) * 1000
    growth_mib = (peak.peak - rss_before) / 2**20
    return {
        "messages": count,
        "message_mib": mib,
        "stored_artifact_bytes": sum(artifact.size for artifact in artifacts),
        "all_stored_seconds": round(seconds, 2),
        "healthz_requests": len(latencies),
        "healthz_p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "healthz_p99_ms": round(p99_ms, 2),
        "healthz_max_ms": round(max(latencies) * 1000, 2),
        "rss_growth_mib": round(growth_mib, 1),
        "passed": p99_ms <= P99_GOAL_MS and growth_mib <= RSS_GOAL_MIB,
    }


def _extract(revision: str, into: Path) -> None:
    """The product packages as they were at ``revision``, from git, under ``into``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, *PRODUCT_PACKAGES],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


async def _phase_in_child(
    dovecot: Dovecot, count: int, mib: int, workdir: Path, code: Path | None
) -> dict[str, Any]:
    """A phase in a fresh process importing the product from ``code`` (None: today's)."""
    await asyncio.to_thread(workdir.mkdir, parents=True)
    paths = [str(ROOT)] if code is None else [str(code), str(ROOT)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.large_mail",
        "phase",
        str(dovecot.imap_port),
        dovecot.host,
        str(dovecot.lmtp_port),
        str(count),
        str(mib),
        str(workdir),
        cwd=workdir,  # not ROOT: today's packages must not shadow the baseline's
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the large-mail phase in {workdir} failed")
    figures: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return figures


async def measure(
    count: int = MESSAGES, mib: int = MESSAGE_MIB, baseline: str | None = BASELINE
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with Dovecot(Path(tmp) / "dovecot", [USER]) as dovecot:
            after = await _phase_in_child(dovecot, count, mib, Path(tmp) / "after", None)
            figures: dict[str, Any] = {"after": after}
            if baseline:
                code = Path(tmp) / "baseline"
                _extract(baseline, code)
                figures["before"] = await _phase_in_child(
                    dovecot, count, mib, Path(tmp) / "before", code
                )
                figures["baseline"] = baseline
    figures["goal"] = {"healthz_p99_ms_max": P99_GOAL_MS, "rss_growth_mib_max": RSS_GOAL_MIB}
    return figures


def main(argv: list[str]) -> None:
    """``deliver host port in-reply-to count mib`` (the delivering child) or ``phase
    imap-port lmtp-host lmtp-port count mib workdir`` (a phase; its figures as JSON)."""
    if argv[0] == "deliver":
        host, port, in_reply_to, count, mib = argv[1:6]
        asyncio.run(_deliver(host, int(port), in_reply_to, int(count), int(mib)))
    elif argv[0] == "phase":
        imap_port, lmtp_host, lmtp_port, count, mib, workdir = argv[1:7]
        figures = asyncio.run(
            _phase(int(imap_port), lmtp_host, int(lmtp_port), int(count), int(mib), Path(workdir))
        )
        print(json.dumps(figures))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}: use deliver or phase")


if __name__ == "__main__":
    main(sys.argv[1:])

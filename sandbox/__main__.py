"""`python -m sandbox`: run the reference contact centre until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path

from sandbox.chat.site import ChatSite
from sandbox.generic.peer import GenericPeer
from sandbox.generic.profile import GenericPeerSettings
from sandbox.mail.desk import MailDesk
from sandbox.mail.dovecot import DovecotError
from sandbox.messaging_profile import MessagingSettings
from sandbox.peer import hours_and_clock
from sandbox.profile import PROFILES_DIR, Profile, ProfileError, load_profile
from sandbox.twilio.profile import TwilioSettings
from sandbox.twilio.server import TwilioSandbox


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Run the cxprobe sandbox contact centre (mail desk and, if the profile has "
        "chat:, twilio:, messaging: or generic_peer: sections, the web-chat site, the "
        "Twilio-compatible phone line, its SMS and WhatsApp lines and the generic messaging "
        "peer) on 127.0.0.1.",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=PROFILES_DIR / "demo.yaml",
        help="sandbox profile YAML (default: %(default)s)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("data/sandbox"),
        help="where Dovecot's mail, logs, certificates, ground_truth.jsonl, "
        "chat_ground_truth.jsonl, twilio_ground_truth.jsonl, messaging_ground_truth.jsonl and "
        "generic_ground_truth.jsonl live (default: %(default)s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    return parser.parse_args(argv)


async def _serve(profile_path: Path, workdir: Path) -> None:
    profile = _load(profile_path)
    stop = _stop_on_signals()
    async with AsyncExitStack() as stack:
        await _start_mail(stack, profile, profile_path, workdir)
        if profile.chat is not None:
            await _start_chat(stack, profile, workdir)
        if profile.twilio is not None:
            await _start_twilio(stack, profile, profile.twilio, workdir)
        if profile.generic_peer is not None:
            await _start_generic_peer(stack, profile, profile.generic_peer, workdir)
        print("Ctrl-C to stop.", flush=True)
        await stop.wait()
    print("sandbox stopped", flush=True)


def _load(profile_path: Path) -> Profile:
    profile = load_profile(profile_path)
    if profile.messaging is not None and profile.twilio is None:
        raise ProfileError(
            f"{profile_path}: messaging: runs on the Twilio sandbox (its account, token and "
            "port); add a twilio: section or remove messaging:"
        )
    return profile


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _start_mail(
    stack: AsyncExitStack, profile: Profile, profile_path: Path, workdir: Path
) -> None:
    desk = await stack.enter_async_context(MailDesk(profile, workdir))
    mail = profile.mail
    tls = "" if mail.smtp.tls == "none" else f" ({mail.smtp.tls}, CA {desk.ca_file})"
    print(
        f"sandbox mail desk running (profile {profile_path})\n"
        f"  SMTP     {desk.host}:{desk.smtp_port}{tls} -> {mail.support_address}\n"
        f"  IMAP     {desk.host}:{desk.imap_port}  mailboxes: "
        f"{', '.join(m.address for m in mail.probe_mailboxes)}\n"
        f"  LMTP     {desk.host}:{desk.lmtp_port}\n"
        f"  control  {desk.control_url}  (GET /state, /ground-truth)\n"
        f"  ground truth  {desk.ground_truth_path}\n"
        f"  period now: {desk.period_now()}",
        flush=True,
    )


async def _start_chat(stack: AsyncExitStack, profile: Profile, workdir: Path) -> None:
    chat = await stack.enter_async_context(ChatSite(profile, workdir))
    print(
        "sandbox web chat running\n"
        f"  support page  {chat.url('/')}\n"
        f"  variants      {chat.url('/iframe-same')}  {chat.url('/iframe-cross')}  "
        f"{chat.url('/shadow')}\n"
        f"  widget alone  {chat.url('/widget')}  (second origin {chat.alt_url('/')})\n"
        f"  control       {chat.url('/_control/state')}  (and /_control/ground-truth)\n"
        f"  ground truth  {chat.ground_truth_path}",
        flush=True,
    )


async def _start_twilio(
    stack: AsyncExitStack, profile: Profile, settings: TwilioSettings, workdir: Path
) -> None:
    phone = TwilioSandbox(
        settings,
        workdir=workdir,
        seed=profile.seed,
        messaging=profile.messaging,
        **hours_and_clock(profile),
    )
    twilio = await stack.enter_async_context(phone)
    print(
        "sandbox phone line (Twilio-compatible) running\n"
        f"  REST API      {twilio.base_url}  (use it in place of https://api.twilio.com; "
        f"account {settings.account_sid})\n"
        f"  control       {twilio.control_url}  (GET /state, /ground-truth)\n"
        f"  ground truth  {twilio.ground_truth_path}\n"
        f"  period now: {twilio.period_now()}",
        flush=True,
    )
    if profile.messaging is not None:
        _print_messaging(profile.messaging, twilio)


async def _start_generic_peer(
    stack: AsyncExitStack, profile: Profile, settings: GenericPeerSettings, workdir: Path
) -> None:
    generic = GenericPeer(settings, workdir=workdir, seed=profile.seed, **hours_and_clock(profile))
    peer = await stack.enter_async_context(generic)
    print(
        "sandbox generic messaging peer running\n"
        f"  send API      POST {peer.send_url}  (Bearer token; page id {settings.page_id})\n"
        f"  replies to    {settings.webhook_url or 'nowhere yet'}  "
        "(signed X-Hub-Signature-256)\n"
        f"  control       {peer.control_url}  (GET /state, /ground-truth; POST /webhook)\n"
        f"  ground truth  {peer.ground_truth_path}",
        flush=True,
    )


def _print_messaging(messaging: MessagingSettings, twilio: TwilioSandbox) -> None:
    lines = [line.address for line in (messaging.sms, messaging.whatsapp) if line is not None]
    hooks = [f"{number} -> {url}" for number, url in messaging.inbound_webhooks.items()]
    print(
        "sandbox messaging lines (Twilio Messages API, same port) running\n"
        f"  brand lines       {', '.join(lines)}\n"
        f"  Messages API      {twilio.base_url}/2010-04-01/Accounts/"
        f"{twilio.settings.account_sid}/Messages.json\n"
        f"  inbound webhooks  {', '.join(hooks) or 'none (poll the Messages API)'}\n"
        f"  control           {twilio.control_url}/messaging  (GET /state, /ground-truth; "
        "POST /inbound-webhook, /outage, /session-window)\n"
        f"  ground truth      {twilio.messaging.ground_truth_path}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd logs every SMTP command at INFO; that drowns the desk's own messages.
    logging.getLogger("mail.log").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        asyncio.run(_serve(args.profile, args.workdir))
    except (ProfileError, DovecotError, OSError) as err:
        print(f"sandbox: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

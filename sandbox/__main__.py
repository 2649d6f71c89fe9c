"""`python -m sandbox`: run the reference contact centre (all of it, or `--only` some parts)
until SIGINT or SIGTERM; `--state-file` tells scripts where each part listens."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from sandbox.chat.site import ChatSite
from sandbox.generic.peer import GenericPeer
from sandbox.generic.profile import GenericPeerSettings
from sandbox.mail.desk import MailDesk
from sandbox.mail.dovecot import DovecotError
from sandbox.messaging_profile import MessagingSettings
from sandbox.peer import hours_and_clock
from sandbox.profile import PROFILES_DIR, Profile, ProfileError, load_profile
from sandbox.state_file import StateFile
from sandbox.twilio.profile import TwilioSettings
from sandbox.twilio.server import TwilioSandbox
from sandbox.webhook_base import check_base_url, with_webhook_base

PARTS = ("mail", "chat", "twilio", "messaging", "generic")
# The profile section each part needs (messaging also needs twilio:, whose server it runs on).
SECTIONS = {
    "mail": "mail",
    "chat": "chat",
    "twilio": "twilio",
    "messaging": "messaging",
    "generic": "generic_peer",
}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Run the cxprobe sandbox contact centre on 127.0.0.1: the mail desk (with "
        "Dovecot), the web-chat site, the Twilio-compatible phone line, its SMS and WhatsApp "
        "lines and the generic messaging peer, each from its section of the profile "
        "(mail:, chat:, twilio:, messaging:, generic_peer:).",
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
    parser.add_argument(
        "--only",
        type=_parts,
        metavar="PART[,PART...]",
        help=f"start only these parts, of {','.join(PARTS)} (default: every part the profile "
        "has a section for); Dovecot runs only with mail; messaging runs on the Twilio server, "
        "whose phone line then answers too",
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        help="write the ports and URLs of every started part here as JSON (status starting, "
        "running, then stopped at exit; replaced atomically)",
    )
    parser.add_argument(
        "--webhook-base-url",
        metavar="URL",
        help="the monitor's webhook base, e.g. http://127.0.0.1:9464: webhook paths in the "
        "profile (messaging.inbound_webhooks, generic_peer.webhook_url) are joined to it, "
        "whole URLs keep their path and move under it",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    return parser.parse_args(argv)


def _parts(value: str) -> tuple[str, ...]:
    asked = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [part for part in asked if part not in PARTS]
    if unknown or not asked:
        raise argparse.ArgumentTypeError(
            f"unknown part {', '.join(unknown) or '(none)'}; choose from {','.join(PARTS)}"
        )
    return asked


async def _serve(args: argparse.Namespace) -> None:
    profile_path: Path = args.profile
    profile = load_profile(profile_path)
    parts = _chosen_parts(profile, profile_path, args.only)
    base = None if args.webhook_base_url is None else check_base_url(args.webhook_base_url)
    profile = with_webhook_base(profile, base, profile_path)
    state = None
    if args.state_file is not None:
        state = StateFile(args.state_file, profile=profile_path, workdir=args.workdir)
        state.starting()
    stop = _stop_on_signals()
    try:
        async with AsyncExitStack() as stack:
            started = await _start(stack, profile, profile_path, args.workdir, parts)
            if state is not None:
                state.running(started, webhook_base_url=base)
            print("Ctrl-C to stop.", flush=True)
            await stop.wait()
    finally:
        if state is not None:
            state.stopped()
    print("sandbox stopped", flush=True)


def _chosen_parts(profile: Profile, path: Path, only: tuple[str, ...] | None) -> tuple[str, ...]:
    """The parts to start, in start order; ProfileError when an asked part has no section."""
    if only is None:
        present = [part for part in PARTS if getattr(profile, SECTIONS[part]) is not None]
        if not present:
            raise ProfileError(f"{path}: the profile has no part to run (mail:, chat:, ...)")
        only = tuple(present)
    for part in only:
        if getattr(profile, SECTIONS[part]) is None:
            raise ProfileError(
                f"{path}: --only {part} needs a {SECTIONS[part]}: section in the profile; "
                f"add one (see sandbox/profiles/demo.yaml) or leave {part} out of --only"
            )
    if "messaging" in only and profile.twilio is None:
        raise ProfileError(
            f"{path}: messaging: runs on the Twilio sandbox (its account, token and port); "
            "add a twilio: section or remove messaging:"
        )
    return tuple(part for part in PARTS if part in only)


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _start(
    stack: AsyncExitStack,
    profile: Profile,
    profile_path: Path,
    workdir: Path,
    parts: tuple[str, ...],
) -> dict[str, dict[str, Any]]:
    """Start the parts; what the state file says of each started one."""
    started: dict[str, dict[str, Any]] = {}
    if "mail" in parts:
        started["mail"] = await _start_mail(stack, profile, profile_path, workdir)
    if "chat" in parts:
        started["chat"] = await _start_chat(stack, profile, workdir)
    if "twilio" in parts or "messaging" in parts:
        assert profile.twilio is not None  # checked by _chosen_parts
        messaging = profile.messaging if "messaging" in parts else None
        started |= await _start_twilio(stack, profile, profile.twilio, messaging, workdir)
        if "twilio" not in parts:
            del started["twilio"]
    if "generic" in parts:
        assert profile.generic_peer is not None
        started["generic"] = await _start_generic_peer(
            stack, profile, profile.generic_peer, workdir
        )
    return started


async def _start_mail(
    stack: AsyncExitStack, profile: Profile, profile_path: Path, workdir: Path
) -> dict[str, Any]:
    desk = await stack.enter_async_context(MailDesk(profile, workdir))
    mail = desk.mail
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
    return {
        "host": desk.host,
        "smtp_port": desk.smtp_port,
        "smtp_tls": mail.smtp.tls,
        "ca_file": None if mail.smtp.tls == "none" else str(desk.ca_file),
        "imap_port": desk.imap_port,
        "lmtp_port": desk.lmtp_port,
        "support_address": mail.support_address,
        "mailboxes": [m.address for m in mail.probe_mailboxes],
        "control_url": desk.control_url,
        "ground_truth": str(desk.ground_truth_path),
    }


async def _start_chat(stack: AsyncExitStack, profile: Profile, workdir: Path) -> dict[str, Any]:
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
    return {
        "url": chat.url("/"),
        "port": chat.port,
        "alt_url": chat.alt_url("/"),
        "alt_port": chat.alt_port,
        "control_url": chat.control_url,
        "ground_truth": str(chat.ground_truth_path),
    }


async def _start_twilio(
    stack: AsyncExitStack,
    profile: Profile,
    settings: TwilioSettings,
    messaging: MessagingSettings | None,
    workdir: Path,
) -> dict[str, dict[str, Any]]:
    """The Twilio sandbox: the phone line, and the SMS and WhatsApp lines if messaging."""
    phone = TwilioSandbox(
        settings,
        workdir=workdir,
        seed=profile.seed,
        messaging=messaging,
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
    started: dict[str, dict[str, Any]] = {
        "twilio": {
            "base_url": twilio.base_url,
            "port": twilio.port,
            "account_sid": settings.account_sid,
            "control_url": twilio.control_url,
            "ground_truth": str(twilio.ground_truth_path),
        }
    }
    if messaging is not None:
        started["messaging"] = _print_messaging(messaging, twilio)
    return started


async def _start_generic_peer(
    stack: AsyncExitStack, profile: Profile, settings: GenericPeerSettings, workdir: Path
) -> dict[str, Any]:
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
    return {
        "base_url": peer.base_url,
        "port": peer.port,
        "send_url": peer.send_url,
        "page_id": settings.page_id,
        "webhook_url": settings.webhook_url,
        "control_url": peer.control_url,
        "ground_truth": str(peer.ground_truth_path),
    }


def _print_messaging(messaging: MessagingSettings, twilio: TwilioSandbox) -> dict[str, Any]:
    lines = [line.address for line in (messaging.sms, messaging.whatsapp) if line is not None]
    hooks = [f"{number} -> {url}" for number, url in messaging.inbound_webhooks.items()]
    messages_url = (
        f"{twilio.base_url}/2010-04-01/Accounts/{twilio.settings.account_sid}/Messages.json"
    )
    print(
        "sandbox messaging lines (Twilio Messages API, same port) running\n"
        f"  brand lines       {', '.join(lines)}\n"
        f"  Messages API      {messages_url}\n"
        f"  inbound webhooks  {', '.join(hooks) or 'none (poll the Messages API)'}\n"
        f"  control           {twilio.control_url}/messaging  (GET /state, /ground-truth; "
        "POST /inbound-webhook, /outage, /session-window)\n"
        f"  ground truth      {twilio.messaging.ground_truth_path}",
        flush=True,
    )
    return {
        "base_url": twilio.base_url,
        "port": twilio.port,
        "account_sid": twilio.settings.account_sid,
        "messages_url": messages_url,
        "lines": lines,
        "inbound_webhooks": dict(messaging.inbound_webhooks),
        "control_url": f"{twilio.control_url}/messaging",
        "ground_truth": str(twilio.messaging.ground_truth_path),
    }


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd logs every SMTP command at INFO; that drowns the desk's own messages.
    logging.getLogger("mail.log").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        asyncio.run(_serve(args))
    except (ProfileError, DovecotError, OSError, ValueError) as err:
        print(f"sandbox: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

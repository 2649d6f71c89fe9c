"""`python -m sandbox` as a tool: any subset of its parts (`--only`), the chosen ports in a JSON
state file (`--state-file`), and the monitor's webhook base given on the command line
(`--webhook-base-url`). Every test runs the real process on 127.0.0.1 and stops it by its PID."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from twilio.rest import Client

from sandbox.profile import PROFILES_DIR
from tests.integration.test_sandbox_generic_peer import SECRET, running_inbox
from tests.integration.test_sandbox_twilio import SandboxHttpClient

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0  # seconds the sandbox may take to start, answer or stop before the test fails
READY = "Ctrl-C to stop."
SECTIONS = ("mail", "chat", "twilio", "messaging", "generic_peer")


def demo_sections(*keep: str) -> dict[str, Any]:
    """The demo profile with only the sections kept, every port 0 (chosen by the OS)."""
    raw: dict[str, Any] = yaml.safe_load((PROFILES_DIR / "demo.yaml").read_text())
    for section in SECTIONS:
        if section not in keep:
            del raw[section]
    raw["control"] = {"port": 0}
    for section in ("chat", "twilio", "generic_peer"):
        if section in raw:
            raw[section]["port"] = 0
    if "chat" in raw:
        raw["chat"]["alt_port"] = 0
    if "mail" in raw:
        for server in ("smtp", "imap", "lmtp"):
            raw["mail"][server]["port"] = 0
    # Open all week, so a reply is due whatever time the test runs.
    raw["business_hours"] = {
        day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    }
    return raw


def write_profile(tmp_path: Path, raw: dict[str, Any]) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


class Sandbox:
    def __init__(self, process: asyncio.subprocess.Process, state_file: Path) -> None:
        self.process = process
        self.state_file = state_file
        self.output: list[str] = []

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.state_file.read_text())
        return state

    async def read_until(self, line: str) -> None:
        assert self.process.stdout is not None
        async with asyncio.timeout(WAIT):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    code = await self.process.wait()
                    raise AssertionError(f"sandbox exited {code}:\n" + "".join(self.output))
                self.output.append(raw.decode())
                if raw.decode().strip() == line:
                    return

    async def stop(self) -> int:
        """SIGTERM by PID; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT):
            assert self.process.stdout is not None
            self.output.append((await self.process.stdout.read()).decode())
            return await self.process.wait()


@asynccontextmanager
async def running_sandbox(tmp_path: Path, profile: Path, *options: str) -> AsyncIterator[Sandbox]:
    """`python -m sandbox ... --state-file` until the block ends; killed by PID if still up."""
    state_file = tmp_path / "state" / "sandbox.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sandbox",
        "--profile",
        str(profile),
        "--workdir",
        str(tmp_path / "work"),
        "--state-file",
        str(state_file),
        *options,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    sandbox = Sandbox(process, state_file)
    try:
        yield sandbox
    finally:
        if process.returncode is None:
            with suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def test_only_twilio_writes_its_port_and_the_line_answers_there(tmp_path: Path) -> None:
    # A profile with the twilio: section alone: no mail desk, no Dovecot, no other part.
    raw = demo_sections("twilio")
    profile = write_profile(tmp_path, raw)
    async with running_sandbox(tmp_path, profile, "--only", "twilio") as sandbox:
        await sandbox.read_until(READY)
        state = sandbox.state()
        assert state["status"] == "running"
        assert state["pid"] == sandbox.process.pid
        assert list(state["parts"]) == ["twilio"]
        twilio = state["parts"]["twilio"]
        assert twilio["port"] != 0 and twilio["base_url"] == f"http://127.0.0.1:{twilio['port']}"
        http = SandboxHttpClient(twilio["base_url"])
        try:
            client = Client(
                raw["twilio"]["account_sid"], raw["twilio"]["auth_token"], http_client=http
            )
            call = await client.calls.create_async(
                to="+442071234567", from_="+15005550006", twiml="<Response><Hangup/></Response>"
            )
            fetched = await client.calls(call.sid).fetch_async()
        finally:
            await http.close()
        assert fetched.sid == call.sid
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{twilio['control_url']}/state") as response,
        ):
            assert response.status == 200
            assert (await response.json())["calls"] == 1
        assert not (tmp_path / "work" / "dovecot").exists()
        assert await sandbox.stop() == 0
    stopped = sandbox.state()
    assert stopped["status"] == "stopped" and stopped["parts"] == state["parts"]
    assert "stopped_at" in stopped
    assert [p.name for p in state_dir(sandbox)] == ["sandbox.json"]  # no temporary file left


def state_dir(sandbox: Sandbox) -> list[Path]:
    return sorted(sandbox.state_file.parent.iterdir())


async def test_only_chat_serves_the_support_page_on_chosen_ports(tmp_path: Path) -> None:
    profile = write_profile(tmp_path, demo_sections("chat", "mail", "twilio"))
    async with running_sandbox(tmp_path, profile, "--only", "chat") as sandbox:
        await sandbox.read_until(READY)
        parts = sandbox.state()["parts"]
        assert list(parts) == ["chat"]  # the profile's mail and twilio sections are not started
        chat = parts["chat"]
        assert 0 not in (chat["port"], chat["alt_port"]) and chat["port"] != chat["alt_port"]
        async with aiohttp.ClientSession() as session:
            async with session.get(chat["url"]) as page:
                assert page.status == 200
                assert "widget" in await page.text()
            async with session.get(f"{chat['control_url']}/state") as response:
                assert response.status == 200
        assert not (tmp_path / "work" / "dovecot").exists()
        assert await sandbox.stop() == 0
    assert sandbox.state()["status"] == "stopped"


async def test_webhook_base_url_takes_the_path_the_profile_names(tmp_path: Path) -> None:
    raw = demo_sections("generic_peer")
    peer = raw["generic_peer"]
    peer["webhook_url"] = "/webhooks/generic/social"  # a path: no port in the profile
    peer["app_secret"] = SECRET  # what the inbox checks signatures with
    peer["bot"]["latency"] = {"distribution": "fixed", "seconds": 0.05}
    profile = write_profile(tmp_path, raw)
    async with running_inbox() as inbox:
        base = inbox.url.removesuffix("/webhooks/generic/social")
        async with running_sandbox(
            tmp_path, profile, "--only", "generic", "--webhook-base-url", base
        ) as sandbox:
            await sandbox.read_until(READY)
            state = sandbox.state()
            generic = state["parts"]["generic"]
            assert state["webhook_base_url"] == base
            assert generic["webhook_url"] == f"{base}/webhooks/generic/social"
            send = {
                "recipient": {"id": peer["page_id"]},
                "sender": {"id": "customer-1"},
                "message": {"text": "About my invoice"},
            }
            headers = {"Authorization": f"Bearer {peer['access_token']}"}
            async with (
                aiohttp.ClientSession() as session,
                session.post(generic["send_url"], json=send, headers=headers) as sent,
            ):
                assert sent.status == 201, await sent.text()
            delivery = (await inbox.wait_for(1))[0]  # the bot's answer, signed
            assert await sandbox.stop() == 0
    assert delivery.signature_valid


@pytest.mark.parametrize(
    ("keep", "options", "says"),
    [
        (("twilio",), ("--only", "generic"), "--only generic needs a generic_peer: section"),
        (("twilio",), ("--only", "fax"), "unknown part fax; choose from"),
        (
            ("generic_peer",),
            ("--only", "generic", "--webhook-base-url", "127.0.0.1:9464"),
            "is not an http(s) URL like http://127.0.0.1:9464",
        ),
        (("mail", "twilio", "messaging"), ("--only", "messaging"), None),
    ],
)
async def test_bad_parts_and_options_say_what_to_do(
    tmp_path: Path, keep: tuple[str, ...], options: tuple[str, ...], says: str | None
) -> None:
    raw = demo_sections(*keep)
    if says is None:  # a path webhook without a base URL
        raw["messaging"]["inbound_webhooks"] = {"+15005550006": "/webhooks/twilio/sms"}
        says = "messaging.inbound_webhooks['+15005550006'] is the path '/webhooks/twilio/sms'"
    profile = write_profile(tmp_path, raw)
    async with running_sandbox(tmp_path, profile, *options) as sandbox:
        assert sandbox.process.stdout is not None
        async with asyncio.timeout(WAIT):
            output = (await sandbox.process.stdout.read()).decode()
            code = await sandbox.process.wait()
    assert code != 0
    assert says in output
    if "--only generic" in says or "is the path" in says:
        assert str(profile) in output  # the message names the profile file
    assert not (tmp_path / "work" / "dovecot").exists()

"""``cxprobe once`` as issue 17 met it: a web-chat run against the sandbox's chat site (Debian
Chromium) whose brand selector no longer matches ends ``error`` with a reason quoting the
selector. Piped (not a terminal), the reason prints on one line with its brackets, and
``--json`` carries it whole."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from probes.webchat.settings import DEBIAN_CHROMIUM
from sandbox.chat.site import ChatSite
from sandbox.profile import Profile
from tests.support import chat_site_profile, sandbox_widget, webchat_config

ROOT = Path(__file__).resolve().parents[2]
SELECTOR = "li[data-author=assistant]"


async def cxprobe(*args: str) -> tuple[int, str, str]:
    """``python -m cxprobe`` with stdout and stderr piped and no COLUMNS."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cxprobe",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_once_prints_a_selector_in_a_reason_as_written(tmp_path: Path) -> None:
    assert DEBIAN_CHROMIUM.exists(), (
        f"{DEBIAN_CHROMIUM} is missing: run scripts/install-system-deps.sh"
    )
    profile = Profile.model_validate(chat_site_profile())
    async with ChatSite(profile, tmp_path / "site") as site:
        messages = {**sandbox_widget("")["messages"], "brand": SELECTOR}
        path = webchat_config(tmp_path, sandbox_widget(site.url("/"), messages=messages))
        code, out, err = await cxprobe("once", "-c", str(path), "acme-chat")
        json_code, json_out, _ = await cxprobe("once", "-c", str(path), "acme-chat", "--json")
    assert code == 4, out + err  # the probe errored: its selectors are out of date
    (outcome,) = [line for line in out.splitlines() if line.startswith("outcome")]
    assert f"messages.brand ({SELECTOR!r}) no longer matches" in outcome
    assert len(outcome) > 200  # one line, however long

    assert json_code == 4
    run = json.loads(json_out)["run"]
    assert run["outcome"] == "error"
    assert f"messages.brand ({SELECTOR!r}) no longer matches" in run["reason"]

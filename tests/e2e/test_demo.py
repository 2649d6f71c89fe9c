"""`make demo`'s script end to end: sandbox, monitor and Prometheus start, runs finish, and
everything stops cleanly by itself when DEMO_SECONDS passes."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path

from tests.support import require_binary

ROOT = Path(__file__).resolve().parents[2]


async def test_demo_runs_and_stops_by_itself(tmp_path: Path) -> None:
    require_binary("dovecot")
    require_binary("prometheus")
    shutil.rmtree(ROOT / "data" / "demo", ignore_errors=True)
    env = {
        **os.environ,
        "DEMO_SECONDS": "25",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    process = await asyncio.create_subprocess_exec(
        str(ROOT / "scripts" / "demo.sh"), stdout=PIPE, stderr=STDOUT, env=env, cwd=ROOT
    )
    async with asyncio.timeout(120):
        output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "cxprobe demo is running" in text
    assert "run finished" in text and "outcome=met" in text
    assert "cxprobe stopped" in text and "demo stopped" in text
    assert "probe-secret" not in text
    prometheus_log = (ROOT / "data" / "demo" / "prometheus.log").read_text()
    assert "Server is ready to receive web requests" in prometheus_log

"""``cxprobe run`` reloads its configuration on SIGHUP: a real monitor process, its JSON log
awaited line by line, and its /metrics read after each reload.

The checks probe a generic platform whose send URL has no server (nothing here needs a peer):
an ``every: 1s`` check keeps starting runs (each ends as an error), which shows the scheduler
is still firing it; the others never come due (1 January, one second of grace).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support import generic_platform, monitor_section

REPO = Path(__file__).resolve().parents[2]
NEVER = {"cron": "0 0 1 1 *", "misfire_grace": "1s"}
WITHIN = 60.0

LogEntry = dict[str, Any]


def config(tmp_path: Path, checks: list[dict[str, Any]], *, send_timeout: float = 5) -> str:
    nowhere = SimpleNamespace(
        send_url="http://127.0.0.1:9/v1/messages",
        settings=SimpleNamespace(access_token="token", app_secret="secret"),
    )
    platform = generic_platform(nowhere)
    platform["send"]["retry_for"] = 0
    platform["send"]["timeout"] = send_timeout
    document = {
        "version": 1,
        "monitor": monitor_section(tmp_path),
        "locations": {"test": {}},
        "channels": {"generic": {"platforms": {"social": platform}}},
        "targets": {
            "acme": {
                "name": "Acme",
                "business_hours": {"timezone": "UTC", "weekly": {}},
                "channels": {
                    "generic": {"platform": "social", "recipient": "acme", "sender": "probe"}
                },
                "rate_limit": {"max_contacts_per_hour": 10_000},
            }
        },
        "checks": [
            {"target": "acme", "channel": "generic", "scenario": name, **check}
            for name, check in checks
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)


def check(check_id: str, schedule: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    scenario = {"often": "billing-question", "new": "technical-fault"}.get(check_id, "cancellation")
    return scenario, {"id": check_id, "schedule": schedule}


@dataclass
class MonitorLog:
    """The monitor's stderr, one JSON entry a line, awaited as it arrives."""

    entries: list[LogEntry] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def follow(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                async with self._arrived:
                    self.entries.append(entry)
                    self._arrived.notify_all()

    async def wait_for(
        self, wanted: Callable[[LogEntry], bool], *, after: int = 0
    ) -> tuple[int, LogEntry]:
        """The first entry from index ``after`` on that ``wanted`` accepts, and its index."""
        async with asyncio.timeout(WITHIN), self._arrived:
            while True:
                for index, entry in enumerate(self.entries[after:], start=after):
                    if wanted(entry):
                        return index, entry
                await self._arrived.wait()

    def text(self) -> str:
        return "\n".join(json.dumps(entry) for entry in self.entries)


def message(text: str, **fields: Any) -> Callable[[LogEntry], bool]:
    return lambda entry: (
        entry.get("msg") == text and all(entry.get(key) == value for key, value in fields.items())
    )


@dataclass
class RunningMonitor:
    process: asyncio.subprocess.Process
    log: MonitorLog
    path: Path
    metrics_url: str

    async def reload(self, text: str) -> None:
        self.path.write_text(text)
        self.process.send_signal(signal.SIGHUP)

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as session, session.get(self.metrics_url) as response:
            assert response.status == 200
            return await response.text()


@contextlib.asynccontextmanager
async def running_monitor(path: Path) -> AsyncIterator[RunningMonitor]:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cxprobe",
        "run",
        "-c",
        str(path),
        cwd=REPO,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    log = MonitorLog()
    assert process.stderr is not None
    following = asyncio.create_task(log.follow(process.stderr))
    try:
        _, started = await log.wait_for(message("cxprobe running"))
        yield RunningMonitor(process, log, path, started["metrics_url"])
    except BaseException:
        print(log.text())  # shown with the failure
        raise
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
        await following


def info_of(metrics: str, check_id: str) -> bool:
    return any(
        line.startswith("cxprobe_check_info{") and f'check="{check_id}"' in line
        for line in metrics.splitlines()
    )


def gauge(metrics: str, name: str) -> float:
    (value,) = [line.split()[-1] for line in metrics.splitlines() if line.startswith(f"{name} ")]
    return float(value)


@pytest.mark.timeout(180)
async def test_sighup_applies_a_valid_file_and_keeps_running_on_an_invalid_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cxprobe.yaml"
    often, rare = check("often", {"every": "1s"}), check("rare", NEVER)
    path.write_text(config(tmp_path, [often, rare]))
    async with running_monitor(path) as monitor:
        before = await monitor.metrics()
        assert info_of(before, "often") and info_of(before, "rare")
        assert gauge(before, "cxprobe_config_last_reload_successful") == 1
        first_load = gauge(before, "cxprobe_config_last_reload_success_timestamp_seconds")

        # A valid change: a check added, one removed.
        await monitor.reload(config(tmp_path, [often, check("new", NEVER)]))
        mark, reloaded = await monitor.log.wait_for(message("configuration reloaded"))
        assert (reloaded["added"], reloaded["removed"], reloaded["changed"]) == (
            ["new"],
            ["rare"],
            [],
        )
        after = await monitor.metrics()
        assert info_of(after, "new") and info_of(after, "often")
        assert not info_of(after, "rare")
        assert gauge(after, "cxprobe_config_last_reload_successful") == 1
        assert gauge(after, "cxprobe_config_last_reload_success_timestamp_seconds") > first_load
        assert not [e for e in monitor.log.entries[mark:] if e["msg"].startswith("restart")]

        # An invalid file: nothing changes, the problems name the file, the key and the fix.
        broken = config(tmp_path, [often]).replace("every: 1s", "every: 1 second")
        await monitor.reload(broken)
        mark, failed = await monitor.log.wait_for(
            message(
                "configuration reload failed: the running configuration is kept; fix the "
                "file and send SIGHUP again"
            ),
            after=mark,
        )
        assert failed["level"] == "error"
        assert any(
            problem.startswith(f"{path}:")
            and "checks[0].schedule.every" in problem
            and "invalid duration '1 second'" in problem
            for problem in failed["problems"]
        ), failed["problems"]
        kept = await monitor.metrics()
        assert gauge(kept, "cxprobe_config_last_reload_successful") == 0
        assert info_of(kept, "new") and info_of(kept, "often")
        # The old checks keep running: the 1 s check starts another run after the failure.
        await monitor.log.wait_for(message("run started", check="often"), after=mark)

        # A channel change is valid but needs a restart: logged, the rest applied.
        await monitor.reload(config(tmp_path, [often], send_timeout=7))
        mark, reloaded = await monitor.log.wait_for(message("configuration reloaded"), after=mark)
        assert reloaded["removed"] == ["new"]
        _, warning = await monitor.log.wait_for(
            lambda entry: entry["msg"].startswith("restart needed"), after=mark
        )
        assert warning["not_applied"] == ["channels.generic"]
        applied = await monitor.metrics()
        assert gauge(applied, "cxprobe_config_last_reload_successful") == 1
        assert info_of(applied, "often") and not info_of(applied, "new")
        await monitor.log.wait_for(message("run started", check="often"), after=mark)
    assert monitor.process.returncode == 0, monitor.log.text()

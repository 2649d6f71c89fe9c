"""``cxprobe run`` on a PostgreSQL store it cannot use (a wrong password on the real server, a
closed port): exit 2 with a message naming the URL without its password, and nothing sent."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import yaml

from sandbox.net import LOOPBACK, free_port
from tests.postgres import STORE_ROLE, PostgresServer
from tests.support import monitor_config

ROOT = Path(__file__).resolve().parents[2]
PASSWORD_VARIABLE = "CXPROBE_TEST_STORE_PASSWORD"


async def run_monitor(config: Path, store_password: str) -> tuple[int, str]:
    """``cxprobe run`` until it exits by itself (it must: the store cannot be opened)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cxprobe",
        "run",
        "-c",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={
            **os.environ,
            "COLUMNS": "400",
            "CXPROBE_TEST_IMAP_PASSWORD": "probe-secret",
            PASSWORD_VARIABLE: store_password,
        },
        cwd=ROOT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, " ".join(output.decode().split())


@pytest.mark.parametrize("fault", ["wrong password", "closed port"])
async def test_cxprobe_run_refuses_a_store_it_cannot_use_and_sends_nothing(
    fault: str, tmp_path: Path, postgres_server: PostgresServer, postgres_database: str
) -> None:
    connections: list[str] = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append("contact")
        writer.close()

    # The email channel's SMTP and IMAP server: the monitor must never connect to it.
    mail = await asyncio.start_server(count, LOOPBACK, 0)
    async with mail:
        mail_port = mail.sockets[0].getsockname()[1]
        config = monitor_config(tmp_path, smtp_port=mail_port, imap_port=mail_port)
        port = free_port() if fault == "closed port" else postgres_server.port
        url = (
            f"postgresql+asyncpg://{STORE_ROLE}:${{{PASSWORD_VARIABLE}}}@{LOOPBACK}:{port}/"
            f"{postgres_database}"
        )
        data = yaml.safe_load(config.read_text())
        data["monitor"]["store_url"] = url
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        password = "Wr0ng-Secret" if fault == "wrong password" else postgres_server.password
        code, output = await run_monitor(config, password)
    assert code == 2, output
    shown = f"postgresql+asyncpg://{STORE_ROLE}:***@{LOOPBACK}:{port}/{postgres_database}"
    assert f"cannot open the evidence store {shown}" in output
    assert password not in output and "Traceback" not in output
    expected = "refused user 'cxprobe'" if fault == "wrong password" else "cannot be reached"
    assert expected in output
    assert connections == []
    assert not (tmp_path / "cxprobe.db").exists()  # no store fell back to the default

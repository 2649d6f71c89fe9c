"""Loopback networking helpers shared by the sandbox servers."""

from __future__ import annotations

import asyncio
import contextlib
import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on the loopback interface that is free right now.

    Used only for servers that cannot report the port they bound (Dovecot); the tiny race
    between closing this socket and the server binding is acceptable on a test machine.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


async def greets(host: str, port: int, prefix: bytes) -> bool:
    """True if a server at host:port accepts a connection and its greeting starts with prefix.

    Reading the greeting (not just connecting) matters: Dovecot's master accepts on the listener
    before the login process is ready to talk. Callers bound the time with asyncio.timeout.
    """
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    try:
        line = await reader.readline()
    except OSError:
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return line.startswith(prefix)

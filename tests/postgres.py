"""A real PostgreSQL server for the tests, from Debian's ``postgresql`` package.

The server runs in user space: ``initdb`` into a temporary directory, ``postgres`` in the
foreground on 127.0.0.1 and an ephemeral port, unix sockets in that directory, stopped by its
PID. PostgreSQL refuses to run as root, so under root (CI) both run as the package's
``postgres`` user; any other user runs them as itself.

Two roles: the bootstrap superuser, reached only over the unix socket (``trust``), creates and
drops databases; the store's role logs in over TCP with a password (SCRAM), owns each test
database and is no superuser, as a deployment's would be. This module has no tests.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sandbox.net import LOOPBACK, free_port

#: Where Debian's ``postgresql`` package puts the server's binaries (one directory per major).
DEBIAN_POSTGRESQL = Path("/usr/lib/postgresql")

#: The unprivileged account the package creates; the server runs as it under root.
SERVER_ACCOUNT = "postgres"

#: The role the store connects as, and the bootstrap superuser.
STORE_ROLE = "cxprobe"
ADMIN_ROLE = "postgres_admin"

#: How long the server may take to start or stop on a loaded machine.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

_READY = "database system is ready to accept connections"
_PORT_TAKEN = "could not bind"

#: Test settings: no durability needed (the data directory is thrown away), more connections
#: than the default 100 for the tests with several stores, each with its own pool, and a
#: server time zone far from UTC (an odd offset), so that nothing may depend on it.
_SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "32MB",
    "password_encryption": "scram-sha-256",
    "log_connections": "off",
    "timezone": "Pacific/Chatham",
}


class PostgresMissing(AssertionError):
    """The server's binaries are not installed (an AssertionError: the test fails, never
    skips)."""


def postgres_binaries() -> Path:
    """The ``bin`` directory of the newest PostgreSQL that Debian's package installed."""
    majors = sorted(
        (path for path in DEBIAN_POSTGRESQL.glob("*/bin") if (path / "initdb").is_file()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not majors:
        raise PostgresMissing(
            f"PostgreSQL is not installed (no {DEBIAN_POSTGRESQL}/<version>/bin/initdb): install "
            "Debian's postgresql package, e.g. run scripts/install-system-deps.sh (make test "
            "does), or apt-get install --no-install-recommends postgresql"
        )
    return majors[-1]


@dataclass(frozen=True)
class _Account:
    """Who runs the server: the ``postgres`` account under root, else the current user."""

    uid: int
    gid: int

    @classmethod
    def for_server(cls) -> _Account:
        if os.geteuid() != 0:
            return cls(os.geteuid(), os.getegid())
        try:
            entry = pwd.getpwnam(SERVER_ACCOUNT)
        except KeyError:
            raise PostgresMissing(
                f"running as root, and there is no {SERVER_ACCOUNT!r} user to run PostgreSQL "
                "as (it refuses to run as root): install Debian's postgresql package, which "
                "creates it"
            ) from None
        return cls(entry.pw_uid, entry.pw_gid)

    @property
    def switches(self) -> bool:
        return self.uid != os.geteuid()


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory; ``start()`` then ``stop()``."""

    def __init__(self) -> None:
        self.binaries = postgres_binaries()
        self._account = _Account.for_server()
        self.directory = Path(tempfile.mkdtemp(prefix="cxprobe-postgres-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self.password = secrets.token_urlsafe(18)
        self.host = LOOPBACK
        self.port = 0
        self.started_in = 0.0  # seconds, initdb included
        self._process: subprocess.Popen[str] | None = None
        self._log_pump: threading.Thread | None = None
        self._names = iter(range(1, 1_000_000))
        self._names_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        if self._account.switches:
            os.chown(self.directory, self._account.uid, self._account.gid)
        self.directory.chmod(0o700)
        self._initdb()
        for _ in range(3):  # another process may take the free port before the server binds it
            self.port = free_port()
            if self._start_server():
                break
        else:
            raise AssertionError(f"PostgreSQL did not start; its log:\n{self._log_text()}")
        self._admin_sql(
            f"CREATE ROLE {STORE_ROLE} LOGIN PASSWORD '{self.password}' NOSUPERUSER NOCREATEDB"
        )
        self.started_in = time.monotonic() - began

    def stop(self) -> None:
        self.stop_server()
        shutil.rmtree(self.directory, ignore_errors=True)

    def stop_server(self) -> None:
        """Stop the server, keeping its data: :meth:`start_server` brings it back (a restart,
        as a deployment's server has on an upgrade or a failover)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # "fast" shutdown: disconnect clients, stop
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        pump, self._log_pump = self._log_pump, None
        if pump is not None:
            pump.join(timeout=STOP_TIMEOUT)
        if process is not None and process.stderr is not None:
            process.stderr.close()

    def start_server(self) -> None:
        """Start the stopped server again on its port, with its data (after :meth:`start`
        and :meth:`stop_server`)."""
        if self._process is not None:
            raise AssertionError("PostgreSQL is running already")
        # A log of its own: the ready and port-taken lines of the last run must not count.
        with contextlib.suppress(FileNotFoundError):
            self.log.replace(self.log.with_name(f"{self.log.name}.before-restart"))
        if not self._start_server():
            raise AssertionError(
                f"PostgreSQL could not start again: port {self.port} was taken meanwhile"
            )

    def _initdb(self) -> None:
        self._run(
            [
                str(self.binaries / "initdb"),
                "--pgdata",
                str(self.data),
                "--username",
                ADMIN_ROLE,
                "--auth-local",
                "trust",
                "--auth-host",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]
        )

    def _start_server(self) -> bool:
        """Start ``postgres`` on ``self.port``; True once it accepts connections, False if
        the port was taken meanwhile."""
        settings = _SERVER_SETTINGS | {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.directory),
        }
        command = [str(self.binaries / "postgres"), "-D", str(self.data)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.directory,
            **self._as_account(),
        )
        ready = threading.Event()
        pump = threading.Thread(
            target=_pump_log,
            args=(process.stderr, self.log, ready),
            name="postgres-log",
            daemon=True,
        )
        pump.start()
        deadline = time.monotonic() + START_TIMEOUT
        # The pump sets the event on the ready line, or when the log ends (the server exited).
        ready.wait(timeout=START_TIMEOUT)
        if process.poll() is None and _READY in self._log_text():
            self._process, self._log_pump = process, pump
            return True
        if process.poll() is None and time.monotonic() >= deadline:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
            raise AssertionError(
                f"PostgreSQL was not ready within {START_TIMEOUT:.0f} s; its log:\n"
                f"{self._log_text()}"
            )
        process.wait(timeout=STOP_TIMEOUT)
        pump.join(timeout=STOP_TIMEOUT)
        if process.stderr is not None:
            process.stderr.close()
        if _PORT_TAKEN in self._log_text():
            return False
        raise AssertionError(f"PostgreSQL exited at start; its log:\n{self._log_text()}")

    # -- databases -------------------------------------------------------------------------

    def create_database(self) -> str:
        """A new, empty database owned by the store's role; returns its name."""
        with self._names_lock:
            name = f"cxprobe_test_{next(self._names)}"
        self._admin_sql(f"CREATE DATABASE {name} OWNER {STORE_ROLE}")
        return name

    def drop_database(self, name: str) -> None:
        self._admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def url(self, database: str, *, password: str | None = None, port: int | None = None) -> str:
        """The store URL of ``database`` (the store's role and password, unless given)."""
        secret = self.password if password is None else password
        return (
            f"postgresql+asyncpg://{STORE_ROLE}:{secret}@{self.host}:{port or self.port}/{database}"
        )

    def sql(self, database: str, statement: str) -> list[tuple[str, ...]]:
        """Run one statement as the superuser; its rows as text (psql's unaligned output)."""
        output = self._run(
            [
                str(self.binaries / "psql"),
                "--no-psqlrc",
                "--quiet",
                "--tuples-only",
                "--no-align",
                "--field-separator=\x1f",
                "--set=ON_ERROR_STOP=1",
                "--host",
                str(self.directory),
                "--port",
                str(self.port),
                "--username",
                ADMIN_ROLE,
                "--dbname",
                database,
                "--command",
                statement,
            ]
        )
        return [tuple(line.split("\x1f")) for line in output.splitlines() if line]

    def _admin_sql(self, statement: str) -> None:
        self.sql("postgres", statement)

    # -- helpers ---------------------------------------------------------------------------

    def _as_account(self) -> dict[str, Any]:
        if not self._account.switches:
            return {}
        return {"user": self._account.uid, "group": self._account.gid, "extra_groups": []}

    def _run(self, command: Sequence[str]) -> str:
        done = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            cwd=self.directory,
            timeout=START_TIMEOUT,
            check=False,
            **self._as_account(),
        )
        if done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command[:1])} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )
        # str: the keyword arguments spread from a dict hide text=True from the type checker.
        return str(done.stdout)

    def _log_text(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return self.log.read_text(errors="replace")
        return ""


def _pump_log(stream: IO[str] | None, path: Path, ready: threading.Event) -> None:
    """Copy the server's log to ``path`` (the pipe must be drained, or the server blocks on
    logging) and set ``ready`` on its ready line, or when the log ends."""
    if stream is None:
        ready.set()
        return
    with path.open("a", encoding="utf-8") as log:
        for line in stream:
            log.write(line)
            log.flush()
            if _READY in line:
                ready.set()
    ready.set()


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()

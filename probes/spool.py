"""Spool files: a received message kept on disk, not in memory, until the store has it.

A channel that receives large messages (email) writes each one into its own file under a
spool directory as the bytes arrive, hashing them (SHA-256) on the way, and hands the message
on by reference (:class:`SpooledFile`, carried by :class:`probes.base.Evidence`); the store
copies the file in chunks and the file is removed once every consumer is done with it.

Durability, in this order:

1. the bytes go to ``<name>.part``, which is fsynced;
2. ``<name>.json`` records their size, digest and the channel's metadata (for a message:
   where it was read from, when), and is fsynced;
3. ``<name>.part`` is renamed ``<name>.msg`` and the directory fsynced.

A ``.msg`` file with its ``.json`` is therefore complete and durable; the channel considers the
message received only then. A process that stops before the store has it leaves the pair
behind, and the next process finds it with :meth:`Spool.leftovers` and hands it on again
(consumers deduplicate). A ``.part`` file is an interrupted download: the message was never
considered received and is fetched again, so leftovers discard it.

Blocking file I/O: call :meth:`SpoolWriter.write`, :meth:`SpoolWriter.commit`,
:meth:`Spool.leftovers` and :meth:`SpooledFile.read` from a worker thread
(``asyncio.to_thread``); :meth:`SpooledFile.hold` and :meth:`SpooledFile.done` are for the
event loop (an unlink).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

#: Bytes read from a spool file at a time when it is copied (to the store, to an export).
SPOOL_READ_BYTES = 1024 * 1024
_PART, _META, _DONE = ".part", ".json", ".msg"


@dataclass(eq=False)
class SpooledFile:
    """A complete spool file: its path, size and SHA-256, and the channel's metadata.

    Held by everyone who may still need it: created with one hold (its creator's);
    :meth:`hold` adds one per consumer it is handed to, :meth:`done` removes one, and the
    last :meth:`done` deletes the file.
    """

    path: Path
    size: int
    sha256: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    _holds: int = 1

    @property
    def removed(self) -> bool:
        return self._holds <= 0

    def hold(self) -> None:
        if self._holds <= 0:
            raise RuntimeError(f"spool file {self.path} was already removed")
        self._holds += 1

    def done(self) -> None:
        """One holder no longer needs the file (it stored it, or dropped the message)."""
        if self._holds <= 0:
            return
        self._holds -= 1
        if self._holds == 0:
            for path in (self.path, self.path.with_suffix(_META)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def read(self, limit: int) -> bytes:
        """The first ``limit`` bytes (blocking)."""
        with self.path.open("rb") as file:
            return file.read(limit)

    def chunks(self, size: int = SPOOL_READ_BYTES) -> Generator[bytes, None, None]:
        """The content in pieces of ``size`` bytes (blocking; keep one piece at a time)."""
        with self.path.open("rb") as file:
            while piece := file.read(size):
                yield piece


class SpoolWriter:
    """One message being written into the spool (see the module's steps)."""

    def __init__(self, part: Path, meta: Mapping[str, Any]) -> None:
        self._part = part
        self._meta = dict(meta)
        self._digest = hashlib.sha256()
        self._size = 0
        self._file: BinaryIO | None = part.open("xb")

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise RuntimeError(f"spool file {self._part} is closed")
        self._file.write(data)
        self._digest.update(data)
        self._size += len(data)

    def commit(self, **meta: Any) -> SpooledFile:
        """Make the file durable and complete (``meta`` added to its metadata)."""
        if self._file is None:
            raise RuntimeError(f"spool file {self._part} is closed")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        sha256 = self._digest.hexdigest()
        described = {**self._meta, **meta, "size": self._size, "sha256": sha256}
        meta_path = self._part.with_suffix(_META)
        with meta_path.open("w", encoding="utf-8") as file:
            json.dump(described, file)
            file.flush()
            os.fsync(file.fileno())
        done = self._part.with_suffix(_DONE)
        self._part.rename(done)
        _fsync_directory(done.parent)
        return SpooledFile(done, self._size, sha256, described)

    def abort(self) -> None:
        """Forget the file (an interrupted download: the message is fetched again)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self._part.unlink()


@dataclass(frozen=True)
class Spool:
    """A spool directory (created on first use)."""

    directory: Path

    def create(self, stem: str, meta: Mapping[str, Any]) -> SpoolWriter:
        """A new spool file named after ``stem`` (plus a random suffix: the same message may
        be fetched twice, by a search and by new mail)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return SpoolWriter(self.directory / f"{stem}.{secrets.token_hex(6)}{_PART}", meta)

    def leftovers(self) -> tuple[list[SpooledFile], list[str]]:
        """Complete files a previous process left behind, oldest first, and what is wrong
        with those whose metadata cannot be read (kept for inspection, never deleted).
        Interrupted downloads, and metadata whose file is gone, are removed."""
        if not self.directory.is_dir():
            return [], []
        found: list[tuple[int, SpooledFile]] = []
        unreadable: list[str] = []
        for path in sorted(self.directory.iterdir()):
            interrupted = path.suffix == _PART
            orphaned = path.suffix == _META and not path.with_suffix(_DONE).exists()
            if interrupted or orphaned:
                path.unlink(missing_ok=True)
            elif path.suffix == _DONE:
                try:
                    meta = json.loads(path.with_suffix(_META).read_text(encoding="utf-8"))
                    spooled = SpooledFile(path, int(meta["size"]), str(meta["sha256"]), meta)
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    unreadable.append(f"{path} ({type(exc).__name__}: {exc})")
                    continue
                found.append((path.stat().st_mtime_ns, spooled))
        return [spooled for _, spooled in sorted(found, key=lambda item: item[0])], unreadable


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories cannot be
    opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


__all__ = ["SPOOL_READ_BYTES", "Spool", "SpoolWriter", "SpooledFile"]

"""Spool files (probes/spool.py): complete and durable before use, found again after a restart,
removed after their last holder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from probes.spool import Spool, SpooledFile


def spool_message(spool: Spool, stem: str, content: bytes, **meta: object) -> SpooledFile:
    writer = spool.create(stem, {"uid": 7, **meta})
    for start in range(0, len(content), 1000):
        writer.write(content[start : start + 1000])
    return writer.commit(observed_at="2026-12-03T09:00:00+00:00")


def test_a_committed_file_holds_the_bytes_with_their_size_and_digest(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool" / "probe")  # created on first use
    content = os.urandom(5000)

    spooled = spool_message(spool, "7-41", content)

    assert spooled.path.read_bytes() == content
    assert spooled.size == len(content)
    assert spooled.sha256 == hashlib.sha256(content).hexdigest()
    assert spooled.meta["uid"] == 7 and spooled.meta["observed_at"].startswith("2026-12-03")
    assert sorted(p.suffix for p in spool.directory.iterdir()) == [".json", ".msg"]
    assert spooled.read(10) == content[:10]
    assert b"".join(spooled.chunks(999)) == content
    assert max(len(piece) for piece in spooled.chunks(999)) == 999


def test_the_file_is_removed_after_its_last_holder(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spooled = spool_message(spool, "7-41", b"hello")
    spooled.hold()  # a conversation took it

    spooled.done()  # the watcher lets go of its own hold
    assert spooled.path.exists() and not spooled.removed

    spooled.done()  # the conversation's reply was stored
    assert spooled.removed and list(tmp_path.iterdir()) == []
    spooled.done()  # harmless
    with pytest.raises(RuntimeError, match="already removed"):
        spooled.hold()


def test_leftovers_are_complete_files_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    first = spool_message(spool, "7-41", b"first")
    second = spool_message(spool, "7-42", b"second", uid=8)
    os.utime(first.path, ns=(1, 1))
    # A download the previous process was killed in the middle of.
    (tmp_path / "7-43.0123456789ab.part").write_bytes(b"half a mess")

    found, unreadable = Spool(tmp_path).leftovers()

    assert [(s.path, s.size, s.sha256, s.meta["uid"]) for s in found] == [
        (first.path, 5, first.sha256, 7),
        (second.path, 6, second.sha256, 8),
    ]
    assert unreadable == []
    assert not any(p.suffix == ".part" for p in tmp_path.iterdir()), "interrupted: fetched again"


def test_a_leftover_without_readable_metadata_is_kept_and_reported(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spooled = spool_message(spool, "7-41", b"evidence")
    spooled.path.with_suffix(".json").write_text("{not json")

    found, unreadable = spool.leftovers()

    assert found == []
    assert len(unreadable) == 1 and str(spooled.path) in unreadable[0]
    assert spooled.path.read_bytes() == b"evidence", "never deleted unread"


def test_metadata_whose_file_is_gone_is_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spooled = spool_message(spool, "7-41", b"evidence")
    spooled.path.unlink()

    assert spool.leftovers() == ([], [])
    assert list(tmp_path.iterdir()) == []


def test_an_aborted_download_leaves_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    writer = spool.create("7-41", {})
    writer.write(b"partial")

    writer.abort()

    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(b"more")


def test_a_missing_spool_directory_has_no_leftovers(tmp_path: Path) -> None:
    assert Spool(tmp_path / "never-used").leftovers() == ([], [])

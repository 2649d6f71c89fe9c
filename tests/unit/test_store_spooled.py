"""Spooled evidence in the store (revision 0009): a reply's raw message copied from its spool
file in chunks, read back whole or piece by piece, sealed and exported like evidence held in
memory. Parametrised over SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pytest

from cxprobe.store.database import EvidenceStore, StoredArtifact
from cxprobe.store.schema import StoreError
from probes.base import Evidence, Reply
from probes.spool import SPOOL_READ_BYTES, Spool, SpooledFile
from tests.stores import StoreBackend
from tests.unit.test_store import SLOT, new_result, reply, sent


def spooled(tmp_path: Path, content: bytes) -> SpooledFile:
    writer = Spool(tmp_path / "spool").create("7-41", {"uid": 41})
    writer.write(content)
    return writer.commit()


def with_file(channel_reply: Reply, spooled_file: SpooledFile) -> Reply:
    return dataclasses.replace(
        channel_reply, evidence=Evidence("email", "message/rfc822", file=spooled_file)
    )


async def open_run(store: EvidenceStore, minute: int = 0) -> str:
    result = new_result(slot=SLOT + timedelta(minutes=minute))
    await store.claim_slot(result)
    await store.record_sent(result.run_id, sent(), result.expected_queue)
    return result.run_id


async def test_a_spooled_reply_is_stored_in_chunks_and_read_back_whole(
    store_backend: StoreBackend, tmp_path: Path
) -> None:
    content = os.urandom(2 * SPOOL_READ_BYTES + 12345)
    file = spooled(tmp_path, content)
    channel_reply, observed = reply("<big@acme.test>", 60)
    async with EvidenceStore(store_backend.url) as store:
        run_id = await open_run(store)

        assert await store.record_reply(run_id, with_file(channel_reply, file), observed)

        (message,) = [m for m in await store.messages(run_id) if m.direction == "in"]
        (artifact,) = message.artifacts
        assert (artifact.size, artifact.sha256) == (
            len(content),
            hashlib.sha256(content).hexdigest(),
        )
        assert await store.artifact_content(artifact.id) == content
        pieces = [piece async for piece in store.artifact_pieces(artifact.id)]
        assert [len(piece) for piece in pieces] == [SPOOL_READ_BYTES, SPOOL_READ_BYTES, 12345]
    assert await store_backend.query(
        "SELECT length(content) FROM artifacts WHERE id = " + str(artifact.id)
    ) == [(0,)]
    assert await store_backend.query(
        "SELECT count(*) FROM artifact_chunks WHERE artifact_id = " + str(artifact.id)
    ) == [(3,)]
    assert file.removed and not file.path.exists(), "stored: the spool file is removed"


async def test_a_spooled_reply_seals_what_the_same_bytes_in_memory_seal(
    store_backend: StoreBackend, tmp_path: Path
) -> None:
    """The chain seals an artifact by kind, media type, SHA-256 and size: the same for a small
    reply whether it was held in memory (before revision 0009) or spooled."""
    channel_reply, observed = reply("<small@acme.test>", 60)
    assert channel_reply.evidence is not None
    raw = channel_reply.evidence.content
    async with EvidenceStore(store_backend.url) as store:
        in_memory, from_file = await open_run(store), await open_run(store, 1)
        await store.record_reply(in_memory, channel_reply, observed)
        await store.record_reply(
            from_file, with_file(channel_reply, spooled(tmp_path, raw)), observed
        )

        def sealed(artifacts: list[StoredArtifact]) -> list[tuple[str, str, str, int]]:
            return sorted((a.kind, a.media_type, a.sha256, a.size) for a in artifacts)

        assert sealed(await store.artifacts(in_memory)) == sealed(await store.artifacts(from_file))
        (message,) = [m for m in await store.messages(from_file) if m.direction == "in"]
        assert await store.artifact_content(message.artifacts[0].id) == raw


async def test_a_reply_stored_before_releases_its_spool_file(
    store_backend: StoreBackend, tmp_path: Path
) -> None:
    channel_reply, observed = reply("<twice@acme.test>", 60)
    async with EvidenceStore(store_backend.url) as store:
        run_id = await open_run(store)
        await store.record_reply(run_id, channel_reply, observed)
        again = spooled(tmp_path, b"the same reply, fetched again after a restart")

        assert not await store.record_reply(run_id, with_file(channel_reply, again), observed)

    assert again.removed and not again.path.exists()


async def test_a_damaged_spool_file_is_refused_and_kept(
    store_backend: StoreBackend, tmp_path: Path
) -> None:
    file = spooled(tmp_path, b"what the server sent")
    file.path.write_bytes(b"what the disk returns")  # bit rot, a truncation, an edit
    channel_reply, observed = reply("<damaged@acme.test>", 60)
    async with EvidenceStore(store_backend.url) as store:
        run_id = await open_run(store)

        with pytest.raises(StoreError, match="no longer matches what was received"):
            await store.record_reply(run_id, with_file(channel_reply, file), observed)

        assert [m.direction for m in await store.messages(run_id)] == ["out"], "nothing stored"
    assert file.path.exists() and not file.removed, "kept for inspection and a later attempt"

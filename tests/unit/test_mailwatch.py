"""The IMAP watcher's pure helpers: search criteria, FETCH response splitting, back-off."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aioimaplib
import pytest

from probes.email import watcher as mailwatch


def test_or_chains_any_number_of_criteria() -> None:
    assert mailwatch._or_all([]) == []
    assert mailwatch._or_all([["TEXT", "a"]]) == ["TEXT", "a"]
    assert mailwatch._or_all([["A"], ["B"], ["C"]]) == ["OR", "A", "OR", "B", "C"]


def test_key_criteria_search_headers_for_ids_and_text_for_tokens() -> None:
    criteria = mailwatch._key_criteria({"<m@x.test>", "CXP-0123456789"})
    assert criteria == [
        ["HEADER", "In-Reply-To", '"<m@x.test>"'],
        ["HEADER", "References", '"<m@x.test>"'],
        ["TEXT", '"CXP-0123456789"'],
    ]


def test_fetch_items_pair_metadata_with_literals() -> None:
    lines = [
        b'1 FETCH (UID 7 INTERNALDATE "22-Nov-2026 08:06:38 +0000" BODY[] {5}',
        bytearray(b"hello"),
        b")",
        b"2 FETCH (FLAGS (\\Seen))",  # unsolicited: no body
        b"3 FETCH (BODY[] {3}",
        bytearray(b"bye"),
        b' UID 9 INTERNALDATE "22-Nov-2026 08:06:39 +0000")',
    ]
    items = list(mailwatch._fetch_items(lines))
    assert [body for _, body in items] == [b"hello", None, b"bye"]
    assert mailwatch._first_int(mailwatch._UID, [items[0][0]]) == 7
    assert mailwatch._first_int(mailwatch._UID, [items[2][0]]) == 9
    assert mailwatch._INTERNALDATE.search(items[2][0]) is not None


@pytest.mark.parametrize("attempt", range(12))
def test_backoff_grows_with_jitter_and_is_capped(attempt: int) -> None:
    cap = 5.0
    ceiling = min(cap, mailwatch.BACKOFF_START_SECONDS * 2**attempt)
    for _ in range(20):
        assert ceiling / 2 <= mailwatch._backoff(attempt, cap) <= ceiling <= cap


def test_server_pushes() -> None:
    assert mailwatch._has_new_mail([b"3 EXISTS", b"1 RECENT"])
    assert not mailwatch._has_new_mail([b"OK Still here"])
    assert mailwatch._says_bye([b"BYE Server shutting down."])
    assert not mailwatch._says_bye([b"3 EXISTS"])


async def test_new_mail_announced_during_an_async_command_is_noted() -> None:
    """aioimaplib drops an untagged EXISTS that arrives while UID SEARCH is pending; the
    watcher must still learn of it, or the message waits for the next IDLE renewal."""
    protocol = aioimaplib.IMAP4ClientProtocol(asyncio.get_running_loop())
    protocol.state = "SELECTED"
    search = aioimaplib.Command("SEARCH", "A1", "UID", "1:*", prefix="UID", loop=protocol.loop)
    protocol.pending_async_commands["SEARCH"] = search
    announced: list[bool] = []
    client = SimpleNamespace(protocol=protocol)
    mailwatch._note_announcements(client, lambda: announced.append(True))

    protocol._handle_line(b"* SEARCH 4", None)
    assert announced == []
    protocol._handle_line(b"* 5 EXISTS", None)
    assert announced == [True]
    assert search.response.lines == [b"4"]  # aioimaplib dropped the EXISTS itself


def test_size_batches_keep_large_messages_alone_and_small_ones_together() -> None:
    sizes = {1: 10, 2: 20, 3: 500, 4: 30, 5: 40}
    assert list(mailwatch._size_batches([1, 2, 3, 4, 5], sizes, 100)) == [[1, 2], [3], [4, 5]]
    # A size the server did not give counts as the whole budget: fetched alone.
    assert list(mailwatch._size_batches([1, 9, 2], sizes, 100)) == [[1], [9], [2]]


def test_header_block_stops_at_the_first_blank_line() -> None:
    assert mailwatch._header_block(b"A: 1\r\nB: 2\r\n\r\nbody") == b"A: 1\r\nB: 2\r\n\r\n"
    assert mailwatch._header_block(b"A: 1\n\nbody\r\n\r\nmore") == b"A: 1\n\n"

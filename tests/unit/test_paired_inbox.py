"""A pair (the probe's id, the brand's id) holds one open conversation: a run that finds every
pair with its brand open waits for one to be released, up to its wait, then gives up."""

from __future__ import annotations

import asyncio
import logging

import pytest

from probes.base import MemoryChannelState, Reply
from probes.inbox import InboxConversation, PairedInbox

BRAND = "+442071234568"


async def ignore(reply: Reply) -> None:
    raise AssertionError(f"no reply is routed here: {reply}")


@pytest.fixture
def inbox() -> PairedInbox:
    return PairedInbox(MemoryChannelState(), ignore, logging.getLogger("cxprobe.test"))


async def test_each_number_holds_one_conversation_with_a_brand(inbox: PairedInbox) -> None:
    first, second = InboxConversation("a"), InboxConversation("b")
    numbers = ["+1", "+2"]
    assert await inbox.claim(numbers, BRAND, first, wait=0) == "+1"
    assert await inbox.claim(numbers, BRAND, second, wait=0) == "+2"
    # Another brand is another pair.
    assert await inbox.claim(numbers, "+449999", InboxConversation("c"), wait=0) == "+1"
    with pytest.raises(LookupError):
        await inbox.claim(numbers, BRAND, InboxConversation("d"), wait=0)


async def test_a_run_waits_for_the_pair_and_takes_it_when_released(inbox: PairedInbox) -> None:
    holder = InboxConversation("a")
    await inbox.claim(["+1"], BRAND, holder, wait=0)
    waiting = [InboxConversation("b"), InboxConversation("c")]
    claims = [asyncio.create_task(inbox.claim(["+1"], BRAND, c, wait=30)) for c in waiting]
    await asyncio.sleep(0)  # the claims run until they wait
    assert inbox.waiting == 2
    assert not any(claim.done() for claim in claims)
    await inbox.release(("+1", BRAND), holder)
    # One waiter takes the pair; the other waits on for it.
    done, pending = await asyncio.wait(claims, return_when=asyncio.FIRST_COMPLETED)
    assert [task.result() for task in done] == ["+1"] and len(pending) == 1
    assert inbox.waiting == 1
    taker = waiting[claims.index(done.pop())]
    assert dict(inbox.open_pairs()) == {("+1", BRAND): taker}
    await inbox.release(("+1", BRAND), taker)
    assert await pending.pop() == "+1"
    assert inbox.waiting == 0


async def test_a_release_by_another_brand_wakes_no_one(inbox: PairedInbox) -> None:
    await inbox.claim(["+1"], BRAND, InboxConversation("a"), wait=0)
    other = InboxConversation("b")
    await inbox.claim(["+1"], "+449999", other, wait=0)
    claim = asyncio.create_task(inbox.claim(["+1"], BRAND, InboxConversation("c"), wait=30))
    await asyncio.sleep(0)
    assert inbox.waiting == 1
    await inbox.release(("+1", "+449999"), other)
    for _ in range(5):
        await asyncio.sleep(0)
    assert not claim.done()
    claim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await claim
    assert inbox.waiting == 0


async def test_a_pair_never_released_in_time_is_a_lookup_error(inbox: PairedInbox) -> None:
    holder = InboxConversation("a")
    await inbox.claim(["+1"], BRAND, holder, wait=0)
    with pytest.raises(LookupError):
        await inbox.claim(["+1"], BRAND, InboxConversation("b"), wait=0.05)
    assert inbox.waiting == 0
    assert dict(inbox.open_pairs()) == {("+1", BRAND): holder}


async def test_monitors_sharing_the_state_never_open_one_pair_at_once() -> None:
    """Two monitors on one store: a pair the other's run holds is not free here."""
    shared = MemoryChannelState()
    here, there = (PairedInbox(shared, ignore, logging.getLogger("cxprobe.test")) for _ in range(2))
    here.REMOTE_LOOK_SECONDS = 0.01  # released there: seen at the next look
    theirs = InboxConversation("theirs")
    assert await there.claim(["+1"], BRAND, theirs, wait=0) == "+1"
    assert await here.claim(["+1", "+2"], BRAND, InboxConversation("a"), wait=0) == "+2"
    assert shared.holds == {f"pair:+1:{BRAND}": "theirs", f"pair:+2:{BRAND}": "a"}
    with pytest.raises(LookupError):
        await here.claim(["+1"], BRAND, InboxConversation("b"), wait=0)
    assert dict(here.open_pairs()).keys() == {("+2", BRAND)}  # the refused pair is given back
    waiting = asyncio.create_task(here.claim(["+1"], BRAND, InboxConversation("c"), wait=30))
    await asyncio.sleep(0)
    assert here.waiting == 1 and not waiting.done()
    await there.release(("+1", BRAND), theirs)
    assert await waiting == "+1"
    assert shared.holds[f"pair:+1:{BRAND}"] == "c"


async def test_a_resumed_run_takes_its_pair_back_unless_another_run_opened_it() -> None:
    """A shutdown released the pair; the monitor that resumes the run (this one restarted, or
    the other of the pair) holds it again, or learns that a new run has it now."""
    shared = MemoryChannelState()
    resumed, newcomer = (
        PairedInbox(shared, ignore, logging.getLogger("cxprobe.test")) for _ in range(2)
    )
    await resumed.attach(("+1", BRAND), InboxConversation("open-run"))
    assert shared.holds == {f"pair:+1:{BRAND}": "open-run"}
    with pytest.raises(LookupError):
        await newcomer.claim(["+1"], BRAND, InboxConversation("next"), wait=0)
    await newcomer.claim(["+2"], BRAND, InboxConversation("next"), wait=0)
    with pytest.raises(LookupError):
        await resumed.attach(("+2", BRAND), InboxConversation("another-open-run"))
    assert dict(resumed.open_pairs()).keys() == {("+1", BRAND)}  # the refused one given back

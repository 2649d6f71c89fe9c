"""A browser context with its one page (a "tab"), the unit the web-chat channel opens, lends to
one chat at a time and, with ``browser.reuse_contexts``, keeps warm for the next chat.

Why reuse at all: on the sandbox chat site a new page costs about 1.4 CPU-seconds in Chromium
(a renderer process started and torn down, the browser's side of it), against about 0.5 for
the chat itself (BENCHMARKS.md, issue 15). A page kept between chats keeps its renderer.

What a new customer must not inherit, and how :meth:`Tab.reset` clears it before the tab is
lent again: the chat page is unloaded (``about:blank``), then for every origin any frame of the
tab was on, everything Chromium keeps per origin (``Storage.clearDataForOrigin`` with ``all``:
localStorage, IndexedDB, Cache Storage, service workers, file systems, ...) and the tab's
sessionStorage (cleared in each frame before the page is left: it is kept per tab, out of
the Storage domain's reach); every cookie of the context, the HTTP cache, the tab's
history (``Page.resetNavigationHistory``), granted permissions and ``window.name``. A tab is
never reused when that cannot be vouched for: a chat that failed or whose page crashed, a reset
that failed, a frame whose origin left the page before the end (its sessionStorage is out of
reach), a pop-up window, a tab that had a frame on another host (its partitioned third-party
storage is not enumerable from here), a tab past ``browser.reuse_limit`` chats. Tabs are only
reused for the origin they served (``key``), so nothing, cleared or not, crosses from one
target to another.

The binding the in-page observer reports through is exposed once per tab (a binding cannot be
removed from a context); it hands each report to the conversation the tab is lent to, which
accepts only reports carrying its own nonce.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from playwright.async_api import BrowserContext, CDPSession, Dialog, Frame, Page

#: Seconds allowed for the whole reset between two chats; longer, and the tab is discarded.
RESET_TIMEOUT = 5.0


class TabUser(Protocol):
    """What a tab hands events to: the conversation it is lent to."""

    def on_report(self, source: Mapping[str, Any], event: Mapping[str, Any]) -> None: ...
    async def on_dialog(self, dialog: Dialog) -> None: ...
    async def on_new_page(self, page: Page) -> None: ...
    def on_crash(self) -> None: ...


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL; None for about:, data:, blob: and the like."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc.lower()}"


class Tab:
    """One browser context and its page; see the module docstring."""

    def __init__(self, context: BrowserContext, page: Page, cdp: CDPSession, key: str) -> None:
        self.context = context
        self.page = page
        self.key = key
        self.binding = f"__cxprobe_{secrets.token_hex(8)}"
        self.chats = 0
        self.poisoned = False
        self._cdp = cdp
        self._user: TabUser | None = None
        self._origins: set[str] = set()
        self._blocked: list[str] | None = None
        self._popups = 0

    @classmethod
    async def open(cls, context: BrowserContext, key: str) -> Tab:
        """A tab on a new context: its page, its binding and its handlers."""
        page = await context.new_page()
        cdp = await context.new_cdp_session(page)
        tab = cls(context, page, cdp, key)
        await context.expose_binding(tab.binding, tab._on_report)
        context.on("page", tab._on_new_page)
        page.on("dialog", tab._on_dialog)
        page.on("crash", lambda _: tab._on_crash())
        page.on("framenavigated", tab._on_frame)
        await cdp.send("Network.enable")
        return tab

    # -- lending ---------------------------------------------------------------------------

    async def lend(self, user: TabUser, blocked: list[str]) -> None:
        """Hand the tab to a conversation, with the URL patterns its target blocks."""
        self._user = user
        self.chats += 1
        if blocked != (self._blocked or []):
            # In Chromium itself (CDP): routing requests through Playwright would cost a
            # round trip to Python per request.
            await self._cdp.send("Network.setBlockedURLs", {"urls": blocked})
        self._blocked = blocked

    def give_back(self) -> None:
        self._user = None

    def why_not_reusable(self) -> str | None:
        """Why the tab may not serve another chat, whatever the chat's outcome; None if it may."""
        if self.poisoned:
            return "its page crashed"
        if self.page.is_closed():
            return "its page was closed"
        if self._popups:
            return "the chat opened a pop-up window, whose storage is not tracked"
        framed = self._framed_origins()
        gone = self._origins - framed
        if gone:
            return (
                f"a frame on {min(gone)} went away during the chat: its sessionStorage can only "
                "be cleared from a frame on that origin"
            )
        if len({urlsplit(origin).hostname for origin in framed}) > 1:
            return "it had frames on more than one host, whose storage cannot all be cleared"
        return None

    def _framed_origins(self) -> set[str]:
        origins = (origin_of(frame.url) for frame in self.page.frames)
        return {origin for origin in origins if origin is not None}

    async def reset(self) -> None:
        """Clear what the next customer must not inherit; raises if any part fails.

        Call only when :meth:`why_not_reusable` is None: every origin the tab was on still has
        a frame, in which its sessionStorage (kept per tab, beyond the Storage domain's reach)
        is cleared before the page is left.
        """
        async with asyncio.timeout(RESET_TIMEOUT):
            await asyncio.gather(
                *(
                    frame.evaluate("() => sessionStorage.clear()")
                    for frame in self.page.frames
                    if origin_of(frame.url) is not None
                )
            )
            origins = sorted(self._origins | self._framed_origins())
            await self.page.goto("about:blank")
            cdp = self._cdp
            await asyncio.gather(
                *(
                    cdp.send("Storage.clearDataForOrigin", {"origin": o, "storageTypes": "all"})
                    for o in origins
                ),
                cdp.send("Network.clearBrowserCookies"),
                cdp.send("Network.clearBrowserCache"),
                cdp.send("Page.resetNavigationHistory"),
                self.context.clear_permissions(),
                self.page.evaluate("window.name = ''"),
            )
            self._origins.clear()

    async def close(self) -> None:
        await self.context.close()

    # -- events, handed to the conversation the tab is lent to ------------------------------

    def _remember(self, url: str) -> None:
        origin = origin_of(url)
        if origin is not None:
            self._origins.add(origin)

    def _on_frame(self, frame: Frame) -> None:
        self._remember(frame.url)

    def _on_report(self, source: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        if self._user is not None:
            self._user.on_report(source, event)

    async def _on_dialog(self, dialog: Dialog) -> None:
        if self._user is not None:
            await self._user.on_dialog(dialog)
        else:
            await dialog.dismiss()

    async def _on_new_page(self, page: Page) -> None:
        if page is self.page:
            return
        self._popups += 1
        if self._user is not None:
            await self._user.on_new_page(page)
        else:
            await page.close()

    def _on_crash(self) -> None:
        self.poisoned = True
        if self._user is not None:
            self._user.on_crash()

"""The web-chat channel: a headless Chromium, driven by Playwright, chats with a site's widget.

One Chromium per monitor process (Debian's, launched with ``executable_path``), one browser
context with one page (a :class:`~probes.webchat.tab.Tab`) per conversation, at most
``browser.max_contexts`` chats at once. With ``browser.reuse_contexts`` (the default) a tab that
served a chat cleanly is cleared of everything a new customer must not inherit (cookies,
storage, cache, history, permissions) and kept for the next chat on the same site: a new page
costs Chromium a renderer process, most of a chat's CPU (see ``tab.py`` for what is cleared and
when a tab is discarded instead). The widget is described in config
(:mod:`probes.webchat.settings`): page, optional iframe, cookie banner, launcher, pre-chat form,
message box, send button, and how to read the message list.

Timing (DESIGN.md "Timing semantics"): before the first message is sent, a MutationObserver is
installed on the message list (``observer.js`` beside this module). It stamps the send (the
click or Enter, in the capture phase) and each new message with ``performance.timeOrigin +
performance.now()`` in the page, in the task that rendered it, and pushes both to Python through
a binding exposed on the context (one report per observer callback). So ``Sent.at`` and
``Reply.arrived_at`` are page times (sub-millisecond, no polling; ``timing_method``
``"page-mutation-observer"``), and ``Reply.observed_at`` is when Python received the event.
Nothing waits with ``locator.wait_for`` to time a message: its back-off polling adds up to half
a second.

Who wrote a message: the config's ``brand`` selector tells the brand's messages from the
customer's; a ``bot`` selector, ``bot_marker`` element or ``bot_author`` pattern marks a bot,
other brand messages are a human's; ``system`` notices (an agent joining) are recorded as
``auto`` with the header ``Chat-Event: handoff`` when they match ``handoff``. Every reply carries
the widget's team label (``Team`` header) at the moment it arrived, for the target's queue
matchers.

Failures: a page that does not load or answers an HTTP error, a step whose element never shows
(widget missing, selectors out of date) and a browser or page that dies mid-chat are
:class:`ChannelUnavailable` with the step and the reason. A dead browser is relaunched for the
next chat. Dialogs are dismissed and pop-up windows closed (both noted in the transcript). At
the end, and after a failure, the conversation hands back a transcript and a screenshot as
evidence, and leaves the chat politely where the config says how. The screenshot is a JPEG
clipped to the widget (``browser.screenshot_format``, the address's ``screenshot``); what the
widget does not need (fonts and media by default, the address's ``block``) is refused inside
Chromium, without a round trip to Python per request.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, ClassVar

from playwright.async_api import (
    Browser,
    Dialog,
    ElementHandle,
    FrameLocator,
    Locator,
    Page,
    Playwright,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from probes.base import (
    ChannelServices,
    ChannelType,
    ChannelUnavailable,
    Contact,
    DefaultSla,
    Evidence,
    Methodology,
    ProbeError,
    Reply,
    Responder,
    Sent,
    per_address,
)
from probes.errors import describe_error
from probes.webchat.settings import (
    CHROMIUM_FLAGS,
    BrowserSettings,
    WebchatAddress,
    WebchatChannelSettings,
)
from probes.webchat.tab import Tab, origin_of

TIMING_METHOD = "page-mutation-observer"
#: Fallback t0 when the page did not report the send (the widget swallowed the event).
FALLBACK_TIMING = "python-after-send"
#: How long to wait for the page to report a send it was asked to make.
SEND_MARK_WAIT = 2.0
#: Customer-looking messages tolerated beyond those sent (a widget echoing one twice) before
#: the brand selector is reported as out of date.
DRIFT_ALLOWANCE = 1
#: Bound on each step of leaving the chat and of taking evidence at the end.
CLOSING_STEP_TIMEOUT = 5.0
#: Text of a typing indicator or status line (English and a few common widget languages).
TYPING_INDICATOR = re.compile(
    r"\btyping\b|\bschreibt\b|\bécrit\b|\bescribiendo\b|(…|\.\.\.)\s*$", re.IGNORECASE
)


def observer_script() -> str:
    """The in-page timer, installed on the message list of every conversation."""
    return resources.files("probes.webchat").joinpath("observer.js").read_text(encoding="utf-8")


def page_time(epoch_ms: float) -> datetime:
    """A page timestamp (epoch milliseconds, fractional) as a UTC datetime."""
    return datetime.fromtimestamp(epoch_ms / 1000.0, UTC)


@dataclass(frozen=True)
class TranscriptLine:
    at: datetime
    role: str  # customer, bot, agent, system, note
    author: str
    text: str


class WebchatChannel:
    """The ``webchat`` channel driver: one Chromium, a context per conversation."""

    kind: ClassVar[str] = "webchat"

    def __init__(self, settings: WebchatChannelSettings, services: ChannelServices) -> None:
        self.settings = settings
        self.browser_settings: BrowserSettings = settings.browser
        self._log = services.logger
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._user_agent: str | None = None
        self._launching = asyncio.Lock()
        self._contexts = asyncio.Semaphore(settings.browser.max_contexts)
        self._live: set[WebchatConversation] = set()
        self._idle: list[Tab] = []  # warm tabs, oldest first
        self._reuses = 0
        self._observer = observer_script()
        self._launches = 0
        self._crashes = 0
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, stack: AsyncExitStack, addresses: Sequence[WebchatAddress] = ()) -> None:
        """Chromium starts with the first chat (and again after a crash); stop it with stack."""
        stack.push_async_callback(self._stop)

    async def _stop(self) -> None:
        self._stopping = True
        for conversation in list(self._live):
            await conversation.close()
        self._idle.clear()  # closed with the browser
        if self._browser is not None:
            with suppress(PlaywrightError):  # already gone
                await self._browser.close()
            self._browser = None
        if self._playwright is not None:
            await self._playwright.stop()
            self._playwright = None

    async def _running_browser(self) -> Browser:
        async with self._launching:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self._playwright is None:
                self._playwright = await async_playwright().start()
            options = self.browser_settings
            try:
                browser = await self._playwright.chromium.launch(
                    executable_path=options.executable_path,
                    headless=options.headless,
                    args=[*CHROMIUM_FLAGS, *options.extra_args],
                    timeout=options.launch_timeout * 1000,
                )
            except PlaywrightError as exc:
                raise ChannelUnavailable(
                    f"Chromium ({options.executable_path}) could not start: "
                    f"{_first_line(exc)}. Install Debian's chromium package or set "
                    "channels.webchat.browser.executable_path"
                ) from None
            browser.on("disconnected", self._on_disconnected)
            try:
                self._user_agent = await self._identifiable_user_agent(browser)
            except BaseException:
                # Not kept: close it, or every retry would leave another Chromium running.
                with suppress(PlaywrightError):
                    await browser.close()
                raise
            self._browser = browser
            self._launches += 1
            self._log.info(
                "browser started",
                extra={"browser_version": browser.version, "launches": self._launches},
            )
            return browser

    async def _identifiable_user_agent(self, browser: Browser) -> str | None:
        suffix = self.browser_settings.user_agent_suffix
        if not suffix:
            return None
        page = await browser.new_page()
        try:
            agent: str = await page.evaluate("navigator.userAgent")
        finally:
            await page.context.close()
        return f"{agent} {suffix}"

    def _on_disconnected(self, browser: Browser) -> None:
        if browser is self._browser:
            self._browser = None
            self._idle.clear()
        if self._stopping:
            return
        self._crashes += 1
        self._log.warning(
            "browser exited unexpectedly; it is started again for the next chat",
            extra={"chats_lost": len(self._live)},
        )
        for conversation in list(self._live):
            conversation.fail(ChannelUnavailable("the browser exited mid-chat (crashed or killed)"))

    # -- conversations ---------------------------------------------------------------------

    async def open(self, address: WebchatAddress, token: str) -> WebchatConversation:
        options = self.browser_settings
        try:
            async with asyncio.timeout(options.context_wait):
                await self._contexts.acquire()
        except TimeoutError:
            raise ChannelUnavailable(
                f"no browser context became free within {options.context_wait:g}s "
                f"(max_contexts is {options.max_contexts})"
            ) from None
        key = origin_of(address.url) or address.url
        tab = self._warm_tab(key)
        context = tab.context if tab is not None else None
        try:
            async with asyncio.timeout(options.launch_timeout):
                if tab is None:
                    browser = await self._running_browser()
                    await self._make_room()
                    context = await browser.new_context(
                        locale=options.locale,
                        timezone_id=options.timezone,
                        viewport={"width": options.viewport[0], "height": options.viewport[1]},
                        user_agent=self._user_agent,
                    )
                    context.set_default_timeout(options.step_timeout * 1000)
                    context.set_default_navigation_timeout(options.navigation_timeout * 1000)
                    tab = await Tab.open(context, key)
                conversation = WebchatConversation(self, address, token, tab)
                await tab.lend(conversation, address.blocked_url_patterns())
        except BaseException as exc:
            # Nothing of a chat that could not open may outlive it: its context, its slot.
            if context is not None:
                with suppress(PlaywrightError, TimeoutError):
                    async with asyncio.timeout(CLOSING_STEP_TIMEOUT):
                        await context.close()
            self._contexts.release()
            if isinstance(exc, TimeoutError):
                raise ChannelUnavailable(
                    f"the browser did not open a new chat within {options.launch_timeout:g}s"
                ) from None
            if isinstance(exc, PlaywrightError):
                raise ChannelUnavailable(
                    f"the browser could not open a chat: {_first_line(exc)}"
                ) from None
            raise
        self._live.add(conversation)
        return conversation

    def _warm_tab(self, key: str) -> Tab | None:
        """A warm tab that served this site before, in the running browser, if there is one."""
        browser = self._browser
        for tab in reversed(self._idle):
            if tab.key == key and browser is not None and tab.context.browser is browser:
                self._idle.remove(tab)
                self._reuses += 1
                return tab
        return None

    async def _make_room(self) -> None:
        """Close the oldest warm tabs so that no more than max_contexts contexts exist."""
        while self._idle and len(self._idle) + len(self._live) + 1 > self._max_contexts:
            await self._discard(self._idle.pop(0))

    @property
    def _max_contexts(self) -> int:
        return self.browser_settings.max_contexts

    async def _discard(self, tab: Tab) -> None:
        with suppress(PlaywrightError, TimeoutError):
            async with asyncio.timeout(CLOSING_STEP_TIMEOUT):
                await tab.close()

    async def _give_back(self, tab: Tab, refusal: str | None) -> None:
        """A chat is over: keep its tab warm for the next chat, or close it (and say why)."""
        tab.give_back()
        options = self.browser_settings
        browser = self._browser
        if refusal is None:
            if not options.reuse_contexts:
                refusal = "browser.reuse_contexts is off"
            elif self._stopping or browser is None or tab.context.browser is not browser:
                refusal = "the browser is stopping or was replaced"
            elif tab.chats >= options.reuse_limit:
                refusal = f"it served browser.reuse_limit ({options.reuse_limit}) chats"
            else:
                refusal = tab.why_not_reusable()
        if refusal is None:
            try:
                await tab.reset()
            except (PlaywrightError, TimeoutError) as exc:
                refusal = f"clearing it failed: {_first_line(exc)}"
            else:
                self._idle.append(tab)
                return
        self._log.debug("browser context closed, not reused: %s", refusal)
        await self._discard(tab)

    def _release(self, conversation: WebchatConversation) -> None:
        if conversation in self._live:
            self._live.discard(conversation)
            self._contexts.release()

    async def resume(self, address: WebchatAddress, token: str, sent: Sent) -> WebchatConversation:
        # The channel type is not resumable: a chat lives in the page of the process that
        # started it, and the runner records such runs as interrupted instead.
        raise ChannelUnavailable("a web chat cannot be resumed after a restart")

    def health(self) -> Mapping[str, Any]:
        browser = self._browser
        return {
            "browser": "running"
            if browser is not None and browser.is_connected()
            else "not started",
            "browser_version": browser.version if browser is not None else None,
            "chats_in_progress": len(self._live),
            "max_contexts": self.browser_settings.max_contexts,
            "launches": self._launches,
            "crashes": self._crashes,
            "warm_contexts": len(self._idle),
            "contexts_reused": self._reuses,
        }


class WebchatConversation:
    """One chat in a browser context and page of its own (a tab lent for this chat only)."""

    def __init__(
        self,
        channel: WebchatChannel,
        address: WebchatAddress,
        token: str,
        tab: Tab,
    ) -> None:
        self._channel = channel
        self._log = channel._log
        self.address = address
        self.token = token
        self._tab = tab
        self._page: Page | None = tab.page
        self._options = channel.browser_settings
        self._events: asyncio.Queue[Mapping[str, Any] | ProbeError] = asyncio.Queue()
        self._send_marks: list[float] = []
        self._sends = 0
        self._customer_messages = 0
        self._customer_texts: list[str] = []
        # The page reports through the tab's binding with a nonce only this conversation and
        # its observer know: a script on the page cannot forge messages or timings, and a
        # report meant for an earlier chat in the same tab is not taken for this one's.
        self._binding = tab.binding
        self._nonce = secrets.token_hex(16)
        self._send_marked = asyncio.Event()
        self._sent_ms: float | None = None
        self._transcript: list[TranscriptLine] = []
        self._failure: ProbeError | None = None
        self._observing = False
        self._message_list: ElementHandle | None = None
        self._closed = False
        self._faulted = False  # a step failed or was interrupted: the tab is not reused
        self._bot_author = (
            re.compile(address.messages.bot_author, re.IGNORECASE)
            if address.messages.bot_author
            else None
        )
        self._handoff = (
            re.compile(address.messages.handoff, re.IGNORECASE)
            if address.messages.handoff
            else None
        )

    # -- events from the page --------------------------------------------------------------

    def on_report(self, source: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        if not isinstance(event, Mapping) or event.get("nonce") != self._nonce:
            return  # not our observer
        kind = event.get("kind")
        if kind == "sent":
            at = _page_ms(event)
            if at is not None:
                self._send_marks.append(at)
                self._send_marked.set()
        elif kind == "messages":  # one report per observer callback
            batch = event.get("messages")
            for message in batch if isinstance(batch, list) else ():
                if isinstance(message, Mapping):
                    self._on_message(message)
        elif kind == "message":
            self._on_message(event)

    def _on_message(self, event: Mapping[str, Any]) -> None:
        at = _page_ms(event)
        if at is None:
            return
        role = str(event.get("role", ""))
        author, text = author_and_text(str(event.get("author", "")), str(event.get("text", "")))
        self._transcript.append(TranscriptLine(page_time(at), role, author, text))
        self._events.put_nowait({**event, "author": author, "text": text})

    async def on_dialog(self, dialog: Dialog) -> None:
        self._note(f"dismissed a {dialog.type} dialog: {dialog.message[:200]}")
        with suppress(PlaywrightError):  # the page went away meanwhile
            await dialog.dismiss()

    async def on_new_page(self, page: Page) -> None:
        self._note(f"closed a pop-up window ({page.url[:200]})")
        with suppress(PlaywrightError):
            await page.close()

    def on_crash(self) -> None:
        self.fail(ChannelUnavailable("the chat page crashed"))

    def _note(self, text: str) -> None:
        self._transcript.append(TranscriptLine(datetime.now(UTC), "note", "cxprobe", text))

    def fail(self, error: ProbeError) -> None:
        """The browser or the page died: the run ends with ``error``."""
        if self._failure is None:
            self._failure = error
            self._note(str(error))
            self._events.put_nowait(error)

    # -- the contact -----------------------------------------------------------------------

    async def send(self, contact: Contact) -> Sent:
        if self._observing:
            return await self.follow_up(contact)
        page = self._live_page()
        address = self.address
        await self._step("load the chat page", self._load(page))
        scope: Page | FrameLocator = page.frame_locator(address.frame) if address.frame else page
        await self._dismiss_cookie_banner(scope)
        if address.launcher:
            await self._step(
                f"open the widget (launcher {address.launcher!r})",
                scope.locator(address.launcher).first.click(),
            )
        if address.prechat is not None:
            await self._fill_prechat(scope, contact)
        box = await self._element(scope, address.input, "find the message box (input)")
        send_button = (
            await self._element(scope, address.send, "find the send button")
            if address.send
            else None
        )
        message_list = await self._element(
            scope, address.messages.list, "find the message list (messages.list)"
        )
        await self._step(
            "start timing the chat",
            message_list.evaluate(
                self._channel._observer,
                {"cfg": self._observer_config(), "input": box, "send": send_button},
            ),
        )
        self._observing = True
        self._message_list = message_list
        at_ms, method = await self._type_and_send(scope, contact.text)
        self._sent_ms = at_ms
        return self._sent(contact, at_ms, method)

    async def follow_up(self, contact: Contact) -> Sent:
        if not self._observing:
            return await self.send(contact)
        scope = self._scope()
        at_ms, method = await self._type_and_send(scope, contact.text)
        return self._sent(contact, at_ms, method)

    def _sent(self, contact: Contact, at_ms: float, method: str) -> Sent:
        text = _chat_text(contact.text)
        # "sent": when cxprobe sent it; the widget's rendering of it shows as "customer".
        self._transcript.append(TranscriptLine(page_time(at_ms), "sent", "cxprobe", text))
        self._sends += 1
        return Sent(
            at=page_time(at_ms),
            external_id=f"webchat:{self.token}:sent:{self._sends}",
            text=text,
            timing_method=method,
            resume_state={"url": self.address.url},
        )

    async def _load(self, page: Page) -> None:
        response = await page.goto(self.address.url, wait_until="domcontentloaded")
        if response is not None and response.status >= 400:
            raise ChannelUnavailable(
                f"the chat page {self.address.url} answered HTTP {response.status}"
            )

    async def _dismiss_cookie_banner(self, scope: Page | FrameLocator) -> None:
        selector = self.address.cookie_accept
        if not selector:
            return
        # The banner may live in the top page even when the widget is in a frame.
        for where in {id(scope): scope, id(self._live_page()): self._live_page()}.values():
            button = where.locator(selector).first
            try:
                await button.click(timeout=self.address.cookie_wait * 1000)
            except PlaywrightTimeout:
                continue  # no banner (already accepted, or not shown here): carry on
            except PlaywrightError as exc:
                self._faulted = True
                raise self._closed_or(exc, "dismiss the cookie banner") from None
            self._note("accepted the cookie banner")
            return

    async def _fill_prechat(self, scope: Page | FrameLocator, contact: Contact) -> None:
        form = self.address.prechat
        assert form is not None
        values = {
            "customer_name": contact.sender_name,
            "token": self.token,
            "email": self.address.email.replace("{token}", self.token),
        }
        for selector, template in form.fields.items():
            value = template.format_map(_Defaulting(values))
            field = scope.locator(selector).first
            await self._step(f"fill the pre-chat field {selector!r}", _fill(field, value))
        if form.submit:
            await self._step(
                f"start the chat (pre-chat submit {form.submit!r})",
                scope.locator(form.submit).first.click(),
            )

    async def _type_and_send(self, scope: Page | FrameLocator, text: str) -> tuple[float, str]:
        box = scope.locator(self.address.input).first
        await self._step("type the message", box.fill(_chat_text(text)))
        marks_before = len(self._send_marks)
        self._send_marked.clear()
        if self.address.send:
            await self._step("send the message", scope.locator(self.address.send).first.click())
        else:
            await self._step("send the message (Enter)", box.press("Enter"))
        clicked_at = time.time() * 1000
        try:
            async with asyncio.timeout(SEND_MARK_WAIT):
                while len(self._send_marks) <= marks_before:
                    await self._send_marked.wait()
                    self._send_marked.clear()
        except TimeoutError:
            self._log.warning(
                "the page did not report the send; t0 taken after the click",
                extra={"token": self.token},
            )
            return clicked_at, FALLBACK_TIMING
        return self._send_marks[marks_before], TIMING_METHOD

    def _observer_config(self) -> dict[str, Any]:
        selectors = self.address.messages
        return {
            "binding": self._binding,
            "nonce": self._nonce,
            "item": selectors.item,
            "brand": selectors.brand,
            "bot": selectors.bot,
            "bot_marker": selectors.bot_marker,
            "system": selectors.system,
            "ignore": selectors.ignore,
            "text": selectors.text,
            "author": selectors.author,
            "team_label": selectors.team_label,
        }

    # -- replies ---------------------------------------------------------------------------

    async def replies(self) -> AsyncIterator[Reply]:
        while True:
            item = await self._events.get()
            if isinstance(item, ProbeError):
                self._events.put_nowait(item)  # a later iteration raises it too
                raise item
            reply = self._reply(item)
            if reply is not None:
                yield reply

    def _reply(self, event: Mapping[str, Any]) -> Reply | None:
        at_ms = float(event["at"])
        role = str(event.get("role", ""))
        if self._sent_ms is None or at_ms < self._sent_ms:
            return None  # the greeting before the contact
        if role == "customer":
            # The customer's own messages. Many more of them than were sent means the brand's
            # messages no longer match messages.brand: say so rather than report no answer.
            self._customer_messages += 1
            self._customer_texts.append(str(event.get("text", "")))
            if self._customer_messages > self._sends + DRIFT_ALLOWANCE:
                self.fail(ChannelUnavailable(self._drift_reason()))
            return None
        text = str(event.get("text", ""))
        author = str(event.get("author", ""))
        headers = {"Chat-Role": role}
        team = str(event.get("team", ""))
        if team:
            headers["Team"] = team
        if role == "system":
            responder = Responder.AUTO
            is_handoff = self._handoff is not None and self._handoff.search(text)
            headers["Chat-Event"] = "handoff" if is_handoff else "system"
        elif role == "bot" or (self._bot_author is not None and self._bot_author.search(author)):
            responder = Responder.BOT
        else:
            responder = Responder.HUMAN
        return Reply(
            observed_at=datetime.now(UTC),
            arrived_at=page_time(at_ms),
            timing_method=TIMING_METHOD,
            sender=author or role,
            text=text,
            responder=responder,
            external_id=f"webchat:{self.token}:{event.get('index')}",
            headers=headers,
            thread_keys=frozenset({self.token}),
        )

    def _drift_reason(self) -> str:
        """Why more customer-looking messages arrived than were sent, and the likely fix."""
        selectors = self.address.messages
        counted = (
            f"{self._customer_messages} messages after the contact look like the customer's "
            f"own, though it sent {self._sends}"
        )
        surplus = self._customer_texts[self._sends :]
        samples = ", ".join(repr(text[:60]) for text in surplus[:3])
        if any(TYPING_INDICATOR.search(text) for text in surplus):
            # Typing indicators carry no author and no brand class: ignoring them is the fix.
            return (
                f"{counted} ({samples}): they look like typing indicators or status lines, "
                f"which are not messages; add a selector for them to messages.ignore "
                f"(now {selectors.ignore!r}). If they are the brand's replies, messages.brand "
                f"({selectors.brand!r}) no longer matches them; update that selector"
            )
        return (
            f"{counted} ({samples}): messages.brand ({selectors.brand!r}) no longer matches "
            "the widget's replies; update the selector (or, if these are not messages, add "
            "them to messages.ignore)"
        )

    # -- closing ---------------------------------------------------------------------------

    async def close(self) -> list[Evidence]:
        """Leave the chat, hand back the transcript and a screenshot, free the context."""
        if self._closed:
            return []
        self._closed = True
        evidence: list[Evidence] = []
        try:
            if self._failure is None and self._page is not None and not self._page.is_closed():
                screenshot = await self._screenshot()
                if screenshot is not None:
                    evidence.append(screenshot)
                if self._observing and self.address.end is not None:
                    await self._leave_politely()
        finally:
            evidence.insert(0, self._transcript_evidence())
            try:
                await self._channel._give_back(self._tab, self._reuse_refusal())
            finally:
                self._channel._release(self)
        return evidence

    def _reuse_refusal(self) -> str | None:
        """Why this chat's tab may not serve another chat; None if nothing went wrong."""
        if self._failure is not None:
            return f"the chat failed: {self._failure}"
        if self._faulted:
            return "a step of the chat failed or was interrupted"
        return None

    async def _screenshot(self) -> Evidence | None:
        """The widget as the chat ended: JPEG by default, clipped to the widget when it can be."""
        assert self._page is not None
        options = self._options
        kind = options.screenshot_format
        quality = options.screenshot_quality if kind == "jpeg" else None
        timeout = CLOSING_STEP_TIMEOUT * 1000
        try:
            widget = await self._widget_element()
            if widget is not None:
                try:
                    image = await widget.screenshot(type=kind, quality=quality, timeout=timeout)
                except PlaywrightError:
                    widget = None  # hidden or detached: the viewport shows what there is
            if widget is None:
                image = await self._page.screenshot(type=kind, quality=quality, timeout=timeout)
        except PlaywrightError as exc:
            self._note(f"no screenshot: {_first_line(exc)}")
            return None
        return Evidence("screenshot", f"image/{kind}", image)

    async def _widget_element(self) -> ElementHandle | None:
        """The element the screenshot is clipped to: the configured one, or the list's panel."""
        try:
            if self.address.screenshot:
                scope = self._scope()
                return await scope.locator(self.address.screenshot).first.element_handle(
                    timeout=CLOSING_STEP_TIMEOUT * 1000
                )
            if self._message_list is None:
                return None
            panel = await self._message_list.evaluate_handle("e => e.parentElement || e")
            return panel.as_element()
        except (PlaywrightError, ProbeError):
            return None

    async def _leave_politely(self) -> None:
        end = self.address.end
        assert end is not None
        try:
            scope = self._scope()
            if end.message:
                box = scope.locator(self.address.input).first
                await box.fill(end.message, timeout=CLOSING_STEP_TIMEOUT * 1000)
                if self.address.send:
                    await scope.locator(self.address.send).first.click(
                        timeout=CLOSING_STEP_TIMEOUT * 1000
                    )
                else:
                    await box.press("Enter", timeout=CLOSING_STEP_TIMEOUT * 1000)
            if end.button:
                await scope.locator(end.button).first.click(timeout=CLOSING_STEP_TIMEOUT * 1000)
            if end.confirm:
                await scope.locator(end.confirm).first.click(timeout=CLOSING_STEP_TIMEOUT * 1000)
            self._note("ended the chat")
        except PlaywrightError as exc:
            self._note(f"could not end the chat politely: {_first_line(exc)}")
        except ProbeError as exc:  # the browser died meanwhile: the outcome stands
            self._note(f"could not end the chat politely: {exc}")

    def _transcript_evidence(self) -> Evidence:
        origin = page_time(self._sent_ms) if self._sent_ms is not None else None
        lines = [f"cxprobe web-chat transcript — {self.address.url} — ref {self.token}"]
        for line in sorted(self._transcript, key=lambda item: item.at):
            offset = f"{(line.at - origin).total_seconds():+9.3f}s" if origin else " " * 10
            author = f"{line.author}: " if line.author else ""
            text = line.text.replace("\n", "\n" + " " * 48)
            lines.append(
                f"{line.at.isoformat(timespec='milliseconds')} {offset} {line.role:<8} "
                f"{author}{text}"
            )
        return Evidence(
            "transcript", "text/plain; charset=utf-8", ("\n".join(lines) + "\n").encode()
        )

    # -- helpers ---------------------------------------------------------------------------

    def _live_page(self) -> Page:
        if self._failure is not None:
            raise self._failure
        assert self._page is not None, "prepare() first"
        return self._page

    def _scope(self) -> Page | FrameLocator:
        page = self._live_page()
        return page.frame_locator(self.address.frame) if self.address.frame else page

    async def _element(self, scope: Page | FrameLocator, selector: str, step: str) -> ElementHandle:
        handle: ElementHandle = await self._step(
            f"{step} ({selector!r})", scope.locator(selector).first.element_handle()
        )
        return handle

    async def _step(self, description: str, action: Any) -> Any:
        """Run one widget step; turn Playwright's failures into a run outcome with a reason."""
        try:
            return await self._run_step(description, action)
        except BaseException:
            self._faulted = True
            raise

    async def _run_step(self, description: str, action: Any) -> Any:
        try:
            return await action
        except PlaywrightTimeout:
            if self._failure is not None:
                raise self._failure from None
            raise ChannelUnavailable(
                f"{description}: nothing matched within {self._options.step_timeout:g}s "
                "(the widget did not appear, or its selectors no longer match the site)"
            ) from None
        except PlaywrightError as exc:
            raise self._closed_or(exc, description) from None

    def _closed_or(self, exc: PlaywrightError, description: str) -> ProbeError:
        if self._failure is not None:
            return self._failure
        return ChannelUnavailable(f"{description}: {_first_line(exc)}")


async def _fill(field: Locator, value: str) -> None:
    tag = await field.evaluate("e => e.tagName.toLowerCase() + ':' + (e.type || '')")
    if tag.startswith("select:"):
        try:
            await field.select_option(value=value)
        except PlaywrightError:
            await field.select_option(label=value)
    elif tag in ("input:checkbox", "input:radio"):
        await field.set_checked(value.lower() in ("true", "yes", "on", "1"))
    else:
        await field.fill(value)


def _page_ms(event: Mapping[str, Any]) -> float | None:
    """The page timestamp of a report, if it is a finite number."""
    at = event.get("at")
    if not isinstance(at, int | float) or not math.isfinite(at):
        return None
    return float(at)


def author_and_text(author: str, text: str) -> tuple[str, str]:
    """An author label without its trailing colon, and the text without the label.

    Widgets render "Dana: " before a message; read whole, the text then starts with the label.
    """
    name = author.strip().rstrip(":").rstrip()
    text = text.strip()
    if name and text.startswith(name):
        rest = text[len(name) :]
        stripped = rest.lstrip()
        if stripped.startswith(":"):
            text = stripped[1:].lstrip()
    return name, text


def _chat_text(text: str) -> str:
    """A contact as one chat message: the text without trailing blank lines."""
    return text.strip()


class _Defaulting(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _first_line(exc: BaseException) -> str:
    """Playwright's messages carry a call log after the first line; keep the first."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else describe_error(exc)


WEBCHAT = ChannelType(
    kind=WebchatChannel.kind,
    settings_model=WebchatChannelSettings,
    address_model=WebchatAddress,
    create=WebchatChannel,
    # Chat is synchronous: customers expect a bot within seconds and a person within minutes.
    default_sla=DefaultSla(
        first_response=30, human_response=180, after_hours_response=30, deadline=600
    ),
    methodology=Methodology(
        t0="the message sent in the page",
        reply_timing="in-page MutationObserver stamping performance.now(), pushed out at once "
        "(no polling)",
        precision="milliseconds",
    ),
    cross_check=per_address(WebchatAddress.check_against),
    resumable=False,
    # A chat widget on the brand's public site: anyone who opens the page may use it.
    public=True,
    # the widget labels its bot and system messages; a chat has no IVR.
    responders=frozenset({Responder.HUMAN, Responder.BOT, Responder.AUTO}),
)

"""Configuration models of the web-chat channel (``channels.webchat`` and a target's widget).

A widget is described by selectors, not code, so a new site needs config only. Selectors are
used in two places, with two dialects:

* **Steps** (``cookie_accept``, ``launcher``, pre-chat fields, ``input``, ``send``, ``end``) are
  Playwright selectors: CSS (which pierces open shadow roots), ``text=…``, ``role=…`` and so on.
* **Message selectors** (``messages.*``) are plain CSS: they run inside the page, in the
  MutationObserver that times every message, through ``Element.matches``/``querySelector``.

A widget inside an ``<iframe>`` (same or cross origin) names the frame with ``frame``; every other
selector is then read inside that frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from probes.settings import Strict, valid_regex

#: Debian's Chromium (apt-get install chromium); Playwright's own browser downloads are not used.
DEBIAN_CHROMIUM = Path("/usr/lib/chromium/chromium")

#: Flags that keep a headless Chromium lean and quiet on a server (DESIGN.md).
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
    # Chats run in pages nobody looks at: Chromium must not throttle their timers or lower
    # their renderers' priority, or the observer's timestamps lag the page's own work.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    # No back-forward cache: a chat page left for about:blank between two chats in a reused
    # tab must be unloaded, not kept frozen in memory.
    "--disable-features=Translate,MediaRouter,OptimizationHints,BackForwardCache",
)

#: URL patterns (Chromium's wildcard syntax) behind each resource type a target may ``block``.
BLOCKABLE_TYPES: dict[str, tuple[str, ...]] = {
    "font": ("*.woff2", "*.woff", "*.ttf", "*.otf", "*.eot", "*fonts.googleapis.com*"),
    "media": ("*.mp4", "*.webm", "*.mp3", "*.ogg", "*.wav", "*.m4a", "*.mov"),
    "image": ("*.png", "*.jpg", "*.jpeg", "*.gif", "*.webp", "*.avif", "*.ico", "*.bmp"),
    "analytics": (
        "*google-analytics.com*",
        "*googletagmanager.com*",
        "*doubleclick.net*",
        "*connect.facebook.net*",
        "*hotjar.com*",
        "*segment.io*",
        "*clarity.ms*",
    ),
}
#: Blocked unless a target says otherwise: nothing a widget needs to open or to chat.
DEFAULT_BLOCK = ("font", "media")


class BrowserSettings(Strict):
    """The one Chromium the monitor process shares between its chats."""

    executable_path: Path = Field(
        default=DEBIAN_CHROMIUM, description="Chromium binary (Debian's package by default)."
    )
    headless: bool = Field(default=True, description="Run without a window (servers have none).")
    extra_args: list[str] = Field(
        default_factory=list, description="More command-line flags, after cxprobe's own."
    )
    max_contexts: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Chats in progress at once (one browser context each; with reuse_contexts "
        "also the most contexts kept, warm ones included). 8 held on 2 cores with warm "
        "contexts (BENCHMARKS.md, issue 15); timing accuracy degrades once CPU is short: "
        "re-run the benchmark before raising it.",
    )
    reuse_contexts: bool = Field(
        default=True,
        description="Keep a browser context and its page warm between chats on the same site, "
        "cleared of cookies, storage, cache, history and permissions in between (a new page "
        "costs Chromium a renderer process: about two thirds of a chat's CPU, BENCHMARKS.md). "
        "A context whose chat failed, whose page crashed or that had frames on other hosts is "
        "closed instead. false: a fresh context for every chat.",
    )
    reuse_limit: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="Chats one reused context serves before it is closed and replaced.",
    )
    context_wait: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a run may wait for a free context before it is recorded as error.",
    )
    navigation_timeout: float = Field(
        default=30.0, gt=0, description="Seconds allowed for the chat page to load."
    )
    step_timeout: float = Field(
        default=15.0, gt=0, description="Seconds allowed for each widget step to find its element."
    )
    launch_timeout: float = Field(default=30.0, gt=0, description="Seconds to start Chromium.")
    locale: str = Field(default="en-GB", description="Browser locale (Accept-Language).")
    timezone: str | None = Field(default=None, description="Browser time zone (IANA); host's.")
    viewport: tuple[int, int] = Field(default=(1280, 800), description="Width and height (px).")
    screenshot_format: Literal["jpeg", "png"] = Field(
        default="jpeg",
        description="Format of the screenshot kept as evidence (JPEG costs a fraction of PNG).",
    )
    screenshot_quality: int = Field(default=70, ge=1, le=100, description="JPEG quality.")
    user_agent_suffix: str = Field(
        default="cxprobe (synthetic service-quality test contact)",
        description="Appended to Chromium's user agent so the site can tell test contacts "
        "apart; empty to send Chromium's own.",
    )


class WebchatChannelSettings(Strict):
    """The ``channels.webchat`` section."""

    browser: BrowserSettings = Field(default_factory=lambda: BrowserSettings())


class PrechatForm(Strict):
    """A form the widget asks for before the chat starts."""

    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Selector -> value; inputs are filled, <select>s chosen by value or label, "
        "checkboxes ticked when the value is 'true'. Values may use {customer_name}, {token}, "
        "{email}.",
    )
    submit: str | None = Field(default=None, description="Button that starts the chat.")


class MessageSelectors(Strict):
    """How the message list reads (plain CSS, run in the page)."""

    list: str = Field(description="The element holding the messages (observed for changes).")
    item: str = Field(description="One message, inside the list.")
    brand: str = Field(
        description="Matches messages written by the brand (bot or agent), not the customer."
    )
    bot: str | None = Field(
        default=None, description="Matches a brand message written by a bot (class, attribute)."
    )
    bot_marker: str | None = Field(
        default=None,
        description="An element inside a message that marks a bot (a 'Bot' badge, an avatar).",
    )
    bot_author: str | None = Field(
        default=None, description="Regular expression on the author's name that marks a bot."
    )
    system: str | None = Field(
        default=None, description="Matches system notices (hand-off, 'agent joined')."
    )
    ignore: str | None = Field(
        default=None, description="Matches elements that are not messages (typing indicators)."
    )
    text: str | None = Field(
        default=None, description="The text inside a message; default: the whole message."
    )
    author: str | None = Field(default=None, description="The author's name inside a message.")
    team_label: str | None = Field(
        default=None,
        description="Where the widget shows the team or queue (read when each message arrives).",
    )
    handoff: str | None = Field(
        default=None,
        description="Regular expression on a system notice meaning a human has taken over.",
    )

    @field_validator("bot_author", "handoff")
    @classmethod
    def _valid_regexes(cls, value: str | None) -> str | None:
        return None if value is None else valid_regex(value)


class EndChat(Strict):
    """How to leave the chat politely once the run has what it needs."""

    message: str | None = Field(default=None, description="A closing line sent first.")
    button: str | None = Field(default=None, description="The widget's end-chat control.")
    confirm: str | None = Field(default=None, description="Its confirmation button, if any.")


class WebchatAddress(Strict):
    """A target's ``channels.webchat`` section: its chat page and how its widget works."""

    url: str = Field(pattern=r"^https?://", description="The page that carries the chat widget.")
    frame: str | None = Field(
        default=None, description="Selector of the <iframe> the widget lives in, if any."
    )
    cookie_accept: str | None = Field(
        default=None, description="Cookie-banner button clicked when the banner shows."
    )
    cookie_wait: float = Field(
        default=3.0, ge=0, description="Seconds to wait for the cookie banner to show."
    )
    launcher: str | None = Field(
        default=None, description="Button that opens the widget; omit if it is always open."
    )
    prechat: PrechatForm | None = None
    email: str = Field(
        default="probe+{token}@cxprobe.invalid",
        description="The address given in pre-chat forms ({token} allowed).",
    )
    input: str = Field(description="The message box.")
    send: str | None = Field(default=None, description="The send button; omit to press Enter.")
    messages: MessageSelectors = Field(
        description="How to read the messages. With no bot selector, marker or author pattern "
        "every brand message counts as a human's."
    )
    end: EndChat | None = None
    block: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BLOCK),
        description="What the page may not load, to save CPU: resource types (font, media, "
        "image, analytics) or URL patterns with * wildcards. The default (fonts, media) keeps "
        "every widget working; add image or analytics when the widget needs neither. [] blocks "
        "nothing.",
    )
    screenshot: str | None = Field(
        default=None,
        description="Element the screenshot is clipped to; default: the element holding the "
        "message list (the widget's panel), or the viewport when it cannot be measured.",
    )

    @field_validator("block")
    @classmethod
    def _known_blocks(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry not in BLOCKABLE_TYPES and "*" not in entry and "." not in entry:
                raise ValueError(
                    f"{entry!r} is neither a resource type ({', '.join(BLOCKABLE_TYPES)}) nor "
                    "a URL pattern (use * wildcards, e.g. '*tracker.example*')"
                )
        return value

    def blocked_url_patterns(self) -> list[str]:
        """The URL patterns Chromium refuses to load for this target."""
        patterns: list[str] = []
        for entry in self.block:
            patterns += BLOCKABLE_TYPES.get(entry, (entry,))
        return patterns

    def check_against(self, settings: WebchatChannelSettings | None) -> str | None:
        """A problem with this address given the ``channels.webchat`` section, if any."""
        if settings is None:
            return "the target has a webchat address but there is no 'channels.webchat' section"
        return None

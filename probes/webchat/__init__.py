"""The web-chat channel: Playwright driving a site's chat widget, replies timed in the page."""

from probes.webchat.channel import WEBCHAT

__all__ = ["WEBCHAT"]

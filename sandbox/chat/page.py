"""HTML of the sandbox support site: the same chat widget inline, in iframes and in a shadow root.

The widget's DOM (ids, classes, texts) is a contract with the cxprobe web-chat probe, which
finds everything through configured selectors; `static/widget.js` builds it. Pages are
rendered per request because the fault switches (widget missing, alert on load) change at run
time. Everything is inline and same-origin: no page loads anything from the internet.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from importlib import resources

ALERT_TEXT = "Sign up for our newsletter!"
WS_PATH = "/ws"
IFRAME_ID = "support-chat"


@dataclass(frozen=True)
class WidgetAssets:
    script: str
    style: str

    @classmethod
    def load(cls) -> WidgetAssets:
        static = resources.files("sandbox.chat") / "static"
        return cls(
            script=(static / "widget.js").read_text(encoding="utf-8"),
            style=(static / "widget.css").read_text(encoding="utf-8"),
        )


@dataclass(frozen=True)
class PageOptions:
    """What one page load looks like, decided by the site at request time."""

    widget: bool  # False: the launcher never appears (widget_missing)
    widget_delay_seconds: float  # the launcher appears this long after the script runs
    alert_on_load: bool


_PAGE_STYLE = """
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: #1d2430; background: #f6f8fb; }
header { padding: 16px 32px; background: #1d2430; color: #fff; }
main { max-width: 720px; padding: 16px 32px; }
#support-chat {
  position: fixed; right: 0; bottom: 0; z-index: 900;
  width: 420px; height: 600px; max-width: 100%; max-height: 100%;
  border: 0; background: transparent;
}
"""

_ARTICLE = """
<header><strong>Acme</strong> Help Centre</header>
<main>
  <h1>How can we help?</h1>
  <h2>Billing and payments</h2>
  <p>Invoices are issued on the first working day of each month. Refunds reach your account
  within five working days.</p>
  <h2>Technical problems</h2>
  <p>If you cannot log in, reset your password from the sign-in page first.</p>
  <h2>Contact us</h2>
  <p>Chat with our team using the button in the corner of this page, Monday to Friday,
  09:00-17:30 UK time. Our virtual assistant is there around the clock.</p>
</main>
"""


def _config(options: PageOptions) -> str:
    data = {
        "widget": options.widget,
        "widget_delay_ms": round(options.widget_delay_seconds * 1000),
        "ws_path": WS_PATH,
    }
    # "<" escaped so no value can close the <script> element it is embedded in.
    return json.dumps(data).replace("<", "\\u003c")


def _alert(options: PageOptions) -> str:
    if not options.alert_on_load:
        return ""
    text = json.dumps(ALERT_TEXT)
    return (
        '<script>window.addEventListener("load", () => '
        f"setTimeout(() => window.alert({text}), 100));</script>"
    )


def _document(title: str, head: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _widget_scripts(assets: WidgetAssets, options: PageOptions, bootstrap: str) -> str:
    return (
        f'<script type="application/json" id="acme-chat-config">{_config(options)}</script>\n'
        f"<script>\n{assets.script}\n</script>\n"
        "<script>\n"
        "const acmeChatConfig = "
        'JSON.parse(document.getElementById("acme-chat-config").textContent);\n'
        f"{bootstrap}\n</script>\n"
    )


def support_page(assets: WidgetAssets, options: PageOptions) -> str:
    """`/`: the widget lives in the page's own document."""
    body = (
        _ARTICLE
        + '<div id="acme-chat"></div>\n'
        + _widget_scripts(
            assets,
            options,
            'AcmeChat.mount(document.getElementById("acme-chat"), acmeChatConfig);',
        )
        + _alert(options)
    )
    return _document("Acme Help Centre", f"<style>{_PAGE_STYLE}{assets.style}</style>", body)


def widget_page(assets: WidgetAssets, options: PageOptions) -> str:
    """`/widget`: the widget alone, as the iframe variants load it."""
    style = f"<style>body {{ margin: 0; background: transparent; }}\n{assets.style}</style>"
    body = '<div id="acme-chat"></div>\n' + _widget_scripts(
        assets, options, 'AcmeChat.mount(document.getElementById("acme-chat"), acmeChatConfig);'
    )
    return _document("Acme Support chat", style, body)


def iframe_host_page(widget_src: str, options: PageOptions) -> str:
    """`/iframe-same`, `/iframe-cross`: the widget in `<iframe id="support-chat">`."""
    iframe = (
        f'<iframe id="{IFRAME_ID}" title="Chat with Acme Support" '
        f'src="{html.escape(widget_src)}"></iframe>\n'
    )
    return _document(
        "Acme Help Centre", f"<style>{_PAGE_STYLE}</style>", _ARTICLE + iframe + _alert(options)
    )


_SHADOW_BOOTSTRAP = """
customElements.define("acme-chat", class extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot !== null) {
      return;
    }
    const shadow = this.attachShadow({ mode: "open" });
    shadow.append(document.getElementById("acme-chat-template").content.cloneNode(true));
    AcmeChat.mount(shadow.querySelector(".acme-chat-container"), acmeChatConfig);
  }
});
"""


def shadow_page(assets: WidgetAssets, options: PageOptions) -> str:
    """`/shadow`: the widget inside `<acme-chat>`'s open shadow root, styles included."""
    template = (
        '<template id="acme-chat-template">'
        f'<style>{assets.style}</style><div class="acme-chat-container"></div>'
        "</template>\n"
    )
    body = (
        _ARTICLE
        + template
        + "<acme-chat></acme-chat>\n"
        + _widget_scripts(assets, options, _SHADOW_BOOTSTRAP)
        + _alert(options)
    )
    return _document("Acme Help Centre", f"<style>{_PAGE_STYLE}</style>", body)

// cxprobe's in-page timer for a chat widget (see probes/webchat/channel.py).
//
// Called once per conversation, with the widget's message list element, its message box and
// send button, and the message selectors from the config, before the customer's first message
// is sent. Each new message is timed in the
// MutationObserver callback that sees it appear (the same task that rendered it), as
// epoch milliseconds (performance.timeOrigin + performance.now()), and pushed to Python through
// the binding cxprobe exposed on the browser context. Nothing here polls.
(list, { cfg, input, send }) => {
  const win = list.ownerDocument.defaultView;
  const root = list.getRootNode(); // the document, or the open shadow root holding the widget
  // Captured now: a page script replacing the global later cannot intercept the reports, and
  // without the nonce it cannot forge them either.
  const binding = win[cfg.binding];
  const report = (event) => binding({ ...event, nonce: cfg.nonce });

  // A selector that is not valid CSS would throw in every observer callback and lose every
  // message silently: refuse to start instead, naming it.
  for (const key of ["item", "brand", "bot", "bot_marker", "system", "ignore", "text", "author",
                     "team_label"]) {
    if (!cfg[key]) continue;
    try {
      list.ownerDocument.createDocumentFragment().querySelector(cfg[key]);
    } catch (error) {
      throw new Error(`messages.${key} is not a valid CSS selector: ${cfg[key]}`);
    }
  }
  const now = () => performance.timeOrigin + performance.now();
  const seen = new WeakSet();
  let index = 0;
  // Messages seen in one observer callback go out in one report: every report is a protocol
  // message to Python, and a burst of them competes with the page for the renderer.
  const batch = [];
  const flush = () => {
    if (batch.length > 0) report({ kind: "messages", messages: batch.splice(0) });
  };

  const matches = (el, selector) => Boolean(selector) && el.matches(selector);
  const textOf = (el) => {
    const part = cfg.text ? el.querySelector(cfg.text) : null;
    return ((part || el).innerText || (part || el).textContent || "").trim();
  };
  const authorOf = (el) => {
    const part = cfg.author ? el.querySelector(cfg.author) : null;
    return part ? (part.textContent || "").trim() : "";
  };
  const teamNow = () => {
    const label = cfg.team_label ? root.querySelector(cfg.team_label) : null;
    return label ? (label.textContent || "").trim() : "";
  };
  const roleOf = (el) => {
    if (matches(el, cfg.ignore)) return null;
    if (matches(el, cfg.system)) return "system";
    if (!matches(el, cfg.brand)) return "customer";
    if (matches(el, cfg.bot) || (cfg.bot_marker && el.querySelector(cfg.bot_marker))) return "bot";
    return "agent";
  };

  const consider = (node, at) => {
    if (!(node instanceof win.Element) || seen.has(node)) return;
    if (!node.matches(cfg.item)) {
      // A wrapper was added: its messages are inside.
      node.querySelectorAll(cfg.item).forEach((inner) => consider(inner, at));
      return;
    }
    const role = roleOf(node);
    if (role === null) return;
    const text = textOf(node);
    if (!text) return; // rendered empty, filled in later: timed when its text appears
    seen.add(node);
    batch.push({
      at,
      index: index++,
      role,
      text,
      author: authorOf(node),
      team: teamNow(),
    });
  };

  // Messages already shown (a greeting) are reported too, timed now: they predate the
  // customer's message, so they belong to the transcript, not to the timings.
  const installedAt = now();
  list.querySelectorAll(cfg.item).forEach((el) => consider(el, installedAt));
  flush();

  new win.MutationObserver((records) => {
    const at = now();
    for (const record of records) {
      if (record.type === "childList") {
        record.addedNodes.forEach((node) => consider(node, at));
      } else {
        const el = record.target.nodeType === 1 ? record.target : record.target.parentElement;
        const message = el && el.closest(cfg.item);
        if (message) consider(message, at);
      }
    }
    flush();
  }).observe(list, { childList: true, subtree: true, characterData: true });

  // The send itself, timed when the click or Enter is dispatched (capture phase, before the
  // widget's own handler runs). composedPath() sees inside open shadow roots.
  const onPath = (event, element) => Boolean(element) && event.composedPath().includes(element);
  root.addEventListener(
    "click",
    (event) => {
      if (onPath(event, send)) report({ kind: "sent", at: now(), how: "click" });
    },
    true,
  );
  root.addEventListener(
    "keydown",
    (event) => {
      if (event.key === "Enter" && !event.shiftKey && onPath(event, input)) {
        report({ kind: "sent", at: now(), how: "enter" });
      }
    },
    true,
  );
  return installedAt;
};

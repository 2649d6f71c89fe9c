// Acme chat widget: cookie banner, launcher, pre-chat form and a WebSocket conversation.
// `AcmeChat.mount(container, config)` builds the same DOM wherever the container lives: in the
// page, in an iframe or inside a shadow root. Element ids and classes are a contract with the
// cxprobe web-chat probe (see sandbox/chat_page.py); add to them, never rename.
"use strict";

window.AcmeChat = (() => {
  const SYSTEM_AUTHOR = "Acme Support";
  const ENDED_TEXT = "Chat ended. Thank you!";

  function el(tag, attributes = {}, text = null) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      node.setAttribute(name, value);
    }
    if (text !== null) {
      node.textContent = text;
    }
    return node;
  }

  // The page's own truth, for benchmarks and tests: when the widget's send handler ran and when
  // it inserted each message, in the page's clock (performance.timeOrigin + performance.now()).
  // Read with `window.acmeChatTruth`; nothing in the widget depends on it.
  const truth = [];
  window.acmeChatTruth = truth;
  const pageNow = () => performance.timeOrigin + performance.now();

  // Like real widgets, the browser is remembered: a visitor id in localStorage and a cookie, and
  // the conversation so far in sessionStorage, shown again (marked data-restored) when the page
  // is reloaded in the same tab. A browser that comes back clean starts as a new visitor.
  const VISITOR_KEY = "acme-visitor";
  const TRANSCRIPT_KEY = "acme-transcript";
  function visitorId() {
    const fromCookie = document.cookie
      .split("; ")
      .find((pair) => pair.startsWith(`${VISITOR_KEY}=`));
    let id = localStorage.getItem(VISITOR_KEY) || (fromCookie ? fromCookie.split("=")[1] : null);
    if (!id) {
      id = `v-${Math.random().toString(36).slice(2, 12)}`;
    }
    localStorage.setItem(VISITOR_KEY, id);
    document.cookie = `${VISITOR_KEY}=${id}; max-age=31536000; path=/; SameSite=Lax`;
    return id;
  }
  function savedTranscript() {
    try {
      return JSON.parse(sessionStorage.getItem(TRANSCRIPT_KEY) || "[]");
    } catch (error) {
      return [];
    }
  }
  function saveLine(line) {
    sessionStorage.setItem(TRANSCRIPT_KEY, JSON.stringify([...savedTranscript(), line]));
  }

  function hhmm(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  function mount(container, config) {
    container.classList.add("acme-chat-root");
    showCookieBanner(container);
    if (!config.widget) {
      // The page works; the chat widget's script "failed": no launcher, ever.
      console.info("acme-chat: widget unavailable");
      return;
    }
    setTimeout(() => showLauncher(container, config), config.widget_delay_ms);
  }

  function showCookieBanner(container) {
    const banner = el("div", {
      id: "cookie-banner",
      class: "cookie-banner",
      role: "region",
      "aria-label": "Cookie consent",
    });
    banner.append(
      el("p", {}, "We use cookies to run this site and to understand how it is used."),
      el("button", { id: "cookie-accept", type: "button" }, "Accept all"),
    );
    banner.querySelector("#cookie-accept").addEventListener("click", () => banner.remove());
    container.append(banner);
  }

  function showLauncher(container, config) {
    const launcher = el(
      "button",
      { id: "chat-launcher", type: "button", "aria-label": "Chat with us" },
      "Chat with us",
    );
    let panel = null;
    launcher.addEventListener("click", () => {
      // Opening is idempotent: a second click must not lose a conversation.
      if (panel === null) {
        panel = openPanel(container, config);
      }
    });
    // Before the banner (if still there) so the banner stays on top in document order too.
    container.prepend(launcher);
    console.info("acme-chat: launcher shown");
  }

  function openPanel(container, config) {
    const panel = el("div", {
      id: "chat-panel",
      role: "dialog",
      "aria-label": "Chat with Acme Support",
      "data-state": "prechat",
    });
    // No `novalidate`: the browser itself enforces `required` and type=email, as on real sites.
    const form = el("form", { id: "prechat" });
    const field = (label, control) => {
      const wrapper = el("label", {}, label);
      wrapper.append(control);
      return wrapper;
    };
    const topic = el("select", { name: "topic" });
    for (const [value, label] of [
      ["", "Choose…"],
      ["billing", "Billing"],
      ["tech", "Technical problem"],
      ["sales", "Sales"],
      ["other", "Something else"],
    ]) {
      topic.append(el("option", { value }, label));
    }
    form.append(
      field("Name", el("input", { name: "name", required: "", autocomplete: "name" })),
      field(
        "Email",
        el("input", { name: "email", type: "email", required: "", autocomplete: "email" }),
      ),
      field("Topic", topic),
      el("button", { type: "submit", id: "prechat-start" }, "Start chat"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const visitor = {
        name: String(data.get("name")).trim(),
        email: String(data.get("email")).trim(),
        topic: String(data.get("topic")),
      };
      form.remove();
      startChat(panel, visitor, config);
    });
    panel.append(form);
    container.append(panel);
    return panel;
  }

  function startChat(panel, visitor, config) {
    const header = el("div", { class: "chat-header" });
    const teamLabel = el("span", { class: "team-label" });
    header.append(el("span", { class: "chat-title" }, "Acme Support"), " ", teamLabel);
    const messages = el("ol", { class: "messages", "aria-live": "polite" });
    for (const line of savedTranscript()) {
      const old = el("li", { class: `msg msg--${line.role}`, "data-restored": "" });
      old.append(el("span", { class: "msg-author" }, line.author));
      old.append(el("div", { class: "msg-text" }, line.text));
      messages.append(old);
    }
    const input = el("textarea", { id: "chat-input", rows: "2", "aria-label": "Your message" });
    const send = el("button", { id: "chat-send", type: "button", disabled: "" }, "Send");
    const compose = el("div", { class: "chat-compose" });
    compose.append(input, send);
    const end = el("button", { id: "chat-end", type: "button" }, "End chat");
    const actions = el("div", { class: "chat-actions" });
    actions.append(end);
    panel.append(header, messages, compose, actions);
    panel.dataset.state = "connecting";

    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${config.ws_path}`);
    let ready = false;
    let ended = false;
    let localCount = 0;
    const pending = new Map(); // client id -> the customer's <li>, until the server's ack
    let typing = null;

    function append(li) {
      // The typing indicator always stays last.
      if (typing !== null && typing.isConnected) {
        messages.insertBefore(li, typing);
      } else {
        messages.append(li);
      }
      messages.scrollTop = messages.scrollHeight;
    }

    function render(role, id, author, text, when) {
      const li = el("li", { class: `msg msg--${role}`, "data-msg-id": id });
      li.append(el("span", { class: "msg-author" }, author));
      if (role === "bot") {
        li.append(el("span", { class: "badge-bot" }, "Bot"));
      }
      li.append(
        el("div", { class: "msg-text" }, text),
        el("time", { class: "msg-time", datetime: when.toISOString() }, hhmm(when)),
      );
      append(li);
      saveLine({ role, author, text });
      truth.push({ event: role === "customer" ? "shown" : "inserted", id, role, text, at: pageNow() });
      return li;
    }

    function setTyping(author, on) {
      if (typing !== null) {
        typing.remove();
        typing = null;
      }
      if (on) {
        typing = el("li", { class: "typing" }, `${author} is typing…`);
        messages.append(typing);
        messages.scrollTop = messages.scrollHeight;
      }
    }

    function sendMessage() {
      const text = input.value.trim();
      if (!ready || ended || text === "") {
        return;
      }
      truth.push({ event: "sent", text, at: pageNow() });
      localCount += 1;
      const clientId = `local-${localCount}`;
      pending.set(clientId, render("customer", clientId, visitor.name, text, new Date()));
      input.value = "";
      socket.send(JSON.stringify({ type: "message", client_id: clientId, text }));
    }

    function finish(state) {
      ready = false;
      send.disabled = true;
      input.disabled = true;
      panel.dataset.state = state;
    }

    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "start", ...visitor, visitor_id: visitorId() }));
    });
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === "ready") {
        // The server has greeted (unless it is down): customer messages come after the greeting.
        if (!ended) {
          ready = true;
          send.disabled = false;
          panel.dataset.state = "open";
          panel.dataset.session = frame.session;
        }
      } else if (frame.type === "ack") {
        const li = pending.get(frame.client_id);
        pending.delete(frame.client_id);
        if (li !== undefined) {
          li.dataset.msgId = frame.id;
        }
      } else if (frame.type === "typing") {
        setTyping(frame.author, frame.on);
      } else if (frame.type === "message") {
        if (frame.role === "agent") {
          setTyping(frame.author, false);
        }
        if (typeof frame.team_label === "string") {
          teamLabel.textContent = frame.team_label;
        }
        render(frame.role, frame.id, frame.author, frame.text, new Date(frame.sent_at));
      } else if (frame.type === "error") {
        console.warn(`acme-chat: ${frame.text}`);
      }
    });
    socket.addEventListener("close", () => {
      setTyping(null, false);
      if (!ended) {
        finish("closed");
      }
    });

    send.addEventListener("click", sendMessage);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendMessage();
      }
    });
    end.addEventListener("click", () => {
      if (ended || actions.querySelector("#chat-end-confirm") !== null) {
        return;
      }
      const confirmation = el("span", { class: "chat-end-confirmation" }, "End this chat? ");
      const yes = el("button", { id: "chat-end-confirm", type: "button" }, "Yes, end chat");
      const no = el("button", { id: "chat-end-cancel", type: "button" }, "Keep chatting");
      confirmation.append(yes, " ", no);
      actions.append(confirmation);
      no.addEventListener("click", () => confirmation.remove());
      yes.addEventListener("click", () => {
        confirmation.remove();
        end.remove();
        ended = true;
        if (socket.readyState === WebSocket.OPEN) {
          socket.send(JSON.stringify({ type: "end" }));
        }
        socket.close(1000, "customer ended the chat");
        setTyping(null, false);
        render("system", "ended", SYSTEM_AUTHOR, ENDED_TEXT, new Date());
        finish("ended");
      });
    });
  }

  return { mount };
})();

/*
 * tracksvc pages: key handover, API calls and small DOM helpers (no build step).
 *
 * The page never receives a key from the server. It takes one from
 *   1. the URL fragment, "#key=...", which browsers never send to a server
 *      (the page stores it in sessionStorage and removes it from the address);
 *   2. window.postMessage({type: "tracksvc-key", key}) from the parent frame,
 *      when the sender's origin is on the allow-list in <body data-key-origins>;
 *   3. a key the person pastes into the key form.
 * The key lives in this tab's sessionStorage (or memory, when storage is blocked).
 */
(function () {
  "use strict";

  const body = document.body;
  const role = body.dataset.role || "agent";
  const storageName = "tracksvc.key." + role;
  let memoryKey = null;

  function escapeRegExp(text) {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  /** Origins allowed to post a key: "self", exact origins, or https://*.example.com patterns. */
  function allowedOrigins() {
    return (body.dataset.keyOrigins || "").split(/\s+/).filter(Boolean);
  }

  function originAllowed(origin) {
    for (const pattern of allowedOrigins()) {
      if (pattern === "self") {
        if (origin === window.location.origin) return true;
      } else if (pattern === origin) {
        return true;
      } else {
        const wild = /^(https?):\/\/\*\.([A-Za-z0-9.-]+)(:\d+)?$/.exec(pattern);
        if (wild) {
          const re = new RegExp(
            "^" + wild[1] + ":\\/\\/[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\." +
              escapeRegExp(wild[2]) + escapeRegExp(wild[3] || "") + "$",
            "i"
          );
          if (re.test(origin)) return true;
        }
      }
    }
    return false;
  }

  const store = {
    get() {
      try {
        return window.sessionStorage.getItem(storageName) || memoryKey;
      } catch (e) {
        return memoryKey;
      }
    },
    set(key) {
      memoryKey = key;
      try {
        window.sessionStorage.setItem(storageName, key);
      } catch (e) {
        /* storage blocked (sandboxed frame): the key stays in memory */
      }
    },
    clear() {
      memoryKey = null;
      try {
        window.sessionStorage.removeItem(storageName);
      } catch (e) {
        /* nothing stored */
      }
    },
  };

  /** Read "#key=...&ref=..." and remove it from the address bar and history entry. */
  function takeFragment() {
    const hash = window.location.hash.replace(/^#/, "");
    if (!hash) return {};
    const params = new URLSearchParams(hash);
    const taken = { key: params.get("key"), ref: params.get("ref") };
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
    return taken;
  }

  /** Build an element: h("p", {class: "x", text: "hi"}, child, ...). Text is never parsed as HTML. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") el.className = value;
      else if (name === "text") el.textContent = value;
      else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else if (name === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  /** "just now", "3 min ago", "5 h ago", "17 days ago" (or "in 2 h" for the future). */
  function ago(iso) {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return "at an unknown time";
    const seconds = Math.round((Date.now() - then) / 1000);
    const abs = Math.abs(seconds);
    let text;
    if (abs < 45) return "just now";
    if (abs < 3600) text = Math.max(1, Math.round(abs / 60)) + " min";
    else if (abs < 48 * 3600) text = Math.round(abs / 3600) + " h";
    else text = Math.round(abs / 86400) + " days";
    return seconds >= 0 ? text + " ago" : "in " + text;
  }

  function formatTime(iso) {
    const then = new Date(iso);
    if (Number.isNaN(then.getTime())) return "";
    return then.toLocaleString(undefined, {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    });
  }

  /** A <time> that keeps saying how long ago it was (refreshed by tickAges). */
  function agoElement(iso, prefix) {
    return h("time", {
      datetime: iso,
      title: formatTime(iso),
      dataset: { ago: iso, prefix: prefix || "" },
      text: (prefix || "") + ago(iso),
    });
  }

  function tickAges() {
    for (const el of document.querySelectorAll("[data-ago]")) {
      el.textContent = (el.dataset.prefix || "") + ago(el.dataset.ago);
    }
  }
  window.setInterval(tickAges, 30000);

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch (e) {
        /* permission refused (e.g. an iframe without clipboard-write): fall back */
      }
    }
    const active = document.activeElement;
    const area = h("textarea", { class: "offscreen", readonly: true, "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (e) {
      ok = false;
    }
    area.remove();
    if (active && active.focus) active.focus();
    return ok;
  }

  function safeUrl(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
  }

  /**
   * The key of this page: handover (fragment, postMessage) or the key form.
   * onKey(source) runs when a key arrives; onReference(ref) when the parent asks for a lookup;
   * focusAfterKey gets the focus back when the key form closes under it.
   */
  function keyKeeper({ onKey, onReference, focusAfterKey }) {
    const form = document.getElementById("key-form");
    const input = document.getElementById("api-key");
    const reason = document.getElementById("key-reason");
    const state = document.getElementById("key-state");
    const forget = document.getElementById("forget-key");
    const fragment = takeFragment();

    function render() {
      const has = Boolean(store.get());
      state.textContent = has ? "Key set for this tab" : "No key";
      forget.hidden = !has;
    }

    function setKey(key, source) {
      const hadFocus = form.contains(document.activeElement);
      store.set(key);
      form.hidden = true;
      render();
      // The form just vanished under the keyboard focus: put it back where the work is.
      if (hadFocus && focusAfterKey) focusAfterKey.focus();
      onKey(source);
    }

    function ask(message, focus) {
      if (message) reason.textContent = message;
      form.hidden = false;
      if (focus) input.focus();
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) {
        ask("Paste a key first.", true);
        return;
      }
      input.value = "";
      setKey(key, "form");
    });
    forget.addEventListener("click", () => {
      store.clear();
      render();
      ask("Key forgotten. Paste a key to go on.", true);
    });

    window.addEventListener("message", (event) => {
      if (window.parent === window || event.source !== window.parent) return;
      if (!originAllowed(event.origin)) return;
      const data = event.data;
      if (!data || typeof data !== "object") return;
      if (data.type === "tracksvc-key" && typeof data.key === "string" && data.key.trim()) {
        setKey(data.key.trim(), "helpdesk");
      } else if (data.type === "tracksvc-lookup" && typeof data.reference === "string" && onReference) {
        onReference(data.reference);
      }
    });

    if (fragment.key) store.set(fragment.key);
    if (!store.get()) ask(null, false);
    render();
    if (window.parent !== window) {
      // Tell the embedding app the page is listening; this message carries nothing secret.
      window.parent.postMessage({ type: "tracksvc-ready", page: role, has_key: Boolean(store.get()) }, "*");
    }

    return {
      key: () => store.get(),
      fragmentReference: fragment.ref || null,
      /** The server refused the key (401): forget it and ask for another. */
      refused(message) {
        store.clear();
        render();
        ask(message, true);
      },
      ask,
    };
  }

  /** Error text of a JSON error answer ({"error": {"code", "message"}}), or a fallback. */
  async function errorOf(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error;
    } catch (e) {
      /* not JSON */
    }
    return { code: "http_" + response.status, message: "tracksvc answered HTTP " + response.status + "." };
  }

  function apiFetch(path, key, accept) {
    return fetch(path, {
      headers: { Authorization: "Bearer " + key, Accept: accept || "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
  }

  window.Tracksvc = { h, ago, agoElement, formatTime, copyText, safeUrl, keyKeeper, errorOf, apiFetch, tickAges };
})();

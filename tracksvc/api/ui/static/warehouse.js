/*
 * The warehouse page: labels printed and never picked up, per origin, oldest first;
 * a chart of their ages per origin; the labels still worth voiding, soonest deadline
 * first, with the money at stake; and a Void button that marks a label voided.
 */
(function () {
  "use strict";
  const T = window.Tracksvc;
  const h = T.h;
  const CARRIERS = { ups: "UPS", fedex: "FedEx", usps: "USPS" };
  const PAGE_SIZE = 500;
  const NO_ORIGIN = "(no origin)";
  // A label no carrier was asked about yet: the list claims nothing about it.
  const NOT_YET_CHECKED = "not yet checked";
  const SVG_NS = "http://www.w3.org/2000/svg";

  const filters = document.getElementById("filters");
  const originSelect = document.getElementById("origin");
  const olderThan = document.getElementById("older-than");
  const autoRefresh = document.getElementById("auto-refresh");
  const download = document.getElementById("download");
  const downloadToVoid = document.getElementById("download-to-void");
  const more = document.getElementById("more");
  const announce = document.getElementById("announce");
  const updated = document.getElementById("updated");
  const list = document.getElementById("labels");
  const chart = document.getElementById("ages-chart");
  const toVoidList = document.getElementById("to-void-list");
  const stake = document.getElementById("stake");
  const windowsText = document.getElementById("windows");
  const refreshSeconds = Math.max(1, parseInt(document.body.dataset.refreshS, 10) || 60);
  document.getElementById("refresh-seconds").textContent = String(refreshSeconds);

  // -- times, always with their time zone ("2026-11-30 14:05 UTC", "2026-11-30 08:05 CST") --

  const zone = validZone(document.body.dataset.timezone || "UTC");
  document.getElementById("zone-name").textContent = zone;
  const zoneFormat = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZoneName: "short",
  });

  function validZone(name) {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: name });
      return name;
    } catch (e) {
      return "UTC";
    }
  }

  function zoned(iso) {
    const then = new Date(iso);
    if (Number.isNaN(then.getTime())) return "";
    const p = {};
    for (const part of zoneFormat.formatToParts(then)) p[part.type] = part.value;
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + " " + p.timeZoneName;
  }

  function timeElement(iso) {
    return h("time", { datetime: iso, title: T.ago(iso) }, zoned(iso));
  }

  // -- shared row parts: carrier link, copy, agent view link, void ---------------------------

  const knownOrigins = new Set();
  // Labels voided from this page: left out of answers that were on their way before the void.
  const voided = new Set();
  let rows = [];
  let nextCursor = null;
  let loading = false;
  let again = false;

  const keeper = T.keyKeeper({
    focusAfterKey: originSelect,
    onKey() {
      loadAll(true);
    },
  });

  function carrierName(label) {
    return CARRIERS[label.carrier] || label.carrier;
  }

  function trackingCell(label) {
    const number = label.tracking_number;
    const copy = h("button", {
      type: "button", class: "copy", "aria-label": "Copy tracking number " + number,
      onclick: async () => {
        const ok = await T.copyText(number);
        copy.textContent = ok ? "Copied" : "Copy failed";
        announce.textContent = ok ? "Tracking number " + number + " copied." : "The number could not be copied.";
        window.setTimeout(() => { copy.textContent = "Copy"; }, 2000);
      },
    }, "Copy");
    const url = T.safeUrl(label.tracking_url);
    return h("td", { class: "tracking-cell" },
      h("code", { class: "number" }, number), " ", copy, " ",
      url ? h("a", {
        class: "carrier-link", href: url, target: "_blank", rel: "noopener noreferrer",
        "aria-label": "Open " + number + " on " + carrierName(label) + "'s tracking page",
      }, carrierName(label) + " page") : null);
  }

  function orderCell(label) {
    const reference = label.order_number || label.shipment_id;
    return h("td", {},
      h("a", {
        class: "agent-link", href: "sidebar#ref=" + encodeURIComponent(reference), target: "_blank",
        rel: "noopener", title: "Open the agent view of " + reference,
      }, reference));
  }

  function voidCell(label) {
    return h("td", {},
      h("button", {
        type: "button", class: "void",
        "aria-label": "Void label " + label.tracking_number + " (shipment " + label.shipment_id + ")",
        onclick: (event) => voidLabel(label, event.currentTarget),
      }, "Void"));
  }

  function checkedCell(label) {
    if (!label.carrier_checked_at) {
      return h("td", { class: "checked" }, h("span", { class: "unchecked", title: "No carrier has been asked about this label yet; it may already be picked up." }, NOT_YET_CHECKED));
    }
    return h("td", { class: "checked" }, timeElement(label.carrier_checked_at));
  }

  function hoursText(hours) {
    const whole = Math.floor(hours);
    return whole >= 48 ? whole + " h (" + Math.floor(whole / 24) + " days)" : whole + " h";
  }

  function plural(count, word) {
    return count + " " + word + (count === 1 ? "" : "s");
  }

  // -- the never-picked-up list ------------------------------------------------------------

  function query(path, extra, withAge) {
    const params = new URLSearchParams();
    if (originSelect.value) params.set("origin", originSelect.value);
    const hours = olderThan.value.trim();
    if (withAge && hours !== "") params.set("older_than_hours", hours);
    for (const [name, value] of Object.entries(extra || {})) params.set(name, value);
    return "../v1/labels/" + path + "?" + params.toString();
  }

  function rememberOrigins(origins) {
    let added = false;
    for (const origin of origins) {
      if (origin && !knownOrigins.has(origin)) {
        knownOrigins.add(origin);
        added = true;
      }
    }
    if (!added) return;
    const chosen = originSelect.value;
    const options = [h("option", { value: "" }, "All origins")].concat(
      [...knownOrigins].sort().map((o) => h("option", { value: o }, o)));
    originSelect.replaceChildren(...options);
    originSelect.value = chosen;
  }

  function table(origin, labels) {
    return h("table", { class: "labels" },
      h("caption", { class: "visually-hidden" }, origin + ": " + plural(labels.length, "label") + " never picked up, oldest first"),
      h("thead", {}, h("tr", {},
        ["Hours since label", "Carrier", "Tracking number", "Order", "Shipment", "Label printed", "Carrier checked", "Action"].map(
          (name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, labels.map((label) => h("tr", { dataset: { shipment: label.shipment_id } },
        h("td", { class: "hours" }, hoursText(label.hours_since_label)),
        h("td", {}, carrierName(label)),
        trackingCell(label),
        orderCell(label),
        h("td", {}, label.shipment_id),
        h("td", { class: "when" }, timeElement(label.label_created_at)),
        checkedCell(label),
        voidCell(label)))));
  }

  function uncheckedText(labels) {
    const count = labels.filter((label) => !label.carrier_checked_at).length;
    return count ? " · " + count + " " + NOT_YET_CHECKED : "";
  }

  function render() {
    const groups = new Map();
    for (const label of rows) {
      const origin = label.origin || NO_ORIGIN;
      if (!groups.has(origin)) groups.set(origin, []);
      groups.get(origin).push(label);
    }
    if (!rows.length) {
      list.replaceChildren(h("p", { class: "empty" }, "No label is waiting: every label past the grace period has been picked up."));
    } else {
      // Origins in the order of their oldest label: the list comes oldest first.
      list.replaceChildren(...[...groups].map(([origin, labels]) => h("section", { class: "origin", dataset: { origin } },
        h("h3", {}, origin, h("span", { class: "count" }, " · " + labels.length + " never picked up · oldest " +
          hoursText(labels[0].hours_since_label) + uncheckedText(labels))),
        table(origin, labels))));
    }
    more.hidden = !nextCursor;
  }

  async function fail(response, what) {
    const error = await T.errorOf(response);
    if (response.status === 401) {
      keeper.refused("The key was refused (" + error.message + "). Paste a valid warehouse key.");
    }
    announce.textContent = "Could not load " + what + ": " + error.message;
  }

  async function loadList(reset, key) {
    const extra = { limit: String(PAGE_SIZE) };
    if (!reset && nextCursor) extra.cursor = nextCursor;
    const response = await T.apiFetch(query("stalled", extra, true), key);
    if (!response.ok) {
      await fail(response, "the list");
      return false;
    }
    const page = await response.json();
    const fresh = page.labels.filter((label) => !voided.has(label.shipment_id));
    rows = reset ? fresh : rows.concat(fresh);
    nextCursor = page.next_cursor;
    rememberOrigins(page.labels.map((label) => label.origin));
    render();
    return true;
  }

  // -- labels to void ---------------------------------------------------------------------

  function costText(label) {
    return label.label_cost === null ? "—" : label.label_cost + " " + label.label_cost_currency;
  }

  function renderToVoid(body) {
    const windows = Object.entries(body.windows).map(([carrier, w]) => (CARRIERS[carrier] || carrier) + " " + w.days + " days");
    windowsText.textContent = "Windows: " + windows.join(", ") +
      " (defaults from the carriers' public pages; to be confirmed with your carrier contract).";
    const totals = body.total_at_stake.map((t) => t.amount + " " + t.currency + " on " + plural(t.labels, "label"));
    stake.textContent = plural(body.count, "label") + " to void" +
      (totals.length ? " · at stake: " + totals.join(", ") : "") +
      (body.labels_without_cost ? " · " + plural(body.labels_without_cost, "label") + " without a known cost" : "") +
      (body.truncated ? " · more labels than shown" : "");
    if (!body.labels.length) {
      toVoidList.replaceChildren(h("p", { class: "empty" }, "No label to void: none is waiting inside its carrier's window."));
      return;
    }
    toVoidList.replaceChildren(h("table", { class: "labels to-void-table" },
      h("caption", { class: "visually-hidden" }, plural(body.labels.length, "label") + " to void, soonest deadline first"),
      h("thead", {}, h("tr", {},
        ["Void by", "Days left", "Carrier", "Tracking number", "Order", "Origin", "Label printed", "Label cost", "Action"].map(
          (name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, body.labels.map((label) => h("tr", { dataset: { shipment: label.shipment_id } },
        h("td", { class: "deadline" }, timeElement(label.void_deadline)),
        h("td", { class: label.days_left < 3 ? "days-left soon" : "days-left" }, label.days_left.toFixed(1)),
        h("td", {}, carrierName(label)),
        trackingCell(label),
        orderCell(label),
        h("td", {}, label.origin || NO_ORIGIN),
        h("td", { class: "when" }, timeElement(label.label_created_at)),
        h("td", { class: "cost" }, costText(label)),
        voidCell(label))))));
  }

  async function loadToVoid(key) {
    const response = await T.apiFetch(query("to-void", {}, false), key);
    if (!response.ok) {
      await fail(response, "the labels to void");
      return false;
    }
    const body = await response.json();
    body.labels = body.labels.filter((label) => !voided.has(label.shipment_id));
    renderToVoid(body);
    return true;
  }

  // -- the chart: never-picked-up labels per origin by age bucket (inline SVG) ---------------

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, String(value));
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function renderAges(body) {
    const buckets = body.buckets;
    const origins = body.origins;
    if (!origins.length) {
      chart.replaceChildren(h("p", { class: "empty" }, "No label waits for pickup at any origin."));
      return;
    }
    rememberOrigins(origins.map((o) => o.origin));
    const rowH = 26, gap = 8, labelW = 110, barW = 520, countW = 50, legendH = 26;
    const width = labelW + barW + countW;
    const height = legendH + origins.length * (rowH + gap);
    const most = Math.max(...origins.map((o) => o.total));
    const words = origins.map((o) => (o.origin || NO_ORIGIN) + ": " +
      buckets.map((b, i) => o.counts[i] + " " + b.label).join(", ")).join("; ");
    const legend = buckets.map((b, i) => svg("g", { class: "legend-item" },
      svg("rect", { x: labelW + i * 110, y: 4, width: 14, height: 14, class: "bucket-" + i }),
      svg("text", { x: labelW + i * 110 + 20, y: 16 }, b.label)));
    const bars = origins.map((o, row) => {
      const y = legendH + row * (rowH + gap);
      let x = labelW;
      const segments = buckets.map((b, i) => {
        const w = most ? (o.counts[i] / most) * barW : 0;
        const rect = svg("rect", {
          x, y, width: w, height: rowH, class: "bucket-" + i,
          "data-bucket": b.key, "data-count": o.counts[i],
        }, svg("title", {}, (o.origin || NO_ORIGIN) + ", " + b.label + ": " + plural(o.counts[i], "label")));
        x += w;
        return rect;
      });
      return svg("g", { class: "origin-bar", "data-origin": o.origin || NO_ORIGIN, "data-total": o.total },
        svg("text", { x: labelW - 8, y: y + rowH / 2 + 5, "text-anchor": "end", class: "origin-name" }, o.origin || NO_ORIGIN),
        segments,
        svg("text", { x: x + 6, y: y + rowH / 2 + 5, class: "origin-total" }, String(o.total)));
    });
    chart.replaceChildren(svg("svg", {
      role: "img", "aria-labelledby": "ages-svg-title ages-svg-desc",
      viewBox: "0 0 " + width + " " + height, width, height, class: "ages-svg",
    },
    svg("title", { id: "ages-svg-title" }, "Labels never picked up per origin, by age"),
    svg("desc", { id: "ages-svg-desc" }, words + "."),
    legend, bars));
  }

  async function loadAges(key) {
    const response = await T.apiFetch("../v1/labels/stalled/ages", key);
    if (!response.ok) {
      await fail(response, "the chart");
      return false;
    }
    renderAges(await response.json());
    return true;
  }

  // -- loading everything, voiding ---------------------------------------------------------

  /** Load the list, the labels to void and the chart; "say" announces the count (not after a void). */
  async function loadAll(reset, say = true) {
    const key = keeper.key();
    if (!key) return;
    if (loading) {
      again = true; // a change (a void) while loading: load once more when this load ends
      return;
    }
    loading = true;
    list.setAttribute("aria-busy", "true");
    try {
      const done = await Promise.all([loadList(reset, key), loadToVoid(key), loadAges(key)]);
      if (done.every(Boolean)) {
        updated.textContent = "Updated " + zoned(new Date().toISOString()) + " · " + plural(rows.length, "label") +
          (nextCursor ? " (more available)" : "");
        if (reset && say) announce.textContent = plural(rows.length, "label") + " never picked up loaded.";
      }
    } catch (e) {
      announce.textContent = "tracksvc is not reachable; the list will retry.";
    } finally {
      loading = false;
      list.setAttribute("aria-busy", "false");
      if (again) {
        again = false;
        loadAll(true, false);
      }
    }
  }

  async function voidLabel(label, button) {
    const key = keeper.key();
    if (!key) {
      keeper.ask("Paste a warehouse key to void a label.", true);
      return;
    }
    const question = "Void the " + carrierName(label) + " label " + label.tracking_number + " (shipment " +
      label.shipment_id + ")? Void it with " + carrierName(label) + " too; it will leave both lists.";
    if (!window.confirm(question)) return;
    button.disabled = true;
    try {
      const response = await fetch("../v1/shipments/" + encodeURIComponent(label.shipment_id) + "/void", {
        method: "POST",
        headers: { Authorization: "Bearer " + key, Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
      if (!response.ok) {
        button.disabled = false;
        await fail(response, "the void");
        return;
      }
      const record = await response.json();
      voided.add(label.shipment_id);
      for (const row of document.querySelectorAll("tr[data-shipment]")) {
        if (row.dataset.shipment === label.shipment_id) row.remove();
      }
      rows = rows.filter((r) => r.shipment_id !== label.shipment_id);
      announce.textContent = "Label " + label.tracking_number + " marked voided (" + zoned(record.voided_at) + ").";
      loadAll(true, false);
    } catch (e) {
      button.disabled = false;
      announce.textContent = "The label could not be voided: tracksvc is not reachable.";
    }
  }

  // -- CSV downloads ------------------------------------------------------------------------

  function filename(response, fallback) {
    const header = response.headers.get("Content-Disposition") || "";
    const match = /filename="?([^";]+)"?/.exec(header);
    return match ? match[1] : fallback;
  }

  async function downloadCsv(path, withAge, fallback) {
    const key = keeper.key();
    if (!key) {
      keeper.ask("Paste a warehouse key to download the list.", true);
      return;
    }
    announce.textContent = "Preparing the CSV…";
    try {
      const extra = path === "stalled" ? { limit: "100000" } : {};
      const response = await T.apiFetch(query(path, extra, withAge), key, "text/csv");
      if (!response.ok) {
        await fail(response, "the CSV");
        return;
      }
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: filename(response, fallback), class: "offscreen" });
      document.body.append(link);
      link.click();
      link.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 10000);
      announce.textContent = "CSV downloaded.";
    } catch (e) {
      announce.textContent = "The CSV could not be downloaded: tracksvc is not reachable.";
    }
  }

  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    loadAll(true);
  });
  originSelect.addEventListener("change", () => loadAll(true));
  download.addEventListener("click", () => downloadCsv("stalled", true, "never-picked-up-labels.csv"));
  downloadToVoid.addEventListener("click", () => downloadCsv("to-void", false, "labels-to-void.csv"));
  more.addEventListener("click", async () => {
    const key = keeper.key();
    if (key) await loadList(false, key);
  });
  window.setInterval(() => {
    if (autoRefresh.checked && !document.hidden) loadAll(true);
  }, refreshSeconds * 1000);

  loadAll(true);
})();

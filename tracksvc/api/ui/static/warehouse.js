/* The warehouse page: labels printed and never picked up, per origin, oldest first. */
(function () {
  "use strict";
  const T = window.Tracksvc;
  const h = T.h;
  const CARRIERS = { ups: "UPS", fedex: "FedEx", usps: "USPS" };
  const PAGE_SIZE = 500;
  const NO_ORIGIN = "(no origin)";
  // A label no carrier was asked about yet: the list claims nothing about it.
  const NOT_YET_CHECKED = "not yet checked";

  const filters = document.getElementById("filters");
  const originSelect = document.getElementById("origin");
  const olderThan = document.getElementById("older-than");
  const autoRefresh = document.getElementById("auto-refresh");
  const download = document.getElementById("download");
  const more = document.getElementById("more");
  const announce = document.getElementById("announce");
  const updated = document.getElementById("updated");
  const list = document.getElementById("labels");
  const refreshSeconds = Math.max(1, parseInt(document.body.dataset.refreshS, 10) || 60);
  document.getElementById("refresh-seconds").textContent = String(refreshSeconds);

  const knownOrigins = new Set();
  let rows = [];
  let nextCursor = null;
  let loading = false;

  const keeper = T.keyKeeper({
    focusAfterKey: originSelect,
    onKey() {
      load(true);
    },
  });

  function query(extra) {
    const params = new URLSearchParams();
    if (originSelect.value) params.set("origin", originSelect.value);
    const hours = olderThan.value.trim();
    if (hours !== "") params.set("older_than_hours", hours);
    for (const [name, value] of Object.entries(extra || {})) params.set(name, value);
    return "../v1/labels/stalled?" + params.toString();
  }

  function rememberOrigins(labels) {
    let added = false;
    for (const label of labels) {
      if (label.origin && !knownOrigins.has(label.origin)) {
        knownOrigins.add(label.origin);
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

  function hoursText(hours) {
    const whole = Math.floor(hours);
    return whole >= 48 ? whole + " h (" + Math.floor(whole / 24) + " days)" : whole + " h";
  }

  function checkedCell(label) {
    if (!label.carrier_checked_at) {
      return h("td", { class: "checked" }, h("span", { class: "unchecked", title: "No carrier has been asked about this label yet; it may already be picked up." }, NOT_YET_CHECKED));
    }
    return h("td", { class: "checked" }, h("time", { datetime: label.carrier_checked_at }, T.formatTime(label.carrier_checked_at)));
  }

  function table(origin, labels) {
    return h("table", { class: "labels" },
      h("caption", { class: "visually-hidden" }, origin + ": " + labels.length + " label" + (labels.length === 1 ? "" : "s") + ", oldest first"),
      h("thead", {}, h("tr", {},
        ["Hours since label", "Carrier", "Tracking number", "Order", "Shipment", "Label printed", "Carrier checked"].map(
          (name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, labels.map((label) => h("tr", { dataset: { shipment: label.shipment_id } },
        h("td", { class: "hours" }, hoursText(label.hours_since_label)),
        h("td", {}, CARRIERS[label.carrier] || label.carrier),
        h("td", {}, h("code", {}, label.tracking_number)),
        h("td", {}, label.order_number || "—"),
        h("td", {}, label.shipment_id),
        h("td", {}, h("time", { datetime: label.label_created_at }, T.formatTime(label.label_created_at))),
        checkedCell(label)))));
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
      list.replaceChildren(h("p", { class: "empty" }, "No stalled labels. Every label past the grace period has been scanned."));
    } else {
      // Origins in the order of their oldest label: the list comes oldest first.
      list.replaceChildren(...[...groups].map(([origin, labels]) => h("section", { class: "origin", dataset: { origin } },
        h("h2", {}, origin, h("span", { class: "count" }, " · " + labels.length + " stalled · oldest " +
          hoursText(labels[0].hours_since_label) + uncheckedText(labels))),
        table(origin, labels))));
    }
    more.hidden = !nextCursor;
  }

  async function fail(response) {
    const error = await T.errorOf(response);
    if (response.status === 401) {
      keeper.refused("The key was refused (" + error.message + "). Paste a valid warehouse key.");
    }
    announce.textContent = "Could not load the list: " + error.message;
  }

  async function load(reset) {
    const key = keeper.key();
    if (!key || loading) return;
    loading = true;
    list.setAttribute("aria-busy", "true");
    try {
      const extra = { limit: String(PAGE_SIZE) };
      if (!reset && nextCursor) extra.cursor = nextCursor;
      const response = await T.apiFetch(query(extra), key);
      if (!response.ok) {
        await fail(response);
        return;
      }
      const page = await response.json();
      rows = reset ? page.labels : rows.concat(page.labels);
      nextCursor = page.next_cursor;
      rememberOrigins(page.labels);
      render();
      const now = new Date();
      updated.textContent = "Updated " + now.toLocaleTimeString() + " · " + rows.length + " label" +
        (rows.length === 1 ? "" : "s") + (nextCursor ? " (more available)" : "");
      if (reset) announce.textContent = rows.length + " stalled label" + (rows.length === 1 ? "" : "s") + " loaded.";
    } catch (e) {
      announce.textContent = "tracksvc is not reachable; the list will retry.";
    } finally {
      loading = false;
      list.setAttribute("aria-busy", "false");
    }
  }

  function filename(response) {
    const header = response.headers.get("Content-Disposition") || "";
    const match = /filename="?([^";]+)"?/.exec(header);
    return match ? match[1] : "stalled-labels.csv";
  }

  async function downloadCsv() {
    const key = keeper.key();
    if (!key) {
      keeper.ask("Paste a warehouse key to download the list.", true);
      return;
    }
    announce.textContent = "Preparing the CSV…";
    try {
      const response = await T.apiFetch(query({ limit: "100000" }), key, "text/csv");
      if (!response.ok) {
        await fail(response);
        return;
      }
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: filename(response), class: "offscreen" });
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
    load(true);
  });
  originSelect.addEventListener("change", () => load(true));
  download.addEventListener("click", downloadCsv);
  more.addEventListener("click", () => load(false));
  window.setInterval(() => {
    if (autoRefresh.checked && !document.hidden) load(true);
  }, refreshSeconds * 1000);

  load(true);
})();

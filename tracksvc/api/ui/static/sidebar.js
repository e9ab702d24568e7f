/* The helpdesk sidebar: paste anything, see the order in one look. */
(function () {
  "use strict";
  const T = window.Tracksvc;
  const h = T.h;

  /** Status -> [words, tone]; the tone picks the colour, the words carry the meaning. */
  const STATUS = {
    label_created: ["Label printed, not yet with the carrier", "info"],
    not_tendered: ["Never handed to the carrier", "bad"],
    in_transit: ["In transit", "info"],
    stalled: ["Stalled: no recent carrier scan", "bad"],
    out_for_delivery: ["Out for delivery", "ok"],
    delivery_attempted: ["Delivery attempted", "warn"],
    available_for_pickup: ["Ready for pickup", "warn"],
    delivered: ["Delivered", "ok"],
    exception: ["Carrier reports a problem", "bad"],
    returned_to_sender: ["Returning to sender", "bad"],
    cancelled: ["Label cancelled", "muted"],
    not_found: ["Carrier has no record", "bad"],
    unknown: ["Carrier could not be asked", "muted"],
    awaiting_shipment: ["Awaiting shipment: no label yet", "warn"],
  };
  const FLAGS = {
    not_tendered: "Never scanned by the carrier",
    stalled: "Stalled in transit",
    promise_missed: "Promised date missed",
    internal_mismatch: "Our system says shipped; the carrier never scanned it",
    replaced_order: "Order was re-placed",
    stale: "Stale: carrier unreachable",
    ship_by_missed: "Ship-by date missed",
    registry_unavailable: "Order registry unavailable",
    delivered_disputed: "Customer says it never arrived",
  };
  const MATCHED = {
    order_number: "order number",
    shipment_id: "shipment id",
    tracking_number: "tracking number",
    internal_shipping_number: "internal shipping number",
    alias: "another number on the order (RMA, store order)",
    replaced_order: "an earlier order number",
    carrier_number: "carrier tracking number (not in our registry)",
  };
  const CARRIERS = { ups: "UPS", fedex: "FedEx", usps: "USPS" };

  const form = document.getElementById("lookup");
  const input = document.getElementById("reference");
  const announce = document.getElementById("announce");
  const result = document.getElementById("result");
  let pending = null;
  let sequence = 0;

  const keeper = T.keyKeeper({
    focusAfterKey: input,
    onKey() {
      if (pending !== null) lookup(pending);
    },
    onReference(reference) {
      input.value = reference;
      lookup(reference);
    },
  });

  function words(status) {
    return (STATUS[status] || [status, "muted"])[0];
  }

  function tone(status) {
    return (STATUS[status] || [status, "muted"])[1];
  }

  function statusBadge(status) {
    return h("span", { class: "badge tone-" + tone(status) }, words(status));
  }

  function eventLine(event) {
    const where = event.location ? " — " + event.location : "";
    return h("span", {},
      event.description || "(no description)", where, " · ",
      event.occurred_at ? T.agoElement(event.occurred_at) : "time unknown");
  }

  function freshness(shipment) {
    if (shipment.freshness === "unavailable" || !shipment.as_of) return null;
    const parts = [T.agoElement(shipment.as_of, "as of ")];
    if (shipment.freshness === "cached") parts.push(" (cached)");
    if (shipment.freshness === "live") parts.push(" (live)");
    if (shipment.freshness === "stale") {
      return h("p", { class: "freshness stale", role: "note" },
        h("strong", {}, "Stale: "), parts, shipment.reason ? " — " + shipment.reason : "");
    }
    return h("p", { class: "freshness" }, parts);
  }

  /**
   * A Copy button for one number the agent may read out (or the words to say); `what` names it
   * ("order number"), `spoken` is how it is named aloud (default: what and the number).
   */
  function copyButton(text, what, spoken) {
    const name = spoken || what + " " + text;
    const button = h("button", {
      type: "button",
      class: "copy",
      "aria-label": "Copy " + name,
      dataset: { copy: text },
    }, "Copy");
    button.addEventListener("click", async () => {
      const ok = await T.copyText(text);
      button.textContent = ok ? "Copied" : "Copy failed";
      announce.textContent = ok ? name.charAt(0).toUpperCase() + name.slice(1) + " copied." :
        "Could not copy; select the text instead.";
      window.setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
    return button;
  }

  /** One number with its Copy button: "Order W2001002 [Copy]". */
  function numberLine(cls, label, number, what) {
    return h("p", { class: "number-line " + cls },
      h("span", { class: "label" }, label + " "),
      h("code", { class: "number" }, number), " ", copyButton(number, what));
  }

  function facts(shipment) {
    const out = [];
    if (shipment.label_created_at) out.push(h("li", {}, "Label printed ", T.agoElement(shipment.label_created_at)));
    if (shipment.origin) out.push(h("li", {}, "Ships from " + shipment.origin));
    if (shipment.internal_status) {
      out.push(h("li", {}, "Our system says: " + shipment.internal_status +
        (shipment.internal_note ? " (“" + shipment.internal_note + "”)" : "")));
    }
    if (shipment.internal_shipping_number) out.push(h("li", {}, "Internal shipping number " + shipment.internal_shipping_number));
    if (shipment.promised_delivery_date) out.push(h("li", {}, "Promised by " + shipment.promised_delivery_date));
    if (shipment.delivered_at) out.push(h("li", {}, "Delivered ", T.agoElement(shipment.delivered_at), " (" + T.formatTime(shipment.delivered_at) + ")"));
    else if (shipment.estimated_delivery) out.push(h("li", {}, "Estimated delivery " + shipment.estimated_delivery));
    return out.length ? h("ul", { class: "facts" }, out) : null;
  }

  function timeline(events) {
    if (!events || !events.length) return null;
    return h("details", { class: "timeline" },
      h("summary", {}, "Timeline (" + events.length + " event" + (events.length === 1 ? "" : "s") + ")"),
      h("ol", {}, events.map((e) => h("li", {},
        h("span", { class: "when" }, e.occurred_at ? T.formatTime(e.occurred_at) : "time unknown"),
        h("span", { class: "what" }, e.description || e.code),
        e.location ? h("span", { class: "where" }, e.location) : null))));
  }

  /** A carrier's notice that is not an event (USPS "not yet available"): its first sentence, said once. */
  function noticeText(text) {
    const plain = String(text).replace(/^\s*\d+\s*:\s*/, "").trim();
    const first = /^(.+?[.!?])(\s|$)/.exec(plain);
    return first ? first[1] : plain;
  }

  /** What the carrier last said: an event, its notice when it has no events, or why it could not be asked. */
  function lastWord(shipment, carrier, view) {
    if (shipment.last_event) {
      return h("p", { class: "last-event" }, h("span", { class: "label" }, "Last event: "), eventLine(shipment.last_event));
    }
    if (shipment.carrier_problem) {
      // Said once: the advice already carries the sentence when this parcel decided the order.
      if (shipment.freshness === "stale" || (shipment.reason && view.agent_advice.includes(shipment.reason))) return null;
      return h("p", { class: "problem", role: "note" }, shipment.reason);
    }
    if (shipment.status_detail) {
      return h("p", { class: "carrier-notice" }, h("span", { class: "label" }, "No scans yet. " + carrier + " says: "),
        "“" + noticeText(shipment.status_detail) + "”");
    }
    return h("p", { class: "carrier-notice" }, "No carrier events yet.");
  }

  function shipmentCard(shipment, view) {
    const carrier = CARRIERS[shipment.carrier] || shipment.carrier;
    const url = T.safeUrl(shipment.tracking_url);
    const link = url
      ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer", class: "track-link" },
        "Track on " + carrier, h("span", { class: "visually-hidden" }, " (opens in a new tab)"))
      : null;
    // The order's status is said once, at the top; a parcel says its own only when it differs.
    const own = shipment.status !== view.status ? statusBadge(shipment.status) : null;
    const isReturn = shipment.direction === "return";
    return h("li", {
      class: "shipment tone-border-" + tone(shipment.status),
      dataset: { status: shipment.status, direction: shipment.direction },
    },
      h("h3", { class: "shipment-head" }, h("span", { class: "carrier" }, carrier), own),
      h("p", { class: "tracking" },
        h("span", { class: "visually-hidden" }, "Tracking number "),
        h("code", { class: "number" }, shipment.tracking_number), " ",
        copyButton(shipment.tracking_number, isReturn ? "return tracking number" : "tracking number"), " ", link),
      (shipment.aliases || []).map((alias) => numberLine("alias", /^RMA/i.test(alias) ? "RMA" : "Also known as",
        alias, /^RMA/i.test(alias) ? "RMA number" : "number")),
      lastWord(shipment, carrier, view),
      facts(shipment),
      freshness(shipment),
      timeline(shipment.events));
  }

  /** Outbound parcels, then return parcels in a section of their own. */
  function parcels(view) {
    const outbound = view.shipments.filter((s) => s.direction !== "return");
    const returns = view.shipments.filter((s) => s.direction === "return");
    const out = [];
    if (!view.shipments.length) out.push(h("h2", { class: "shipments-title" }, "No shipments yet"));
    if (outbound.length) {
      out.push(h("section", { class: "parcels parcels-outbound", "aria-label": "Parcels to the customer" },
        h("h2", { class: "shipments-title" },
          outbound.length === 1 ? "Parcel to the customer" : "Parcels to the customer (" + outbound.length + ")"),
        h("ol", { class: "shipments" }, outbound.map((s) => shipmentCard(s, view)))));
    }
    if (returns.length) {
      out.push(h("section", { class: "parcels parcels-return", "aria-label": "Return parcels" },
        h("h2", { class: "shipments-title" },
          (returns.length === 1 ? "Return parcel" : "Return parcels (" + returns.length + ")") + ": coming back to us"),
        h("ol", { class: "shipments" }, returns.map((s) => shipmentCard(s, view)))));
    }
    return out;
  }

  /** Codes, internal ids and raw carrier text: for support, behind one toggle. */
  function supportDetails(view) {
    const rows = [
      ["Status code", view.status],
      ["Found by", MATCHED[view.matched] || view.matched],
    ];
    if (view.flags.length) rows.push(["Flags", view.flags.join(", ")]);
    for (const s of view.shipments) {
      const name = (CARRIERS[s.carrier] || s.carrier) + " " + s.tracking_number;
      rows.push([name, s.status + (s.shipment_id ? " · " + s.shipment_id : "")]);
      if (s.carrier_status_code) rows.push(["Carrier code", s.carrier_status_code]);
      if (s.status_detail) rows.push(["Carrier text", s.status_detail]);
      if (s.carrier_problem) {
        rows.push(["Problem", s.carrier_problem.kind + " at " + T.formatTime(s.carrier_problem.asked_at)]);
        rows.push(["Raw reason", s.carrier_problem.detail]);
      }
      for (const e of s.events) if (e.code) rows.push(["Event code", e.code + " " + (e.description || "")]);
    }
    return h("details", { class: "support" },
      h("summary", {}, "Details for support"),
      h("dl", {}, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
  }

  /** Flags that add to the status (the status itself is said once, at the top). */
  function extraFlags(view) {
    const said = new Set([view.status, "replaced_order"]);
    return view.flags.filter((f) => !said.has(f));
  }

  function render(view) {
    const order = view.order_number
      ? numberLine("order", view.replaced_from ? "New order" : "Order", view.order_number,
        view.replaced_from ? "new order number" : "order number")
      : h("p", { class: "number-line" }, "Not a registered order");
    const flags = extraFlags(view);
    // Through h() so that absent parts (null) are skipped, not written as "null".
    const parts = h("div", {},
      h("div", { class: "status-card tone-" + tone(view.status), dataset: { status: view.status } },
        h("p", { class: "status-words" }, words(view.status)),
        order,
        h("p", { class: "summary" }, view.summary)),
      h("div", { class: "advice", role: "note", "aria-label": "What to do" },
        h("h2", {}, "What to do"), h("p", {}, view.agent_advice)),
      h("div", { class: "say", role: "note", "aria-label": "What to say" },
        h("h2", {}, "What to say"),
        h("p", { class: "say-text" }, view.customer_message),
        copyButton(view.customer_message, "message", "what to say")),
      disputeButton(view),
      flags.length
        ? h("ul", { class: "flags", "aria-label": "Flags" },
          flags.map((f) => h("li", { class: "flag", dataset: { flag: f } }, FLAGS[f] || f)))
        : null,
      parcels(view),
      supportDetails(view));
    result.replaceChildren(...parts.childNodes);
    result.hidden = false;
    announce.textContent = (view.order_number || view.reference) + ": " + words(view.status) + ". " + view.summary;
  }

  // Only the customer can say a "delivered" parcel never arrived: one click asks again
  // with that claim, and the advice turns to checking the spot and opening a claim.
  function disputeButton(view) {
    if (view.status !== "delivered" || view.flags.includes("delivered_disputed")) return null;
    const button = h("button", { type: "button", class: "dispute" }, "Customer says it never arrived");
    button.addEventListener("click", () => lookup(view.reference, "not_received"));
    return button;
  }

  function renderError(title, message) {
    result.replaceChildren(h("div", { class: "error-box", role: "alert" }, h("h2", {}, title), h("p", {}, message)));
    result.hidden = false;
    announce.textContent = title + ": " + message;
  }

  /** A 404: what is wrong with the reference, and each registered near match as one click. */
  function renderNotFound(error) {
    renderError("Not found", error.message);
    const near = Array.isArray(error.did_you_mean) ? error.did_you_mean.filter((r) => typeof r === "string") : [];
    if (!near.length) return;
    const choices = near.map((reference) =>
      h("li", {}, h("button", {
        type: "button",
        class: "suggestion",
        "aria-label": "Look up " + reference,
        onclick: () => { input.value = reference; lookup(reference); },
      }, reference)));
    result.querySelector(".error-box").append(
      h("p", { class: "did-you-mean-title" }, "Did you mean:"),
      h("ul", { class: "did-you-mean", "aria-label": "Did you mean" }, choices));
    announce.textContent += " Did you mean " + near.join(", ") + "?";
  }

  async function lookup(raw, claim) {
    const reference = (raw || "").trim();
    if (!reference) {
      renderError("Nothing to look up", "Paste an order, shipping, return or tracking number.");
      input.focus();
      return;
    }
    const key = keeper.key();
    if (!key) {
      pending = reference;
      keeper.ask("Paste an agent API key to look this up.", true);
      return;
    }
    pending = null;
    const mine = ++sequence;
    result.setAttribute("aria-busy", "true");
    result.replaceChildren(h("p", { class: "loading" }, "Looking up " + reference + "…"));
    result.hidden = false;
    announce.textContent = "Looking up " + reference + "…";
    let response;
    try {
      const query = claim ? "?claim=" + encodeURIComponent(claim) : "";
      response = await T.apiFetch("../v1/track/" + encodeURIComponent(reference) + query, key);
    } catch (e) {
      if (mine === sequence) renderError("tracksvc is not reachable", "Check your connection and try again.");
      return;
    } finally {
      if (mine === sequence) result.setAttribute("aria-busy", "false");
    }
    if (mine !== sequence) return;
    if (response.ok) {
      render(await response.json());
      return;
    }
    const error = await T.errorOf(response);
    if (response.status === 401) {
      pending = reference;
      keeper.refused("The key was refused (" + error.message + "). Paste a valid agent key.");
      renderError("Key refused", error.message);
    } else if (response.status === 403) {
      renderError("This key may not look orders up", error.message);
    } else if (response.status === 404) {
      renderNotFound(error);
    } else if (response.status === 400) {
      renderError("Not a reference", error.message);
    } else {
      renderError("Lookup failed", error.message);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    lookup(input.value);
  });

  if (keeper.fragmentReference) {
    input.value = keeper.fragmentReference;
    lookup(keeper.fragmentReference);
  }
})();

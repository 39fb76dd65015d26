// A trader's controls (issue 17): close a position, flatten a webhook, flatten everything, and a
// webhook's trading windows. Uses VZ (app.js) for the API; every click asks for confirmation, and
// a webhook on a live Alpaca account asks a second time before sending confirm_live.
"use strict";

const VZ_CONTROLS = (() => {
  function describe(result) {
    const sent = result.sent || [];
    if (!sent.length) return "nothing to close";
    return sent.map((s) => {
      if (s.status === "already_closing") return `${s.symbol}: already closing`;
      if (s.action === "cancel") return `${s.symbol}: cancel ${s.open_orders} working order(s)`;
      return `${s.symbol}: exit ${s.side} ${s.qty}`;
    }).join("; ");
  }

  // POST with one Idempotency-Key per click (a retry of the same click replays, never resends);
  // a 409 live_flatten asks once more, then sends confirm_live.
  async function send(path) {
    const key = VZ.newKey();
    let r = await VZ.api("POST", path, {}, key);
    if (r.status === 409 && r.data && r.data.code === "live_flatten") {
      if (!confirm("This webhook trades a LIVE Alpaca account: send real-money orders?")) return null;
      r = await VZ.api("POST", path, { confirm_live: true }, VZ.newKey());
    }
    return r;
  }

  // What a control did, on the page-level status line (fragments below re-render on each tick).
  function note(r, words) {
    const out = document.getElementById("control-result");
    out.hidden = false;
    out.className = r.ok ? "ok" : "error";
    out.textContent = r.ok ? words(r.data) : (r.data && r.data.message) || `error ${r.status}`;
    return out;
  }

  function refresh() {
    document.body.dispatchEvent(new Event("vz:tick"));
    document.body.dispatchEvent(new Event("vz:signals"));
  }

  // Close one position (the Close button of a position row).
  document.addEventListener("click", async (e) => {
    const b = e.target.closest("[data-close-position]");
    if (!b) return;
    const symbol = b.dataset.closePosition;
    if (!confirm(`Close the ${symbol} position now at market?`)) return;
    b.disabled = true;
    const path = `/api/webhook-configs/${b.dataset.configId}/positions/${encodeURIComponent(symbol)}/close`;
    const r = await send(path);
    if (!r) { b.disabled = false; return; }
    b.disabled = false;
    note(r, (d) => "Close sent: " + describe(d));
    refresh();
  });

  // Flatten one webhook (its page, and each row of the webhook list).
  document.addEventListener("click", async (e) => {
    const b = e.target.closest("[data-flatten-config]");
    if (!b) return;
    if (!confirm("Flatten this webhook? Every position is closed at market and every working order canceled.")) return;
    b.disabled = true;
    const r = await send(`/api/webhook-configs/${b.dataset.flattenConfig}/flatten`);
    b.disabled = false;
    if (!r) return;
    const out = document.getElementById("flatten-result");
    if (out && b.id === "flatten-config") {
      out.className = r.ok ? "ok" : "error";
      out.textContent = r.ok ? "Flatten sent: " + describe(r.data) : (r.data && r.data.message) || `error ${r.status}`;
    } else {
      note(r, (d) => "Flatten sent: " + describe(d));
    }
    refresh();
  });

  // The panic button: flatten every webhook.
  document.addEventListener("click", async (e) => {
    const b = e.target.closest("#flatten-all");
    if (!b) return;
    if (!confirm("FLATTEN ALL? Every position of every webhook is closed at market and every working order canceled.")) return;
    b.disabled = true;
    const r = await send("/api/flatten");
    b.disabled = false;
    if (!r) return;
    note(r, (d) => "Flatten all sent: "
      + (d.configs.map(describe).filter((t) => t !== "nothing to close").join("; ") || "nothing to close"));
    refresh();
  });

  // --- trading windows in the webhook's settings -------------------------------------------------
  function windowsText(list) {
    return (list || []).map((w) => `${w.start}-${w.end}`).join(", ");
  }
  function parseWindows(text) {
    return text.split(",").map((s) => s.trim()).filter(Boolean).map((s) => {
      const [start, end] = s.split("-").map((t) => t.trim());
      return { start, end: end || "" };
    });
  }
  function fill(form, w) {
    form.elements.windows_enabled.checked = !!w;
    form.elements.calendar.value = w ? w.calendar : "XNYS";
    form.elements.timezone.value = w ? w.timezone : "";
    form.elements.entry_windows.value = w ? windowsText(w.entry_windows) : "09:30-15:45";
    form.elements.flatten_at.value = w && w.flatten_at ? w.flatten_at : "";
    form.elements.cancel_at_window_end.checked = !!(w && w.cancel_at_window_end);
  }
  function showWindowErrors(form, r) {
    const out = document.getElementById("windows-error");
    out.textContent = "";
    if (r.ok) return;
    const fields = (r.data && r.data.errors && r.data.errors.json && r.data.errors.json.trading_windows) || {};
    const where = Object.keys(fields).join(", ");
    out.textContent = (r.data && r.data.message) || `error ${r.status}`;
    if (where && !out.textContent.includes(where)) out.textContent += ` (${where})`;
    out.dataset.code = (r.data && r.data.code) || "";
  }

  document.body.addEventListener("vz:ready", async () => {
    const form = document.getElementById("windows-form");
    if (!form) return;
    const path = "/api/webhook-configs/" + form.dataset.configId;
    // After the page's own load of this webhook (app.js fills #config-url): not racing it.
    const url = document.getElementById("config-url");
    for (let i = 0; i < 200 && url && !url.textContent; i++) await new Promise((done) => setTimeout(done, 25));
    // The form stays disabled unless this read succeeds; a failure says so under it.
    const r = await VZ.read(path, "the trading windows");
    if (!r.ok) { showWindowErrors(form, r); return; }
    fill(form, r.data.trading_windows);
    document.getElementById("windows-fields").disabled = false;
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      let windows = null;
      if (form.elements.windows_enabled.checked) {
        windows = {
          calendar: form.elements.calendar.value.trim(),
          entry_windows: parseWindows(form.elements.entry_windows.value),
          flatten_at: form.elements.flatten_at.value.trim() || null,
          cancel_at_window_end: form.elements.cancel_at_window_end.checked,
        };
        const zone = form.elements.timezone.value.trim();
        if (zone) windows.timezone = zone;
      }
      const saved = document.getElementById("windows-saved");
      saved.textContent = "";
      const answer = await VZ.api("PATCH", path, { trading_windows: windows });
      showWindowErrors(form, answer);
      if (answer.ok) { fill(form, answer.data.trading_windows); saved.textContent = "Saved"; }
    });
  }, { once: true });

  return { describe };
})();

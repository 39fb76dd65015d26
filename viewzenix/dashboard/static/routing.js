// Routing controls on a webhook's page (issue 17 items 5-7): groups, source allowlist, symbol mapping.
// Uses VZ (app.js) once the page is ready; every call goes through the REST API with the user's token.
"use strict";

(() => {
  function firstError(data) {
    if (!data) return "Request failed";
    const errors = data.errors || {};
    const field = Object.keys(errors)[0];
    const detail = field && Array.isArray(errors[field]) ? " (" + field + ": " + errors[field][0] + ")" : "";
    return (data.message || "Request failed") + detail;
  }
  // GET ``path`` (VZ.read); on a failed request or answer, say so in ``error`` and return null.
  async function read(path, error, what) {
    const r = await VZ.read(path, what);
    if (!r.ok) { error.textContent = firstError(r.data); return null; }
    return r.data;
  }
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function allowlist(id) {
    const path = "/api/webhook-configs/" + id + "/source-allowlist";
    const input = document.getElementById("allowlist-input");
    const status = document.getElementById("allowlist-status");
    const error = document.getElementById("allowlist-error");
    const show = (data) => { input.value = (data.allowed_source_ips || []).join("\n"); };
    // The textarea and its buttons are disabled in the page until the allowlist is read:
    // a save before that would replace it with what the empty box holds.
    const data = await read(path, error, "the allowlist");
    if (!data) return;
    show(data);
    for (const node of [input, document.getElementById("allowlist-save"), document.getElementById("allowlist-tradingview")]) {
      node.disabled = false;
    }
    async function save(body) {
      error.textContent = ""; status.textContent = "";
      const r = await VZ.api("PUT", path, body);
      if (r.ok) { show(r.data); status.textContent = r.data.allowed_source_ips ? "Saved." : "Saved: any address."; }
      else error.textContent = firstError(r.data);
    }
    document.getElementById("allowlist-save").addEventListener("click", () => {
      const lines = input.value.split(/[\n,]+/).map((s) => s.trim()).filter(Boolean);
      save({ allowed_source_ips: lines.length ? lines : null });
    });
    document.getElementById("allowlist-tradingview").addEventListener("click", () => {
      const lines = input.value.split(/[\n,]+/).map((s) => s.trim()).filter(Boolean);
      save({ allowed_source_ips: lines, preset: "tradingview" });
    });
  }

  async function mappings(id) {
    const path = "/api/webhook-configs/" + id + "/symbol-mappings";
    const body = document.querySelector("#mapping-table tbody");
    const status = document.getElementById("mapping-status");
    const error = document.getElementById("mapping-error");
    function row(alert, broker) {
      const tr = el("tr");
      const a = el("input", { "aria-label": "Alert ticker", class: "map-alert", placeholder: "BTCUSDT" });
      const b = el("input", { "aria-label": "Broker symbol", class: "map-broker", placeholder: "BTC/USD" });
      a.value = alert || ""; b.value = broker || "";
      const remove = el("button", { type: "button", class: "link map-remove" }, "Remove");
      remove.addEventListener("click", () => tr.remove());
      for (const node of [a, b, remove]) { const td = el("td"); td.append(node); tr.append(td); }
      body.append(tr);
    }
    const show = (items) => { body.replaceChildren(); for (const m of items) row(m.alert_ticker, m.broker_symbol); };
    // Add and Save are disabled in the page until the mappings are read (rows added before would be lost).
    const data = await read(path, error, "the symbol mapping");
    if (!data) return;
    show(data.mappings);
    document.getElementById("mapping-add").disabled = false;
    document.getElementById("mapping-save").disabled = false;
    document.getElementById("mapping-add").addEventListener("click", () => row("", ""));
    document.getElementById("mapping-save").addEventListener("click", async () => {
      error.textContent = ""; status.textContent = "";
      const items = [...body.querySelectorAll("tr")]
        .map((tr) => ({ alert_ticker: tr.querySelector(".map-alert").value, broker_symbol: tr.querySelector(".map-broker").value }))
        .filter((m) => m.alert_ticker.trim() || m.broker_symbol.trim());
      const r = await VZ.api("PUT", path, { mappings: items });
      if (r.ok) { show(r.data.mappings); status.textContent = "Saved."; } else error.textContent = firstError(r.data);
    });
  }

  async function groups(id) {
    const list = document.getElementById("groups-list");
    const error = document.getElementById("groups-error");
    let configs = [];
    function checks(container, selected, prefix) {
      container.replaceChildren();
      for (const c of configs) {
        const label = el("label", { class: "inline" });
        const box = el("input", { type: "checkbox", value: c.id, "data-config-name": c.name, id: prefix + c.id });
        box.checked = selected.includes(c.id);
        label.append(box, " " + c.name + (c.id === id ? " (this webhook)" : ""));
        container.append(label);
      }
    }
    const picked = (container) => [...container.querySelectorAll("input[type=checkbox]:checked")].map((b) => b.value);
    async function draw() {
      const [cs, gs] = await Promise.all([VZ.api("GET", "/api/webhook-configs?page_size=100"), VZ.api("GET", "/api/webhook-groups")]);
      if (!cs.ok || !gs.ok) { error.textContent = firstError(cs.ok ? gs.data : cs.data); return; }
      configs = cs.data;
      checks(document.getElementById("group-new-members"), [id], "new-member-");
      list.replaceChildren();
      if (!gs.data.length) list.append(el("p", { class: "muted" }, "No group yet: this webhook's alerts reach this webhook only."));
      for (const g of gs.data) {
        const box = el("div", { class: "group", "data-group-id": g.id });
        const title = el("h3", {}, g.name + (g.config_ids.includes(id) ? " · includes this webhook" : ""));
        const url = el("code", { class: "group-url" }, g.webhook_url);
        const members = el("div", { class: "checks group-members" });
        checks(members, g.config_ids, "g" + g.id + "-");
        const save = el("button", { type: "button", class: "group-save" }, "Save members");
        const status = el("span", { class: "ok", role: "status" });
        save.addEventListener("click", async () => {
          error.textContent = "";
          const r = await VZ.api("PATCH", "/api/webhook-groups/" + g.id, { config_ids: picked(members) });
          if (r.ok) { status.textContent = "Saved."; } else error.textContent = firstError(r.data);
        });
        const remove = el("button", { type: "button", class: "link group-delete" }, "Delete group");
        remove.addEventListener("click", async () => {
          if (!confirm("Delete this group? Its URL stops working; its member webhooks stay.")) return;
          const r = await VZ.api("DELETE", "/api/webhook-groups/" + g.id);
          if (r.ok) draw(); else error.textContent = firstError(r.data);
        });
        const p = el("p"); p.append(save, " ", remove, " ", status);
        box.append(title, url, members, p);
        list.append(box);
      }
    }
    await draw();
    document.getElementById("group-create").addEventListener("click", async () => {
      error.textContent = "";
      const name = document.getElementById("group-name").value.trim();
      const r = await VZ.api("POST", "/api/webhook-groups", {
        name, config_ids: picked(document.getElementById("group-new-members")),
      });
      if (!r.ok) { error.textContent = firstError(r.data); return; }
      document.getElementById("group-new-url-value").value = r.data.webhook_url;
      document.getElementById("group-new-url").hidden = false;
      document.getElementById("group-name").value = "";
      await draw();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.body.addEventListener("vz:ready", () => {
      const root = document.getElementById("config-page");
      if (!root || !document.getElementById("routing-allowlist")) return;
      const id = root.dataset.configId;
      allowlist(id); mappings(id); groups(id);
    }, { once: true });
  });
})();

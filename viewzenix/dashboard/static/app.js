// Viewzenix dashboard: session, bearer token on every API / fragment call, page behaviour.
// Plain browser JavaScript (no build step). htmx 2.0.x: htmx:configRequest / e.detail.headers.
"use strict";

const VZ = (() => {
  const cfg = JSON.parse(document.getElementById("vz-config").textContent);
  const KEY = "vz.session";
  let supa = null;
  let supaToken = null;
  let supaEmail = null;

  function localSession() {
    try { return JSON.parse(localStorage.getItem(KEY)); } catch { return null; }
  }
  function token() {
    if (cfg.mode === "supabase") return supaToken;
    const s = localSession();
    return s && s.access_token;
  }
  function email() {
    if (cfg.mode === "supabase") return supaEmail;
    const s = localSession();
    return s && s.email;
  }
  async function init() {
    if (cfg.mode !== "supabase") return;
    supa = window.supabase.createClient(cfg.supabase_url, cfg.supabase_key, {
      auth: { persistSession: true, autoRefreshToken: true, detectSessionInUrl: true },
    });
    const { data } = await supa.auth.getSession();
    const set = (session) => {
      supaToken = session ? session.access_token : null;
      supaEmail = session && session.user ? session.user.email : null;
    };
    set(data.session);
    supa.auth.onAuthStateChange((_event, session) => set(session));
  }
  function here() { return location.pathname + location.search + location.hash; }
  // A page being left (the user went elsewhere) does not redirect: a refresh answered 401 after
  // the navigation started would abort the navigation.
  let leaving = false;
  addEventListener("beforeunload", () => { leaving = true; });
  function toSignin() {
    if (leaving || location.pathname === "/signin") return;
    location.assign("/signin?next=" + encodeURIComponent(here()));
  }
  function nextPage() {
    const next = new URLSearchParams(location.search).get("next") || "/";
    // Only paths on this site: never an open redirect.
    return next.startsWith("/") && !next.startsWith("//") ? next : "/";
  }
  async function signOut() {
    localStorage.removeItem(KEY);
    if (supa) await supa.auth.signOut();
    location.assign("/signin");
  }
  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
  }
  // The claims of the session's token (display only: the server decides what a caller may do).
  function claims() {
    const t = token();
    if (!t) return {};
    try {
      const part = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
    } catch { return {}; }
  }
  // Every mutating call carries an Idempotency-Key: ``key`` (a form's, reused until it is
  // answered, so a double submit creates one thing) or a fresh one.
  async function api(method, path, body, key, refresh) {
    const headers = { Accept: "application/json", Authorization: "Bearer " + token() };
    if (refresh) headers["X-Dashboard-Refresh"] = "1";  // logged at DEBUG (access_log.py)
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["Idempotency-Key"] = key || newKey();
    const response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) { toSignin(); throw new Error("signed out"); }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    return { ok: response.ok, status: response.status, data };
  }
  // A page's read of what it shows: ``api``'s answer, or, when the request itself failed (no
  // network, the server unreachable), a failed answer (status 0) whose message names ``what``.
  async function read(path, what) {
    try {
      return await api("GET", path);
    } catch (failure) {
      const message = `Could not load ${what} (${failure.message}). Reload the page to try again.`;
      return { ok: false, status: 0, data: { message } };
    }
  }
  return { cfg, KEY, token, email, init, toSignin, nextPage, signOut, api, read, newKey, claims, get supa() { return supa; } };
})();

// --- htmx: bearer token on every request; a 401 sends the user to sign-in and back --------------
document.addEventListener("htmx:configRequest", (e) => {
  const t = VZ.token();
  if (t) e.detail.headers["Authorization"] = "Bearer " + t;
});
document.addEventListener("htmx:beforeSwap", (e) => {
  const status = e.detail.xhr.status;
  if (status === 401) { e.detail.shouldSwap = false; VZ.toSignin(); }
  else if (status === 403) { e.detail.shouldSwap = true; e.detail.isError = false; }
  // A fragment's own error card (HTML, e.g. the admin job filters' 422); JSON errors get an error line.
  else if (status === 422 && (e.detail.xhr.getResponseHeader("Content-Type") || "").startsWith("text/html")) {
    e.detail.shouldSwap = true; e.detail.isError = false;
  }
});

// --- one tick for the whole page, a live badge, an error line with retry for any failed fragment ---
const TICK_MS = 5000;
// The badge is "reconnecting" while any part of the page failed its last load (a part that then
// loads again clears it), else "live · updated" with the last successful load's time.
const Live = (() => {
  let lastOk = null;
  const failing = new Set();
  const badge = () => document.getElementById("live-badge");
  function show() {
    const b = badge();
    if (!b) return;
    if (failing.size) {
      b.className = "live down";
      b.textContent = "reconnecting…" + (lastOk ? " (last update " + VZ_TIME.clock(lastOk) + ")" : "");
    } else if (lastOk) {
      b.className = "live";
      b.textContent = "live · updated " + VZ_TIME.clock(lastOk);
    }
  }
  const key = (el) => (el && (el.id || el.getAttribute("hx-get"))) || "page";
  return {
    ok(el) { lastOk = new Date(); failing.delete(key(el)); show(); },
    down(el) { failing.add(key(el)); show(); },
  };
})();
setInterval(() => {
  if (document.visibilityState === "visible" && VZ.token()) document.body.dispatchEvent(new Event("vz:tick"));
}, TICK_MS);

function errorText(xhr) {
  if (!xhr || xhr.status === 0) return "No answer from the server (connection lost?).";
  try {
    const body = JSON.parse(xhr.responseText);
    if (body && body.message) return body.message + (body.code ? ` (${body.code})` : "");
  } catch { /* not JSON */ }
  return `The server answered ${xhr.status}.`;
}
function showFragmentError(target, source, message) {
  if (!target) return;
  const line = document.createElement("p");
  line.className = "frag-error";
  line.setAttribute("role", "alert");
  line.textContent = "Could not load this: " + message;
  const retry = document.createElement("button");
  retry.type = "button";
  retry.textContent = "Retry";
  retry.dataset.retry = "";
  retry.addEventListener("click", () => {
    const path = source.getAttribute("hx-get") || source.getAttribute("action");
    htmx.ajax("GET", path, { source, target });
  });
  line.appendChild(retry);
  target.replaceChildren(line);
}
document.addEventListener("htmx:responseError", (e) => {
  if (e.detail.xhr.status >= 500) Live.down(e.detail.target);
  showFragmentError(e.detail.target, e.detail.elt, errorText(e.detail.xhr));
});
document.addEventListener("htmx:sendError", (e) => {
  Live.down(e.detail.target);
  showFragmentError(e.detail.target, e.detail.elt, errorText(null));
});
document.addEventListener("htmx:afterRequest", (e) => {
  if (e.detail.successful) Live.ok(e.detail.target);
});
document.addEventListener("htmx:afterSettle", (e) => VZ_TIME.render(e.detail.target));

// --- one time formatter: local, the exchange's (New York) or UTC; <time datetime> elements -------
const VZ_TIME = (() => {
  const ZONES = { local: undefined, exchange: "America/New_York", utc: "UTC" };
  const choice = () => localStorage.getItem("vz.tz") || "local";
  function fmt(date, withSeconds = true) {
    const options = {
      timeZone: ZONES[choice()], year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    };
    if (withSeconds) options.second = "2-digit";
    return new Intl.DateTimeFormat("sv-SE", options).format(date);
  }
  function clock(date) {
    return new Intl.DateTimeFormat("sv-SE", {
      timeZone: ZONES[choice()], hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }).format(date);
  }
  function render(root) {
    (root || document).querySelectorAll("time[datetime]").forEach((t) => {
      const d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) return;
      t.textContent = fmt(d, t.dataset.seconds !== "no");
      t.title = t.getAttribute("datetime") + " (UTC: " + d.toISOString().replace(".000", "") + ")";
    });
  }
  return { choice, fmt, clock, render, ZONES };
})();

// --- filters and pages of a list: a filter change goes back to page 1; pager buttons set the page ---
document.addEventListener("change", (e) => {
  const form = e.target.form;
  if (form && form.elements.page && e.target.name !== "page") form.elements.page.value = "1";
}, true);
document.addEventListener("click", (e) => {
  const b = e.target.closest("[data-goto-page]");
  if (!b) return;
  const form = document.querySelector(b.closest("[data-form]").dataset.form);
  form.elements.page.value = b.dataset.gotoPage;
  htmx.trigger(form, "submit");
});

// --- a detail loaded below a long list comes into view (an order's fills, an admin job) ---------
document.addEventListener("htmx:afterSettle", (e) => {
  const id = e.detail.target && e.detail.target.id;
  if ((id === "order-detail" || id === "job-detail") && e.detail.requestConfig && e.detail.requestConfig.verb === "get") {
    e.detail.target.scrollIntoView({ block: "start", behavior: "instant" });
  }
});

// --- cancel a working order (POST /api/orders/<id>/cancel) -----------------------------------------
document.addEventListener("click", async (e) => {
  const b = e.target.closest("[data-cancel-order]");
  if (!b) return;
  if (!confirm("Cancel this working order?")) return;
  b.disabled = true;
  const r = await VZ.api("POST", `/api/orders/${b.dataset.cancelOrder}/cancel`);
  const note = document.createElement("span");
  note.className = r.ok ? "ok" : "error";
  note.setAttribute("role", "status");
  note.textContent = r.ok ? " cancel requested" : " " + ((r.data && r.data.message) || `error ${r.status}`);
  b.replaceWith(note);
  document.body.dispatchEvent(new Event("vz:tick"));
});

// --- approval mode: Approve / Reject a waiting signal (POST /api/signals/<id>/approve|reject) ---------
document.addEventListener("click", async (e) => {
  const b = e.target.closest("[data-signal-decision]");
  if (!b) return;
  const verb = b.dataset.signalDecision;
  const box = b.closest("[data-approval-for]") || b;
  box.querySelectorAll("button").forEach((n) => { n.disabled = true; });
  const r = await VZ.api("POST", `/api/signals/${b.dataset.signalId}/${verb}`);
  const text = r.ok ? (verb === "approve" ? "approved: running" : "rejected")
    : (r.data && r.data.message) || `error ${r.status}`;
  const note = document.createElement("span");
  note.className = r.ok ? "ok" : "error";
  note.setAttribute("role", "status");
  note.textContent = " " + text;
  box.replaceWith(note);
  const error = document.getElementById("decision-error");
  if (error) error.textContent = r.ok ? "" : text;
  if (!r.ok) return;  // the refusal stays in view (approval_expired: the sweep marks it shortly)
  document.body.dispatchEvent(new Event("vz:signals"));
  document.body.dispatchEvent(new Event("vz:tick"));
});

// --- copy buttons -----------------------------------------------------------------------------------
async function copyFrom(selector, button) {
  const el = document.querySelector(selector);
  const text = el.value !== undefined ? el.value : el.textContent;
  try { await navigator.clipboard.writeText(text); }
  catch { el.select && el.select(); document.execCommand("copy"); }
  const old = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = old; }, 1500);
}
document.addEventListener("click", (e) => {
  const b = e.target.closest("[data-copy]");
  if (b) copyFrom(b.dataset.copy, b);
});

// --- field errors from the API (422: errors.json.<field>) ----------------------------------------
function showErrors(form, result) {
  form.querySelectorAll(".field-error").forEach((n) => n.remove());
  form.querySelectorAll(".has-error").forEach((n) => n.classList.remove("has-error"));
  const fields = (result.data && result.data.errors && result.data.errors.json) || {};
  let shown = false;
  for (const [name, messages] of Object.entries(fields)) {
    const input = form.querySelector(`[name="${name}"]`);
    const label = input ? input.closest("label") : null;
    const note = document.createElement("span");
    note.className = "field-error";
    note.dataset.field = name;
    note.textContent = (Array.isArray(messages) ? messages : [JSON.stringify(messages)]).join(" ");
    (label || form).appendChild(note);
    if (label) label.classList.add("has-error");
    shown = true;
  }
  if (!shown && !result.ok) {
    const note = document.createElement("span");
    note.className = "field-error";
    note.textContent = (result.data && result.data.message) || `Error ${result.status}`;
    form.appendChild(note);
  }
}

// One Idempotency-Key per form and content: a second submit of the same content before the
// answer (a double click) sends the same key, so the server does the work once; new content
// gets a new key.
function formKey(form, body) {
  const content = JSON.stringify(body);
  if (form.dataset.idemContent !== content || !form.dataset.idemKey) {
    form.dataset.idemKey = VZ.newKey();
    form.dataset.idemContent = content;
  }
  return form.dataset.idemKey;
}

// Whether an answer to ``key`` is still the form's to show: a double submit gets two answers
// (the work and its replay), and only the first is shown; once it is (the key is dropped) or the
// content changed (a new key), a late replay must not reset or re-render what the user typed since.
function answerIsCurrent(form, key) {
  return form.dataset.idemKey === key;
}

// --- pages ------------------------------------------------------------------------------------------
const pages = {};

pages.signin = () => {
  const error = document.getElementById("signin-error");
  const done = () => location.assign(VZ.nextPage());
  if (VZ.cfg.mode === "local") {
    const form = document.getElementById("local-signin");
    const input = document.getElementById("code");
    const submit = async () => {
      error.textContent = "";
      const r = await fetch("/auth/local/exchange", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ code: input.value }),
      });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) { error.textContent = data.message || `Sign-in failed (${r.status})`; return; }
      localStorage.setItem(VZ.KEY, JSON.stringify({
        access_token: data.access_token, email: data.email,
        expires_at: Date.now() + data.expires_in * 1000,
      }));
      done();
    };
    form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
    const fromLink = new URLSearchParams(location.hash.slice(1)).get("code");
    if (fromLink) { history.replaceState(null, "", location.pathname + location.search); input.value = fromLink; submit(); }
    return;
  }
  if (VZ.token()) { done(); return; }
  document.getElementById("password-signin").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const { error: err } = await VZ.supa.auth.signInWithPassword({ email: f.get("email"), password: f.get("password") });
    if (err) error.textContent = err.message; else done();
  });
  document.getElementById("google-signin").addEventListener("click", async () => {
    const { error: err } = await VZ.supa.auth.signInWithOAuth({
      provider: "google", options: { redirectTo: location.origin + "/signin?next=" + encodeURIComponent(VZ.nextPage()) },
    });
    if (err) error.textContent = err.message;
  });
};

pages.configs = () => {
  const form = document.getElementById("create-config");
  const button = form.querySelector("button[type=submit]");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(form);
    const body = { name: f.get("name"), broker: f.get("broker") };
    if (f.get("quantity")) body.quantity = f.get("quantity");
    button.disabled = true;
    const key = formKey(form, body);
    const r = await VZ.api("POST", "/api/webhook-configs", body, key);
    if (!answerIsCurrent(form, key)) return;
    button.disabled = false;
    if (r.status === 409 && r.data && r.data.code === "idempotency_key_in_progress") return;  // the first one answers
    showErrors(form, r);
    if (!r.ok) return;
    delete form.dataset.idemKey;
    document.getElementById("new-url-value").value = r.data.webhook_url;
    document.getElementById("new-url-link").href = "/configs/" + r.data.id;
    document.getElementById("new-url").hidden = false;
    form.reset();
    document.body.dispatchEvent(new Event("vz:configs"));
  });
};

const SETTINGS = ["name", "description", "quantity_type", "quantity", "use_signal_quantity", "order_type",
  "time_in_force", "allow_reverse", "allow_short", "allow_add", "allowed_symbols", "max_position_qty",
  "max_position_notional", "max_signal_age_seconds", "starting_cash", "slippage_bps", "commission_rate",
  "commission_fixed", "dedupe_window_seconds", "daily_loss_limit", "flatten_on_loss_limit", "approval_mode",
  "approval_timeout_seconds"];
const NULLABLE = new Set(["max_position_qty", "max_position_notional", "max_signal_age_seconds", "daily_loss_limit"]);
const INTEGER = new Set(["max_signal_age_seconds", "dedupe_window_seconds", "approval_timeout_seconds"]);

// The message to paste into TradingView's alert dialog (TradersPost-compatible keys, docs/alert-format.md).
// Returns { message } or { error } for a value that would not make a valid alert (-5, abc).
const POSITIVE = /^(\d+(\.\d*)?|\.\d+)$/;
function alertMessage(o) {
  if (o.kind === "bar") {
    return { message: JSON.stringify({
      type: "bar", ticker: "{{ticker}}", interval: "{{interval}}", time: "{{time}}", open: "{{open}}",
      high: "{{high}}", low: "{{low}}", close: "{{close}}", volume: "{{volume}}",
    }, null, 2) };
  }
  const m = { ticker: "{{ticker}}" };
  if (o.kind === "strategy") {
    m.action = "{{strategy.order.action}}";
    m.sentiment = "{{strategy.market_position}}";
  } else {
    m.action = o.kind;
  }
  if (o.kind !== "exit") {
    if (o.size === "strategy") m.quantity = "{{strategy.order.contracts}}";
    else if (o.size !== "settings") {
      const amount = String(o.amount).trim();
      if (!POSITIVE.test(amount) || Number(amount) <= 0) return { error: "Amount must be a number above 0 (like 10 or 2.5)." };
      if (o.size === "percent_of_equity" && Number(amount) > 100) return { error: "Percent of equity is at most 100." };
      m.quantity = Number(amount);
      m.quantityType = o.size;
    }
    if (o.orderType) {
      m.orderType = o.orderType;
      if (o.orderType === "limit") m.limitPrice = "{{close}}";
      if (o.orderType === "stop") m.stopPrice = "{{close}}";
    }
    for (const [key, raw, name] of [["stopLoss", o.sl, "Stop loss"], ["takeProfit", o.tp, "Take profit"]]) {
      const value = String(raw || "").trim();
      if (!value) continue;
      if (!POSITIVE.test(value) || Number(value) <= 0 || Number(value) >= 100) {
        return { error: `${name} must be a percent above 0 and below 100 (like 2 or 1.5).` };
      }
      m[key] = { percent: Number(value) };
    }
  }
  m.price = "{{close}}";
  m.time = "{{timenow}}";
  m.interval = "{{interval}}";
  if (o.withId) m.id = o.kind === "strategy" ? "{{strategy.order.id}}-{{timenow}}" : "{{ticker}}-{{interval}}-{{time}}";
  return { message: JSON.stringify(m, null, 2) };
}

// A test alert's final outcome: its outcome line, reloaded on each tick until it is final.
function followOutcome(out, signalId) {
  const line = document.createElement("div");
  line.id = "test-final-box";
  out.appendChild(line);
  const load = () => htmx.ajax("GET", `/ui/fragments/signals/${signalId}/outcome`, { target: line });
  const onTick = () => {
    const final = line.querySelector("[data-final='true']");
    if (final || !document.body.contains(line)) document.body.removeEventListener("vz:tick", onTick);
    else load();
  };
  document.body.addEventListener("vz:tick", onTick);
  load();
}

pages.configs_detail = () => {
  const root = document.getElementById("config-page");
  const id = root.dataset.configId;
  const path = "/api/webhook-configs/" + id;
  const form = document.getElementById("settings-form");
  const actionError = document.getElementById("action-error");
  let config = null;

  // The webhook's name, URL, state and toggles: after every answer about it.
  function render(c) {
    config = c;
    document.getElementById("config-name").textContent = c.name;
    document.getElementById("config-url").textContent = c.webhook_url;
    const state = document.getElementById("config-state");
    state.className = "badge " + (!c.is_active ? "off" : c.entries_paused ? "paused" : "on");
    state.textContent = !c.is_active ? "off: every alert is refused" : c.entries_paused ? "entries paused: exits still run" : "active";
    // Disabled in the page until the config's state is known: they toggle it.
    const togglePaused = document.getElementById("toggle-paused");
    togglePaused.textContent = c.entries_paused ? "Resume entries" : "Pause entries";
    togglePaused.disabled = false;
    const toggleActive = document.getElementById("toggle-active");
    toggleActive.textContent = c.is_active ? "Turn off" : "Turn on";
    toggleActive.disabled = false;
  }
  // The settings form: on the page's first read and after its own save only, so that a toggle
  // or a token rotation does not overwrite edits not saved yet.
  function fillSettings(c) {
    for (const name of SETTINGS) {
      const input = form.elements[name];
      if (!input) continue;
      if (input.type === "checkbox") input.checked = !!c[name];
      else if (name === "allowed_symbols") input.value = (c[name] || []).join(", ");
      else input.value = c[name] === null || c[name] === undefined ? "" : c[name];
    }
    document.getElementById("settings-fields").disabled = false;
  }
  // Until it loads, the buttons that toggle its state and the settings form stay disabled
  // (a failed load says why).
  async function load() {
    const r = await VZ.read(path, "this webhook");
    if (!r.ok) { actionError.textContent = r.data ? r.data.message : "Not found"; return; }
    render(r.data);
    fillSettings(r.data);
    lossLimitState();
  }
  // The daily loss limit reached in the current session (GET /api/loss-limit-breaches).
  async function lossLimitState() {
    const r = await VZ.api("GET", "/api/loss-limit-breaches?config_id=" + id);
    const box = document.getElementById("loss-limit-state");
    const breach = r.ok && r.data.length ? r.data[0] : null;
    box.hidden = !breach;
    if (breach) {
      const until = new Date(breach.session_end).toLocaleString();
      box.textContent = `Daily loss limit reached: P&L ${Number(breach.pnl).toFixed(2)} against a limit of `
        + `${Number(breach.loss_limit).toFixed(2)}. Entries are denied until ${until}; exits still run.`;
    }
  }
  async function patch(body) {
    actionError.textContent = "";
    const r = await VZ.api("PATCH", path, body);
    if (r.ok) render(r.data); else actionError.textContent = r.data.message;
    return r;
  }
  document.getElementById("toggle-paused").addEventListener("click", () => patch({ entries_paused: !config.entries_paused }));
  document.getElementById("toggle-active").addEventListener("click", () => {
    if (config.is_active && !confirm("Turn this webhook off? Every alert (exits too) will be refused.")) return;
    patch({ is_active: !config.is_active });
  });
  document.getElementById("rotate-token").addEventListener("click", async () => {
    if (!confirm("Rotate the token? The current URL stops working at once.")) return;
    const r = await VZ.api("POST", path + "/rotate-token");
    if (!r.ok) { actionError.textContent = r.data.message; return; }
    render(r.data);
    document.getElementById("new-url-value").value = r.data.webhook_url;
    document.getElementById("new-url").hidden = false;
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = {};
    for (const name of SETTINGS) {
      const input = form.elements[name];
      if (input.type === "checkbox") body[name] = input.checked;
      else if (name === "allowed_symbols") body[name] = input.value.split(",").map((s) => s.trim()).filter(Boolean);
      else if (input.value === "" && NULLABLE.has(name)) body[name] = null;
      else if (INTEGER.has(name) && /^-?\d+$/.test(input.value)) body[name] = Number(input.value);
      else body[name] = input.value;
    }
    const saved = document.getElementById("settings-saved");
    saved.textContent = "";
    const key = formKey(form, body);
    const r = await VZ.api("PATCH", path, body, key);
    if (!answerIsCurrent(form, key)) return;
    if (r.status === 409 && r.data && r.data.code === "idempotency_key_in_progress") return;
    showErrors(form, r);
    if (r.ok) { render(r.data); fillSettings(r.data); saved.textContent = "Saved"; delete form.dataset.idemKey; }
  });
  // Test alert
  const testBody = document.getElementById("test-body");
  testBody.value = JSON.stringify({ ticker: "AAPL", action: "buy", quantity: 1, price: 190.5 });
  document.getElementById("send-test").addEventListener("click", async () => {
    const out = document.getElementById("test-result");
    const r = await VZ.api("POST", path + "/test-alert", { body: testBody.value });
    if (!r.ok) { out.innerHTML = ""; out.textContent = r.data.message; return; }
    const res = r.data.intake_response;
    out.innerHTML = "";
    const p = document.createElement("p");
    p.id = "test-outcome";
    p.textContent = `Intake answered ${r.data.intake_status}: ${res.status || res.code}${res.message ? " — " + res.message : ""}. `;
    const a = document.createElement("a");
    a.href = "/signals/" + r.data.signal_id;
    a.textContent = "Open the signal";
    p.appendChild(a);
    out.appendChild(p);
    document.body.dispatchEvent(new Event("vz:signals"));
    if (r.data.signal_id) followOutcome(out, r.data.signal_id);
  });
  // Generator
  const genIds = ["gen-case", "gen-size", "gen-amount", "gen-order-type", "gen-sl", "gen-tp", "gen-id"];
  const value = (id) => document.getElementById(id).value;
  const gen = () => {
    const kind = value("gen-case");
    for (const id of ["gen-size", "gen-amount", "gen-order-type", "gen-sl", "gen-tp"]) {
      document.getElementById(id).disabled = kind === "bar" || (kind === "exit" && id !== "gen-order-type");
    }
    document.getElementById("gen-id").disabled = kind === "bar";
    const out = alertMessage({
      kind, size: value("gen-size"), amount: value("gen-amount"), orderType: value("gen-order-type"),
      sl: value("gen-sl"), tp: value("gen-tp"), withId: document.getElementById("gen-id").checked,
    });
    const error = document.getElementById("gen-error");
    error.textContent = out.error || "";
    document.getElementById("gen-message").value = out.message || "";
  };
  for (const id of genIds) {
    document.getElementById(id).addEventListener("input", gen);
    document.getElementById(id).addEventListener("change", gen);
  }
  gen();
  load();
};

// The caller's webhooks (id, name), oldest first; [] when the API refuses.
async function webhookList() {
  const r = await VZ.api("GET", "/api/webhook-configs?page_size=100");
  if (!r.ok) return [];
  return r.data.slice().sort((a, b) => a.created_at.localeCompare(b.created_at));
}
// The webhook a page opens on: ?config=, else the last one chosen, else the oldest ("" = all).
function chosenWebhook(configs) {
  const wanted = new URLSearchParams(location.search).get("config");
  const stored = localStorage.getItem("vz.account");
  return wanted !== null ? wanted : stored !== null ? stored : (configs[0] ? configs[0].id : "");
}
function fillWebhookSelect(select, configs, allLabel, chosen) {
  select.replaceChildren();
  for (const c of configs) select.add(new Option(c.name, c.id));
  select.add(new Option(allLabel, ""));
  select.value = chosen;
  if (select.value !== chosen) select.selectedIndex = 0;
}

pages.overview = async () => {
  const select = document.getElementById("account-config");
  const configs = await webhookList();
  fillWebhookSelect(select, configs, "All webhooks (sum)", chosenWebhook(configs));
  const el = document.getElementById("equity-chart");
  const empty = document.getElementById("equity-empty");
  const failed = document.getElementById("equity-error");
  let chart = null, series = null, markers = null;
  let drawn = "";
  async function draw() {
    const id = select.value;
    const r = await VZ.api("GET", "/api/account/equity-history" + (id ? "?config_id=" + id : ""), undefined, undefined, true);
    if (!r.ok) {
      failed.textContent = "Could not load the equity curve: " + ((r.data && r.data.message) || `error ${r.status}`);
      failed.hidden = false;
      return;
    }
    failed.hidden = true;
    const points = r.data.points;
    empty.hidden = points.some((p) => p.kind === "fill");
    // lightweight-charts needs strictly increasing times in seconds: events within one second
    // (a replay, a burst) are drawn one second apart, in order. Times shown in the chosen zone.
    const data = [];
    const marks = [];
    for (const p of points) {
      const t = Math.floor(Date.parse(p.at) / 1000);
      const time = data.length && t <= data[data.length - 1].time ? data[data.length - 1].time + 1 : t;
      data.push({ time, value: Number(p.equity) });
      if (p.kind === "capital" || (p.kind === "start" && data.length > 1)) {
        marks.push({ time, position: "aboveBar", shape: "square", color: "#d97706", text: "capital" });
      }
    }
    const key = id + ":" + JSON.stringify(data[data.length - 2] || null) + data.length;
    if (!chart) {
      const dark = matchMedia("(prefers-color-scheme: dark)").matches;
      chart = LightweightCharts.createChart(el, {
        autoSize: true,
        layout: { attributionLogo: false, background: { color: "transparent" }, textColor: dark ? "#c9ced8" : "#374151" },
        grid: { vertLines: { color: dark ? "#2c3340" : "#eef0f3" }, horzLines: { color: dark ? "#2c3340" : "#eef0f3" } },
        timeScale: {
          timeVisible: true, secondsVisible: false,
          // Axis labels in the chosen zone too (the library's own are UTC): a date, or a time.
          tickMarkFormatter: (t, type) => {
            const text = VZ_TIME.fmt(new Date(t * 1000), false);
            return type < 3 ? text.slice(0, 10) : text.slice(11);
          },
        },
        localization: { timeFormatter: (t) => VZ_TIME.fmt(new Date(t * 1000), false) },
      });
      series = chart.addSeries(LightweightCharts.AreaSeries, {
        lineColor: "#2563eb", topColor: "rgba(37,99,235,.25)", bottomColor: "rgba(37,99,235,0)",
      });
      markers = LightweightCharts.createSeriesMarkers(series, []);
    }
    if (key !== drawn) {
      series.setData(data);
      markers.setMarkers(marks);
      if (!drawn.startsWith(id + ":")) chart.timeScale().fitContent();
      drawn = key;
    }
    el.dataset.points = String(data.length);
    el.dataset.capitalMarks = String(marks.length);
    el.dataset.config = id;
  }
  select.addEventListener("change", () => {
    localStorage.setItem("vz.account", select.value);
    const url = new URL(location.href);
    url.searchParams.set("config", select.value);
    history.replaceState(null, "", url);
    document.body.dispatchEvent(new Event("vz:account"));
    draw();
  });
  document.body.addEventListener("vz:tick", draw);
  document.body.addEventListener("vz:timezone", () => { drawn = ""; chart && chart.applyOptions({}); draw(); });
  await new Promise((resolve) => {
    if (window.LightweightCharts) resolve();
    else window.addEventListener("load", resolve, { once: true });
  });
  draw();
};

pages.trades = async () => {
  const select = document.getElementById("trade-config");
  const configs = await webhookList();
  select.addEventListener("change", () => localStorage.setItem("vz.account", select.value));
  fillWebhookSelect(select, configs, "All webhooks", chosenWebhook(configs));
  const form = document.getElementById("trade-filters");
  const error = document.getElementById("export-error");
  document.getElementById("export-csv").addEventListener("click", async () => {
    error.textContent = "";
    const query = new URLSearchParams(new FormData(form));
    query.delete("page");
    for (const [k, v] of [...query]) if (!v) query.delete(k);
    const response = await fetch("/api/trades/export?" + query, { headers: { Authorization: "Bearer " + VZ.token() } });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      error.textContent = "Export refused: " + (body.message || `error ${response.status}`);
      return;
    }
    const blob = await response.blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "trades.csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  });
};

// Admin tools: metrics, job list and job detail are fragments (/ui/fragments/admin/…); the
// actions call the admin API (POST /api/admin/jobs/<id>/retry|cancel|run-now) after a confirmation.
const JOB_ACTIONS = {
  retry: { done: "Retried", ask: (id) => `Retry job #${id}? It goes back in the queue, due now (a signal's job re-runs its signal).` },
  cancel: { done: "Canceled", ask: (id) => `Cancel job #${id}? A queued job is cancelled (its signal marked failed); a running one is asked to abort.` },
  "run-now": { done: "Made due now", ask: (id) => `Run job #${id} now instead of at its scheduled time?` },
};

pages.admin = () => {
  document.addEventListener("click", async (e) => {
    const b = e.target.closest("[data-job-action]");
    if (!b) return;
    const id = b.dataset.jobId;
    const action = JOB_ACTIONS[b.dataset.jobAction];
    if (!confirm(action.ask(id))) return;
    b.disabled = true;
    const r = await VZ.api("POST", `/api/admin/jobs/${id}/${b.dataset.jobAction}`);
    // Show the job as it is now, then (once it is swapped in) what the action did or why it was refused.
    const shown = new Promise((resolve) => {
      const done = (ev) => {
        if (ev.detail.target.id !== "job-detail") return;
        document.body.removeEventListener("htmx:afterSettle", done);
        resolve();
      };
      document.body.addEventListener("htmx:afterSettle", done);
    });
    htmx.ajax("GET", `/ui/fragments/admin/jobs/${id}`, { target: "#job-detail" });
    await shown;
    const out = document.getElementById("job-action-result");
    if (r.ok) {
      out.className = "ok";
      out.textContent = `${action.done}: ${r.data.action.message}`;
    } else {
      out.className = "error";
      out.textContent = (r.data && r.data.message) || `Error ${r.status}`;
      if (r.data && r.data.code) {
        const code = document.createElement("code");
        code.textContent = r.data.code;
        out.append(" ", code);
      }
    }
    document.body.dispatchEvent(new Event("vz:jobs"));  // metrics and the list, as they are now
  });
};

// --- start --------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", async () => {
  await VZ.init();
  let name = document.body.dataset.page;
  if (name === "configs" && document.getElementById("config-page")) name = "configs_detail";
  if (name !== "signin") {
    if (!VZ.token()) { VZ.toSignin(); return; }
    document.getElementById("vz-email").textContent = VZ.email() || "";
    document.getElementById("signout").addEventListener("click", () => VZ.signOut());
    const role = (VZ.claims().app_metadata || {}).role;
    document.getElementById("nav-admin").hidden = role !== "admin";
    const top = document.getElementById("top");
    const toggle = document.getElementById("nav-toggle");
    toggle.addEventListener("click", () => {
      const open = top.classList.toggle("open");
      toggle.setAttribute("aria-expanded", String(open));
    });
    const tz = document.getElementById("time-zone");
    tz.value = VZ_TIME.choice();
    tz.addEventListener("change", () => {
      localStorage.setItem("vz.tz", tz.value);
      VZ_TIME.render();
      document.body.dispatchEvent(new Event("vz:timezone"));
    });
  }
  if (pages[name]) await pages[name]();
  VZ_TIME.render();
  document.body.dispatchEvent(new Event("vz:ready"));
});

// LabEdge lab console: logs in, then polls the gateway's JSON admin routes and draws the page.
// Everything from the server goes into the DOM as text (textContent, attributes), never as markup.
"use strict";

(function () {
  const REFRESH_MS = 5000;
  const HISTORY_MS = 30000;
  const RECONCILIATIONS_MS = 60000;
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

  const state = {
    session: null,
    status: null,
    history: null,
    devices: [],
    pending: new Map(),
    reconciliations: null,
    timers: [],
    enrollTimer: null,
    refreshing: false,
  };

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------------------------------------
  // DOM helpers: elements built from text only.

  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    }
    return node;
  }

  function fillRows(tbody, rows, emptyText, columns) {
    if (!rows.length) rows = [h("tr", { class: "empty" }, h("td", { colspan: columns, text: emptyText }))];
    tbody.replaceChildren(...rows);
  }

  function badge(kind, text) {
    return h("span", { class: "badge badge-" + kind, text });
  }

  function setText(id, text) {
    $(id).textContent = text;
  }

  function toast(message, error) {
    const node = h("div", { class: error ? "toast toast-error" : "toast", role: error ? "alert" : "status", text: message });
    $("toasts").appendChild(node);
    setTimeout(() => node.remove(), error ? 8000 : 4000);
  }

  // ---------------------------------------------------------------------------------------------
  // Formatting.

  const numberFormat = new Intl.NumberFormat();
  const num = (n) => numberFormat.format(n);
  const plural = (n, word, many = `${word}s`) => `${num(n)} ${n === 1 ? word : many}`;

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return `${seconds} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min${seconds % 60 && minutes < 10 ? ` ${seconds % 60} s` : ""}`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours} h${minutes % 60 ? ` ${String(minutes % 60).padStart(2, "0")} min` : ""}`;
    return `${Math.floor(hours / 24)} days`;
  }

  function ago(iso) {
    if (!iso) return "never";
    const seconds = (Date.now() - Date.parse(iso)) / 1000;
    if (seconds < 5) return "just now";
    return `${duration(seconds)} ago`;
  }

  function when(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    const sameDay = date.toDateString() === new Date().toDateString();
    return sameDay
      ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
      : date.toLocaleString([], { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  }

  function clock(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  const shortId = (id) => (id ? String(id).slice(0, 8) : "—");

  const MODES = {
    online: { pill: "Online", title: "Online", sub: "connected to the cloud", kpi: "ok" },
    failover: { pill: "Failover", title: "Failover", sub: "on the central lab's standby", kpi: "warn" },
    degraded: { pill: "Offline", title: "Offline", sub: "cloud unreachable: writes wait here", kpi: "bad" },
  };

  const EVENTS = {
    login: "Tablet login", lockout: "Lockout", refresh: "Token refresh", refresh_reuse: "Refresh token reused",
    logout: "Logout", enroll: "Tablet enrolled", enrollment_code: "Enrollment code", revoke: "Revocation",
    peer_refused: "Address refused", token_refused: "Token refused", rate_limited: "Rate limited",
    admin_login: "Console login", admin_refused: "Console refused", unlock: "Lockout lifted",
  };

  // ---------------------------------------------------------------------------------------------
  // The gateway's API.

  class HttpError extends Error {
    constructor(status, problem, retryAfter) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
      this.retryAfter = retryAfter;
    }
  }

  async function call(method, path, body) {
    const headers = { accept: "application/json" };
    if (method !== "GET" && state.session) headers["x-csrf-token"] = state.session.csrf_token;
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
    if (!response.ok) {
      let problem = null;
      try {
        problem = await response.json();
      } catch (_) {
        problem = null;
      }
      throw new HttpError(response.status, problem, response.headers.get("retry-after"));
    }
    return response.status === 204 ? null : response.json();
  }

  // A console call: a lost session brings the login form back.
  async function api(method, path, body) {
    try {
      return await call(method, path, body);
    } catch (error) {
      if (error instanceof HttpError && error.status === 401 && state.session) {
        showLogin("Your session has ended: sign in again.");
      }
      throw error;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Login and logout.

  function showLogin(message) {
    state.session = null;
    for (const timer of state.timers) clearInterval(timer);
    state.timers = [];
    $("console-view").hidden = true;
    $("login-view").hidden = false;
    $("login-error").hidden = !message;
    $("login-error").textContent = message || "";
    $("password").value = "";
    $("login").focus();
  }

  function startConsole(session) {
    state.session = session;
    $("login-view").hidden = true;
    $("console-view").hidden = false;
    setText("admin-name", session.display_name);
    refresh();
    refreshHistory();
    refreshReconciliations();
    state.timers.push(setInterval(refresh, REFRESH_MS));
    state.timers.push(setInterval(refreshHistory, HISTORY_MS));
    state.timers.push(setInterval(refreshReconciliations, RECONCILIATIONS_MS));
  }

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = $("login-submit");
    button.disabled = true;
    $("login-error").hidden = true;
    try {
      const session = await call("POST", "/admin/v1/login", { login: $("login").value.trim(), password: $("password").value });
      $("password").value = "";
      startConsole(session);
    } catch (error) {
      let message = "The gateway did not answer. Try again.";
      if (error instanceof HttpError) {
        if (error.status === 401 || error.status === 422) message = "Wrong login or password.";
        else if (error.status === 429) {
          const wait = Number(error.retryAfter);
          message = `Too many attempts. Try again${wait ? ` in ${duration(wait)}` : " later"}.`;
        } else if (error.status === 403) message = "This account cannot use the console, or this computer is not on the lab's network.";
        else if (error.status === 503) message = "The gateway is starting or has not received its lab's data yet. Try again shortly.";
      }
      $("login-error").textContent = message;
      $("login-error").hidden = false;
    } finally {
      button.disabled = false;
    }
  });

  $("logout").addEventListener("click", async () => {
    try {
      await api("POST", "/admin/v1/logout");
    } catch (_) {
      // Signed out either way.
    }
    showLogin("");
  });

  // ---------------------------------------------------------------------------------------------
  // Status.

  function renderStatus(status) {
    state.status = status;
    setText("lab-name", status.lab);
    document.title = `LabEdge — ${status.lab}`;
    const mode = MODES[status.upstream.mode] || MODES.degraded;
    const pill = $("mode-pill");
    pill.className = `pill pill-${status.upstream.mode}`;
    pill.textContent = mode.pill;
    pill.title = mode.sub;

    $("kpi-upstream").className = `kpi ${mode.kpi}`;
    setText("upstream-mode", mode.title);
    const via = status.upstream.active ? ` · via ${status.upstream.active}` : "";
    setText("upstream-since", `since ${when(status.upstream.since)} (${duration((Date.now() - Date.parse(status.upstream.since)) / 1000)})${via}`);

    const backlog = status.backlog;
    const oldest = backlog.oldest_pending_seconds;
    $("kpi-backlog").className = `kpi ${backlog.pending === 0 ? "ok" : oldest > 3600 ? "bad" : oldest > 300 ? "warn" : "ok"}`;
    setText("backlog-pending", num(backlog.pending));
    setText("backlog-oldest", backlog.pending === 0 ? "everything is in the cloud" : `oldest waiting for ${duration(oldest || 0)}`);

    const sync = status.sync;
    const lag = sync.head !== null && sync.position !== null ? Math.max(0, sync.head - sync.position) : null;
    const pullAge = sync.last_pull_at ? (Date.now() - Date.parse(sync.last_pull_at)) / 1000 : null;
    $("kpi-feed").className = `kpi ${pullAge === null ? "warn" : pullAge > 600 ? "bad" : pullAge > 60 ? "warn" : "ok"}`;
    setText("feed-pull", sync.last_pull_at ? ago(sync.last_pull_at) : "not yet");
    setText("feed-lag", lag === null ? "waiting for the first pull" : lag === 0 ? `up to date (position ${num(sync.position)})` : `${plural(lag, "change")} behind the cloud`);
    $("feed-error").hidden = !sync.last_error;
    setText("feed-error", sync.last_error ? `Last pull failed: ${sync.last_error}` : "");

    const open = backlog.conflicts + backlog.dead_letters;
    $("kpi-attention").className = `kpi ${open ? "warn" : "ok"}`;
    setText("attention", open ? num(open) : "None");
    setText("attention-sub", open ? `${plural(backlog.conflicts, "conflict")} · ${plural(backlog.dead_letters, "dead letter")}` : "no conflict, no dead letter");

    renderReconciliation();
    renderDrain(status);

    const recovery = status.recovery;
    const parts = [];
    if (recovery.last_drain_seconds !== null && recovery.last_drain_seconds !== undefined) {
      parts.push(`last outage: ${plural(recovery.backlog_at_start, "write")} sent in ${duration(recovery.last_drain_seconds)}`);
    }
    if (recovery.last_catch_up_seconds !== null && recovery.last_catch_up_seconds !== undefined) {
      parts.push(`feed caught up in ${duration(recovery.last_catch_up_seconds)}`);
    }
    setText("recovery", parts.length ? `Recovery — ${parts.join(", ")}.` : "");
  }

  function renderDrain(status) {
    const draining = status.draining && status.recovery.drain_started_at;
    $("drain").hidden = !draining;
    if (!draining) return;
    const start = Math.max(status.recovery.backlog_at_start, status.backlog.pending);
    const left = status.backlog.pending;
    const sent = Math.max(0, start - left);
    const fraction = start > 0 ? sent / start : 1;
    const elapsed = (Date.now() - Date.parse(status.recovery.drain_started_at)) / 1000;
    $("drain-fill").style.width = `${(fraction * 100).toFixed(1)}%`;
    $("drain-bar").setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
    setText("drain-text", `${num(sent)} of ${num(start)} writes sent (${Math.round(fraction * 100)} %), ${num(left)} left`);
    // Estimated from the pace since the drain started.
    const eta = sent > 0 && elapsed > 1 ? (left * elapsed) / sent : null;
    setText("drain-eta", eta === null ? "estimating the time left…" : `about ${duration(eta)} left`);
  }

  function renderReconciliation() {
    const runs = state.reconciliations;
    let run = runs && runs.length ? runs[0] : null;
    const memory = state.status && state.status.sync.last_reconciliation;
    if (!run && memory) run = { started_at: memory.started_at, finished_at: memory.started_at, ok: memory.ok, repaired_rows: 0, error: null };
    const kpi = $("kpi-reconcile");
    if (!run) {
      kpi.className = "kpi";
      setText("reconcile-result", "Not run yet");
      setText("reconcile-when", "runs every night");
      return;
    }
    let result;
    let level;
    if (!run.finished_at) [result, level] = ["Running…", ""];
    else if (run.error) [result, level] = ["Failed", "bad"];
    else if (run.ok && run.repaired_rows > 0) [result, level] = [`Repaired ${num(run.repaired_rows)}`, "warn"];
    else if (run.ok) [result, level] = ["Matched", "ok"];
    else [result, level] = ["Differences", "bad"];
    kpi.className = `kpi ${level}`;
    setText("reconcile-result", result);
    const took = run.finished_at ? ` · took ${duration((Date.parse(run.finished_at) - Date.parse(run.started_at)) / 1000)}` : "";
    setText("reconcile-when", `${when(run.started_at)}${took}`);
    kpi.title = run.error || "";
  }

  // ---------------------------------------------------------------------------------------------
  // Charts.

  function renderHistory() {
    const history = state.history;
    if (!history) return;
    const samples = history.samples;
    const at = (s) => Date.parse(s.at);
    const common = (s) => ({ t: at(s), mode: s.mode });
    LabCharts.lineChart($("chart-requests"), {
      label: "Tablet requests per minute",
      color: "#0f766e",
      format: (v) => `${LabCharts.shortNumber(v)}/min`,
      // A sample much shorter than the interval (the one taken at start-up) would turn a handful of
      // requests into a spike of a rate: left out.
      points: samples.map((s) => ({
        ...common(s),
        v: s.interval_s >= history.interval_s / 2 ? (s.requests / s.interval_s) * 60 : null,
      })),
    });
    LabCharts.lineChart($("chart-backlog"), {
      label: "Outbox backlog",
      color: "#1d4ed8",
      format: (v) => plural(v, "write"),
      points: samples.map((s) => ({ ...common(s), v: s.backlog })),
    });
    LabCharts.lineChart($("chart-lag"), {
      label: "Sync lag",
      color: "#7c3aed",
      format: (v) => plural(v, "change"),
      points: samples.map((s) => ({ ...common(s), v: s.sync_lag })),
    });
    setText("charts-range", samples.length
      ? `since ${clock(samples[0].at)} · a point every ${history.interval_s} s · up to ${history.retention_s / 3600} h`
      : "");
  }

  async function refreshHistory() {
    try {
      state.history = await api("GET", "/admin/v1/history");
      renderHistory();
    } catch (_) {
      // Shown again at the next refresh.
    }
  }

  async function refreshReconciliations() {
    try {
      state.reconciliations = await api("GET", "/admin/v1/reconciliations");
      renderReconciliation();
    } catch (_) {
      // The status's own figure stands meanwhile.
    }
  }

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(renderHistory, 150);
  });

  // ---------------------------------------------------------------------------------------------
  // Tablets.

  function renderDevices() {
    const rows = state.devices.map((device) => {
      const pending = state.pending.get(device.id);
      const active = device.status === "active";
      return h("tr", { class: active ? "" : "revoked", dataset: { deviceId: device.id, status: device.status } },
        h("td", {}, h("div", { class: "cell-main", text: device.label }), h("div", { class: "cell-sub mono", text: shortId(device.id), title: device.id })),
        h("td", {}, active ? badge("ok", "Active") : badge("bad", "Revoked"),
          device.revoked_at ? h("div", { class: "cell-sub", text: when(device.revoked_at) }) : null),
        h("td", { text: ago(device.last_seen_at), title: device.last_seen_at || "" }),
        h("td", { class: "mono", text: device.app_version || "—" }),
        h("td", {}, device.certificate_bound ? badge("info", "Certificate") : badge("neutral", "Secret only")),
        h("td", { class: "num" }, pending
          ? h("span", {}, badge("warn", num(pending.pending)), h("div", { class: "cell-sub", text: `oldest ${ago(pending.oldest_at)}` }))
          : h("span", { class: "muted", text: "0" })),
        h("td", { text: when(device.enrolled_at) }),
        h("td", {}, active
          ? h("div", { class: "actions" }, h("button", {
              type: "button", class: "btn btn-danger btn-small", text: "Revoke", dataset: { action: "revoke" },
              onclick: () => revokeDevice(device),
            }))
          : null));
    });
    fillRows($("devices"), rows, "No tablet enrolled yet: use “Enroll a tablet”.", 8);
  }

  async function revokeDevice(device) {
    const ok = await confirmAction(
      `Revoke “${device.label}”?`,
      "The tablet is refused from its very next request and told to wipe its data. Its sessions end now. This cannot be undone: the tablet must be enrolled again.",
      "Revoke tablet");
    if (!ok) return;
    try {
      await api("POST", `/admin/v1/devices/${encodeURIComponent(device.id)}/revoke`);
      toast(`“${device.label}” is revoked.`);
    } catch (error) {
      toast(`Not revoked: ${error.message}`, true);
    }
    refresh();
  }

  $("enroll").addEventListener("click", async () => {
    const button = $("enroll");
    button.disabled = true;
    try {
      const code = await api("POST", "/admin/v1/enrollment-codes");
      showEnrollment(code);
    } catch (error) {
      toast(`No code created: ${error.message}`, true);
    } finally {
      button.disabled = false;
    }
  });

  function showEnrollment(code) {
    $("enrollment").hidden = false;
    setText("enroll-code", code.code);
    const qr = $("enroll-qr");
    // An image, not markup: the SVG cannot run anything in an <img>.
    if (code.qr_svg) qr.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(code.qr_svg)}`;
    qr.hidden = !code.qr_svg;
    clearInterval(state.enrollTimer);
    const expires = Date.parse(code.expires_at);
    const tick = () => {
      const left = (expires - Date.now()) / 1000;
      if (left <= 0) {
        setText("enroll-expiry", "Expired: create another code.");
        $("enroll-expiry").className = "small form-error";
        clearInterval(state.enrollTimer);
        return;
      }
      $("enroll-expiry").className = "small";
      const minutes = Math.floor(left / 60);
      setText("enroll-expiry", `Expires in ${minutes}:${String(Math.floor(left % 60)).padStart(2, "0")} (at ${clock(code.expires_at)})`);
    };
    tick();
    state.enrollTimer = setInterval(tick, 1000);
  }

  $("enroll-close").addEventListener("click", () => {
    clearInterval(state.enrollTimer);
    $("enrollment").hidden = true;
    setText("enroll-code", "");
    $("enroll-qr").removeAttribute("src");
  });

  // ---------------------------------------------------------------------------------------------
  // Conflicts and dead letters.

  function describeChange(payload) {
    if (!payload || typeof payload !== "object") return "";
    const kind = payload.kind || "";
    if (kind === "appointment.update" && payload.status) return `appointment → ${payload.status}`;
    return kind;
  }

  function renderConflicts(conflicts) {
    const rows = conflicts.slice(0, 50).map((c) => {
      const open = !c.resolved_at;
      return h("tr", { class: open ? "" : "handled", dataset: { conflictId: c.id } },
        h("td", {}, h("div", { class: "mono", text: c.entity_key })),
        h("td", { text: ago(c.detected_at), title: c.detected_at }),
        h("td", {}, h("div", { text: describeChange(c.local_payload) }),
          c.server_version !== null ? h("div", { class: "cell-sub", text: `cloud at version ${c.server_version}` }) : null),
        h("td", {}, open
          ? h("div", { class: "actions" },
            h("button", { type: "button", class: "btn btn-small", text: "Keep cloud's", title: "The cloud's state stands; the tablet's change is dropped.", onclick: () => resolveConflict(c, "keep_server") }),
            h("button", { type: "button", class: "btn btn-small", text: "Reapply tablet's", title: "Send the tablet's change again over the cloud's current version.", onclick: () => resolveConflict(c, "reapply_local") }))
          : badge("neutral", c.resolution === "keep_server" ? "Kept cloud's" : "Reapplied")));
    });
    fillRows($("conflicts"), rows, "No conflict.", 4);
  }

  async function resolveConflict(conflict, resolution) {
    const keep = resolution === "keep_server";
    const ok = await confirmAction(
      keep ? "Keep the cloud's version?" : "Reapply the tablet's change?",
      keep ? `The tablet's change to ${conflict.entity_key} is dropped; the cloud's state comes back with the next sync.`
        : `The tablet's change to ${conflict.entity_key} is sent again, over the cloud's current version.`,
      keep ? "Keep cloud's" : "Reapply");
    if (!ok) return;
    try {
      await api("POST", `/admin/v1/conflicts/${encodeURIComponent(conflict.id)}/resolve`, { resolution });
      toast("Conflict resolved.");
    } catch (error) {
      toast(`Not resolved: ${error.message}`, true);
    }
    refresh();
  }

  function renderDeadLetters(letters) {
    const rows = letters.slice(0, 50).map((d) => {
      const open = !d.replayed_at && !d.discarded_at;
      return h("tr", { class: open ? "" : "handled", dataset: { deadLetterId: d.id } },
        h("td", {}, h("div", { class: "cell-main", text: d.kind }), h("div", { class: "cell-sub mono", text: d.entity_key })),
        h("td", {}, h("div", { text: d.reason }), h("div", { class: "cell-sub", text: plural(d.attempts, "attempt") })),
        h("td", { text: ago(d.quarantined_at), title: d.quarantined_at }),
        h("td", {}, open
          ? h("div", { class: "actions" },
            h("button", { type: "button", class: "btn btn-small", text: "Replay", onclick: () => handleDeadLetter(d, "replay") }),
            h("button", { type: "button", class: "btn btn-danger btn-small", text: "Discard", onclick: () => handleDeadLetter(d, "discard") }))
          : badge("neutral", d.replayed_at ? "Replayed" : "Discarded")));
    });
    fillRows($("dead-letters"), rows, "No dead letter.", 4);
  }

  async function handleDeadLetter(letter, action) {
    const replay = action === "replay";
    const ok = await confirmAction(
      replay ? "Send this write again?" : "Discard this write?",
      replay ? `${letter.kind} on ${letter.entity_key} is sent to the cloud again as a new write.`
        : `${letter.kind} on ${letter.entity_key} will never reach the cloud. Later writes of this record go on.`,
      replay ? "Replay" : "Discard");
    if (!ok) return;
    try {
      await api("POST", `/admin/v1/dead-letters/${encodeURIComponent(letter.id)}/${action}`);
      toast(replay ? "Write sent again." : "Write discarded.");
    } catch (error) {
      toast(`Not done: ${error.message}`, true);
    }
    refresh();
  }

  // ---------------------------------------------------------------------------------------------
  // Security events.

  function renderEvents(events) {
    const labels = new Map(state.devices.map((d) => [d.id, d.label]));
    const rows = events.slice(0, 60).map((e) => {
      const who = [];
      if (e.staff_id) who.push(h("div", { class: "mono", text: `staff ${shortId(e.staff_id)}`, title: e.staff_id }));
      if (e.device_id) who.push(h("div", { text: labels.get(e.device_id) || `tablet ${shortId(e.device_id)}`, title: e.device_id }));
      return h("tr", {},
        h("td", { text: when(e.at), title: e.at }),
        h("td", { text: EVENTS[e.action] || e.action }),
        h("td", {}, e.success ? badge("ok", "ok") : badge("bad", e.reason ? e.reason.replace(/_/g, " ") : "failed")),
        h("td", {}, who.length ? who : h("span", { class: "muted", text: "—" })),
        h("td", { class: "mono", text: e.source_ip || "—" }));
    });
    fillRows($("events"), rows, "No security event since the gateway started.", 5);
  }

  // ---------------------------------------------------------------------------------------------
  // Lockouts: a login locked on one tablet or from one address, lifted by the admin.

  function renderLockouts(lockouts) {
    const labels = new Map(state.devices.map((d) => [d.id, d.label]));
    const rows = lockouts.map((l) => {
      const where = l.device_id ? (labels.get(l.device_id) || `tablet ${shortId(l.device_id)}`) : `console from ${l.source}`;
      const stateCell = l.locked_until
        ? h("span", {}, badge("bad", "Locked"), h("div", { class: "cell-sub", text: `until ${clock(l.locked_until)}` }))
        : badge("warn", plural(l.failures, "failure", "failures"));
      return h("tr", { dataset: { lockoutId: l.id } },
        h("td", { class: "mono", text: l.login }),
        h("td", { text: where, title: l.device_id || l.source || "" }),
        h("td", {}, stateCell),
        h("td", {}, h("button", {
          type: "button", class: "btn btn-small", text: "Unlock", dataset: { action: "unlock" },
          onclick: () => unlock(l, where),
        })));
    });
    fillRows($("lockouts"), rows, "No login is locked out.", 4);
  }

  async function unlock(lockout, where) {
    const ok = await confirmAction(
      `Unlock “${lockout.login}” (${where})?`,
      "Its failed attempts are forgotten and it may log in again at once. Do it once you know who was locked out and why.",
      "Unlock");
    if (!ok) return;
    try {
      await api("POST", `/admin/v1/lockouts/${encodeURIComponent(lockout.id)}/unlock`);
      toast(`“${lockout.login}” is unlocked.`);
    } catch (error) {
      toast(`Not unlocked: ${error.message}`, true);
    }
    refresh();
  }

  // ---------------------------------------------------------------------------------------------
  // Patient access history.

  $("access-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = $("patient-id").value.trim();
    $("access-error").hidden = true;
    if (!UUID.test(id)) {
      $("access-error").textContent = "A patient id looks like 0190c3a2-7b1e-7c4d-9a2b-3f4e5d6c7b8a.";
      $("access-error").hidden = false;
      return;
    }
    try {
      const records = await api("GET", `/admin/v1/patients/${encodeURIComponent(id)}/access`);
      const rows = records.map((r) => h("tr", {},
        h("td", { text: when(r.at), title: r.at }),
        h("td", {}, h("div", { class: "cell-main", text: r.staff_name || (r.staff_id ? `staff ${shortId(r.staff_id)}` : "system") }),
          r.staff_role ? h("div", { class: "cell-sub", text: r.staff_role.replace(/_/g, " ") }) : null),
        h("td", { text: r.device_label || (r.device_id ? `tablet ${shortId(r.device_id)}` : "console / gateway"), title: r.device_id || "" }),
        h("td", {}, h("span", { class: "mono", text: r.action }),
          r.resource ? h("div", { class: "cell-sub mono", text: r.resource }) : null)));
      fillRows($("access"), rows, "No access recorded for this patient on this gateway.", 4);
      $("access-table").hidden = false;
      setText("access-summary", records.length ? `${plural(records.length, "access", "accesses")} shown, newest first.` : "");
    } catch (error) {
      $("access-error").textContent = `Not found: ${error.message}`;
      $("access-error").hidden = false;
    }
  });

  // ---------------------------------------------------------------------------------------------
  // Confirmation dialog.

  function confirmAction(title, text, okLabel) {
    const dialog = $("confirm");
    setText("confirm-title", title);
    setText("confirm-text", text);
    setText("confirm-ok", okLabel);
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.returnValue = "";
      dialog.showModal();
      $("confirm-cancel").focus();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // The refresh loop.

  async function refresh() {
    if (state.refreshing || !state.session || document.hidden) return;
    state.refreshing = true;
    try {
      const [status, devices, pending, conflicts, dead, events, lockouts] = await Promise.allSettled([
        api("GET", "/admin/v1/status"),
        api("GET", "/admin/v1/devices"),
        api("GET", "/admin/v1/devices/pending-pushes"),
        api("GET", "/admin/v1/conflicts"),
        api("GET", "/admin/v1/dead-letters"),
        api("GET", "/admin/v1/security-events"),
        api("GET", "/admin/v1/lockouts"),
      ]);
      if (!state.session) return;
      if (status.status === "fulfilled") renderStatus(status.value);
      if (pending.status === "fulfilled") state.pending = new Map(pending.value.map((p) => [p.device_id, p]));
      if (devices.status === "fulfilled") {
        state.devices = devices.value;
        renderDevices();
      }
      if (conflicts.status === "fulfilled") renderConflicts(conflicts.value);
      if (dead.status === "fulfilled") renderDeadLetters(dead.value);
      if (events.status === "fulfilled") renderEvents(events.value);
      if (lockouts.status === "fulfilled") renderLockouts(lockouts.value);
      const failed = [status, devices, pending, conflicts, dead, events, lockouts].filter((r) => r.status === "rejected");
      setText("refreshed", failed.length ? "Some data could not be read: retrying…" : `Updated ${new Date().toLocaleTimeString()}`);
    } finally {
      state.refreshing = false;
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.session) {
      refresh();
      refreshHistory();
    }
  });

  // Start: the console when a session exists, else the login form.
  call("GET", "/admin/v1/session")
    .then(startConsole)
    .catch(() => showLogin(""));
})();

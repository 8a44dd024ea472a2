// LabEdge lab console: logs in, then polls the gateway's JSON admin routes and draws the page.
// Everything from the server goes into the DOM as text (textContent, attributes), never as markup.
// Texts come from i18n.js (French by default, English by the switch); dates are in the lab's zone.
"use strict";

(function () {
  const { t, tn, code } = window.LabI18n;

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
    zone: null,
    // When the last refresh read everything; null when some of it failed; undefined before the first.
    refreshed: undefined,
    access: null,
    staff: [],
    conflicts: [],
    deadLetters: [],
    events: [],
    lockouts: [],
    timers: [],
    enrollTimer: null,
    pinResetTimer: null,
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

  const num = (n) => new Intl.NumberFormat(LabI18n.locale()).format(n);

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return `${seconds} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min${seconds % 60 && minutes < 10 ? ` ${seconds % 60} s` : ""}`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours} h${minutes % 60 ? ` ${String(minutes % 60).padStart(2, "0")} min` : ""}`;
    return tn("n.days", Math.floor(hours / 24));
  }

  // Bytes in the units a lab admin reads: Mo/Go in French, MB/GB in English (powers of 1000, as
  // disks are sold).
  function bytes(n) {
    const units = LabI18n.locale().startsWith("fr") ? ["o", "ko", "Mo", "Go", "To"] : ["B", "kB", "MB", "GB", "TB"];
    let value = Math.max(0, n);
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    const digits = value < 10 && unit > 0 ? 1 : 0;
    return `${new Intl.NumberFormat(LabI18n.locale(), { maximumFractionDigits: digits }).format(value)} ${units[unit]}`;
  }

  // Days of autonomy: under two days (the seed's promise) is bad, under a week a warning.
  function renderStorage(storage) {
    if (!storage) return;
    const days = storage.autonomy_days;
    const level = days === null || days === undefined ? "ok" : days < 2 ? "bad" : days < 7 ? "warn" : "ok";
    $("kpi-storage").className = `kpi ${storage.free_bytes === null ? "warn" : level}`;
    const growth = storage.growth_bytes_per_day;
    let value;
    if (storage.free_bytes === null) value = "—";
    else if (growth === null || growth === undefined) value = t("storage.unknown");
    else if (days === null || days === undefined) value = t("storage.unbounded");
    else value = t("storage.days", tn("n.days", Math.floor(days)));
    setText("storage-autonomy", value);
    const database = bytes(storage.database_bytes);
    let sub;
    if (storage.free_bytes === null) sub = t("storage.noDisk", database);
    else if (growth === null || growth === undefined) sub = t("storage.subNoGrowth", database, bytes(storage.free_bytes));
    else sub = t("storage.sub", database, bytes(storage.free_bytes), bytes(growth));
    setText("storage-sub", sub);
  }

  function ago(iso) {
    if (!iso) return t("time.never");
    const seconds = (Date.now() - Date.parse(iso)) / 1000;
    if (seconds < 5) return t("time.justNow");
    return t("time.ago", duration(seconds));
  }

  // A moment, in the lab's time zone: its time when today there, else its day and time.
  function when(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    return LabI18n.sameDay(date, new Date()) ? LabI18n.clockSeconds(date) : LabI18n.dayAndTime(date);
  }

  const clock = (iso) => LabI18n.clock(new Date(iso));

  const shortId = (id) => (id ? String(id).slice(0, 8) : "—");

  const MODE_LEVELS = { online: "ok", failover: "warn", degraded: "bad" };

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
    // The gateway writes its problem documents in the page's language.
    const headers = { accept: "application/json", "accept-language": LabI18n.lang() };
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
        showLogin(t("login.ended"));
      }
      throw error;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Login and logout.

  function showLogin(message) {
    state.session = null;
    // Nothing of the last session stays in the page, hidden or not.
    state.access = null;
    hidePinReset();
    $("access-table").hidden = true;
    setText("access-summary", "");
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
      let message = t("login.noAnswer");
      if (error instanceof HttpError) {
        if (error.status === 401 || error.status === 422) message = t("login.wrong");
        else if (error.status === 429) {
          const wait = Number(error.retryAfter);
          message = t("login.tooMany", wait ? duration(wait) : null);
        } else if (error.status === 403) message = t("login.forbidden");
        else if (error.status === 503) message = t("login.starting");
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
    if (status.timezone && status.timezone !== state.zone) {
      state.zone = status.timezone;
      LabI18n.setTimeZone(status.timezone);
      // Every time already on the page was written in the browser's zone.
      rerender();
    }
    setText("timezone-note", LabI18n.timeZone() ? t("footer.zone", LabI18n.timeZone()) : "");
    setText("lab-name", status.lab);
    document.title = t("page.titleLab", status.lab);
    const modeName = MODE_LEVELS[status.upstream.mode] ? status.upstream.mode : "degraded";
    const pill = $("mode-pill");
    pill.className = `pill pill-${status.upstream.mode}`;
    pill.textContent = t(`mode.${modeName}`);
    pill.title = t(`mode.${modeName}.sub`);

    $("kpi-upstream").className = `kpi ${MODE_LEVELS[modeName]}`;
    setText("upstream-mode", t(`mode.${modeName}`));
    setText("upstream-since", t("status.since", when(status.upstream.since),
      duration((Date.now() - Date.parse(status.upstream.since)) / 1000), status.upstream.active));

    const backlog = status.backlog;
    const oldest = backlog.oldest_pending_seconds;
    $("kpi-backlog").className = `kpi ${backlog.pending === 0 ? "ok" : oldest > 3600 ? "bad" : oldest > 300 ? "warn" : "ok"}`;
    setText("backlog-pending", num(backlog.pending));
    setText("backlog-oldest", backlog.pending === 0 ? t("backlog.none") : t("backlog.oldest", duration(oldest || 0)));

    const sync = status.sync;
    const lag = sync.head !== null && sync.position !== null ? Math.max(0, sync.head - sync.position) : null;
    const pullAge = sync.last_pull_at ? (Date.now() - Date.parse(sync.last_pull_at)) / 1000 : null;
    $("kpi-feed").className = `kpi ${pullAge === null ? "warn" : pullAge > 600 ? "bad" : pullAge > 60 ? "warn" : "ok"}`;
    setText("feed-pull", sync.last_pull_at ? ago(sync.last_pull_at) : t("feed.notYet"));
    setText("feed-lag", lag === null ? t("feed.waiting") : lag === 0 ? t("feed.upToDate", num(sync.position)) : t("feed.behind", tn("n.change", lag)));
    $("feed-error").hidden = !sync.last_error;
    setText("feed-error", sync.last_error ? t("feed.error", sync.last_error) : "");

    const open = backlog.conflicts + backlog.dead_letters;
    $("kpi-attention").className = `kpi ${open ? "warn" : "ok"}`;
    setText("attention", open ? num(open) : t("attention.none"));
    setText("attention-sub", open ? t("attention.sub", tn("n.conflict", backlog.conflicts), tn("n.deadLetter", backlog.dead_letters)) : t("attention.nothing"));

    renderStorage(status.storage);
    renderReconciliation();
    renderDrain(status);

    const recovery = status.recovery;
    const parts = [];
    if (recovery.last_drain_seconds !== null && recovery.last_drain_seconds !== undefined) {
      parts.push(t("recovery.drain", tn("n.write", recovery.backlog_at_start), duration(recovery.last_drain_seconds)));
    }
    if (recovery.last_catch_up_seconds !== null && recovery.last_catch_up_seconds !== undefined) {
      parts.push(t("recovery.catchUp", duration(recovery.last_catch_up_seconds)));
    }
    setText("recovery", parts.length ? t("recovery.text", parts.join(", ")) : "");
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
    setText("drain-text", t("drain.text", num(sent), num(start), Math.round(fraction * 100), num(left)));
    // Estimated from the pace since the drain started.
    const eta = sent > 0 && elapsed > 1 ? (left * elapsed) / sent : null;
    setText("drain-eta", eta === null ? t("drain.estimating") : t("drain.eta", duration(eta)));
  }

  function renderReconciliation() {
    const runs = state.reconciliations;
    let run = runs && runs.length ? runs[0] : null;
    const memory = state.status && state.status.sync.last_reconciliation;
    if (!run && memory) run = { started_at: memory.started_at, finished_at: memory.started_at, ok: memory.ok, repaired_rows: 0, error: null };
    const kpi = $("kpi-reconcile");
    if (!run) {
      kpi.className = "kpi";
      setText("reconcile-result", t("reconcile.never"));
      setText("reconcile-when", t("reconcile.nightly"));
      return;
    }
    let result;
    let level;
    if (!run.finished_at) [result, level] = [t("reconcile.running"), ""];
    else if (run.error) [result, level] = [t("reconcile.failed"), "bad"];
    else if (run.ok && run.repaired_rows > 0) [result, level] = [t("reconcile.repaired", num(run.repaired_rows)), "warn"];
    else if (run.ok) [result, level] = [t("reconcile.matched"), "ok"];
    else [result, level] = [t("reconcile.differences"), "bad"];
    kpi.className = `kpi ${level}`;
    setText("reconcile-result", result);
    const took = run.finished_at ? t("reconcile.took", duration((Date.parse(run.finished_at) - Date.parse(run.started_at)) / 1000)) : "";
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
    // The charts' own words and clock, in the page's language and the lab's zone.
    const texts = { clock: (ms) => LabI18n.clock(new Date(ms)), collecting: t("charts.collecting"), noData: t("charts.noData") };
    LabCharts.lineChart($("chart-requests"), {
      ...texts,
      label: `${t("charts.requests")} ${t("charts.requests.unit")}`,
      color: "#0f766e",
      format: (v) => t("charts.perMinute", LabCharts.shortNumber(v)),
      // A sample much shorter than the interval (the one taken at start-up) would turn a handful of
      // requests into a spike of a rate: left out.
      points: samples.map((s) => ({
        ...common(s),
        v: s.interval_s >= history.interval_s / 2 ? (s.requests / s.interval_s) * 60 : null,
      })),
    });
    LabCharts.lineChart($("chart-backlog"), {
      ...texts,
      label: t("charts.backlog"),
      color: "#1d4ed8",
      format: (v) => tn("n.write", v),
      points: samples.map((s) => ({ ...common(s), v: s.backlog })),
    });
    LabCharts.lineChart($("chart-lag"), {
      ...texts,
      label: t("charts.lag"),
      color: "#7c3aed",
      format: (v) => tn("n.change", v),
      points: samples.map((s) => ({ ...common(s), v: s.sync_lag })),
    });
    setText("charts-range", samples.length
      ? t("charts.range", clock(samples[0].at), history.interval_s, history.retention_s / 3600)
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
        h("td", {}, active ? badge("ok", t("tablets.active")) : badge("bad", t("tablets.revoked")),
          device.revoked_at ? h("div", { class: "cell-sub", text: when(device.revoked_at) }) : null),
        h("td", { text: ago(device.last_seen_at), title: device.last_seen_at || "" }),
        h("td", { class: "mono", text: device.app_version || "—" }),
        h("td", {}, device.certificate_bound ? badge("info", t("tablets.certificate")) : badge("neutral", t("tablets.secretOnly"))),
        h("td", { class: "num" }, pending
          ? h("span", {}, badge("warn", num(pending.pending)), h("div", { class: "cell-sub", text: t("tablets.oldest", ago(pending.oldest_at)) }))
          : h("span", { class: "muted", text: "0" })),
        h("td", { text: when(device.enrolled_at) }),
        h("td", {}, active
          ? h("div", { class: "actions" }, h("button", {
              type: "button", class: "btn btn-danger btn-small", text: t("tablets.revoke"), dataset: { action: "revoke" },
              onclick: () => revokeDevice(device),
            }))
          : null));
    });
    fillRows($("devices"), rows, t("tablets.empty"), 8);
  }

  async function revokeDevice(device) {
    const ok = await confirmAction(t("tablets.revoke.title", device.label), t("tablets.revoke.text"), t("tablets.revoke.ok"));
    if (!ok) return;
    try {
      await api("POST", `/admin/v1/devices/${encodeURIComponent(device.id)}/revoke`);
      toast(t("tablets.revoke.done", device.label));
    } catch (error) {
      toast(t("tablets.revoke.failed", error.message), true);
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
      toast(t("enroll.failed", error.message), true);
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
        setText("enroll-expiry", t("enroll.expired"));
        $("enroll-expiry").className = "small form-error";
        clearInterval(state.enrollTimer);
        return;
      }
      $("enroll-expiry").className = "small";
      const minutes = Math.floor(left / 60);
      setText("enroll-expiry", t("enroll.expires", `${minutes}:${String(Math.floor(left % 60)).padStart(2, "0")}`, clock(code.expires_at)));
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
  // Staff: a PIN reset code, deactivation and reactivation.

  function renderStaff(members) {
    state.staff = members;
    const rows = members.map((member) => {
      const self = state.session && member.id === state.session.staff_id;
      const status = [member.active ? badge("ok", t("staff.active")) : badge("bad", t("staff.inactive"))];
      if (member.revoked_here) status.push(" ", badge("bad", t("staff.revokedHere")));
      const actions = [];
      if (member.active && !member.revoked_here) {
        actions.push(h("button", {
          type: "button", class: "btn btn-small", text: t("staff.resetPin"), dataset: { action: "pin-reset" },
          onclick: () => resetPin(member),
        }));
      }
      if (member.active && !self) {
        actions.push(h("button", {
          type: "button", class: "btn btn-danger btn-small", text: t("staff.deactivate"), dataset: { action: "deactivate" },
          onclick: () => setActive(member, false),
        }));
      }
      if (!member.active || member.revoked_here) {
        actions.push(h("button", {
          type: "button", class: "btn btn-small", text: t("staff.reactivate"), dataset: { action: "reactivate" },
          onclick: () => setActive(member, true),
        }));
      }
      return h("tr", { class: member.active ? "" : "revoked", dataset: { staffId: member.id, active: String(member.active) } },
        h("td", {}, h("div", { class: "cell-main", text: member.display_name })),
        h("td", { class: "mono", text: member.login }),
        h("td", { text: code("role", member.role) }),
        h("td", {}, ...status,
          member.reset_code_expires_at ? h("div", { class: "cell-sub", text: t("staff.codePending", clock(member.reset_code_expires_at)) }) : null),
        h("td", {}, h("div", { class: "actions" }, actions)));
    });
    fillRows($("staff"), rows, t("staff.empty"), 5);
  }

  async function resetPin(member) {
    const ok = await confirmAction(t("staff.reset.title", member.display_name), t("staff.reset.text"), t("staff.reset.ok"));
    if (!ok) return;
    try {
      const made = await api("POST", `/admin/v1/staff/${encodeURIComponent(member.id)}/pin-reset`);
      showPinReset(member, made);
    } catch (error) {
      toast(t("staff.reset.failed", error.message), true);
    }
    refresh();
  }

  // The code is shown once: it is in the page only until "Done", a sign-out or its expiry.
  function showPinReset(member, made) {
    $("pin-reset").hidden = false;
    setText("pin-reset-who", t("staff.codeFor", member.display_name));
    setText("pin-reset-code", made.code);
    clearInterval(state.pinResetTimer);
    const expires = Date.parse(made.expires_at);
    const tick = () => {
      const left = (expires - Date.now()) / 1000;
      if (left <= 0) {
        hidePinReset();
        return;
      }
      const minutes = Math.floor(left / 60);
      setText("pin-reset-expiry", t("enroll.expires", `${minutes}:${String(Math.floor(left % 60)).padStart(2, "0")}`, clock(made.expires_at)));
    };
    tick();
    state.pinResetTimer = setInterval(tick, 1000);
  }

  function hidePinReset() {
    clearInterval(state.pinResetTimer);
    $("pin-reset").hidden = true;
    setText("pin-reset-code", "");
    setText("pin-reset-who", "");
  }

  $("pin-reset-close").addEventListener("click", hidePinReset);

  async function setActive(member, active) {
    const key = active ? "staff.reactivate" : "staff.deactivate";
    const ok = await confirmAction(t(`${key}.title`, member.display_name), t(`${key}.text`), t(key));
    if (!ok) return;
    try {
      await api("POST", `/admin/v1/staff/${encodeURIComponent(member.id)}/${active ? "reactivate" : "deactivate"}`);
      toast(t(`${key}.done`, member.display_name));
    } catch (error) {
      toast(t("staff.failed", error.message), true);
    }
    refresh();
  }

  // ---------------------------------------------------------------------------------------------
  // Conflicts and dead letters.

  function describeChange(payload) {
    if (!payload || typeof payload !== "object") return "";
    const kind = payload.kind || "";
    if (kind === "appointment.update" && payload.status) return t("change.appointment", code("appointment", payload.status));
    return kind;
  }

  function renderConflicts(conflicts) {
    state.conflicts = conflicts;
    const rows = conflicts.slice(0, 50).map((c) => {
      const open = !c.resolved_at;
      return h("tr", { class: open ? "" : "handled", dataset: { conflictId: c.id } },
        h("td", {}, h("div", { class: "mono", text: c.entity_key })),
        h("td", { text: ago(c.detected_at), title: c.detected_at }),
        h("td", {}, h("div", { text: describeChange(c.local_payload) }),
          c.server_version !== null ? h("div", { class: "cell-sub", text: t("conflicts.cloudVersion", c.server_version) }) : null),
        h("td", {}, open
          ? h("div", { class: "actions" },
            h("button", { type: "button", class: "btn btn-small", text: t("conflicts.keep"), title: t("conflicts.keep.hint"), onclick: () => resolveConflict(c, "keep_server") }),
            h("button", { type: "button", class: "btn btn-small", text: t("conflicts.reapply"), title: t("conflicts.reapply.hint"), onclick: () => resolveConflict(c, "reapply_local") }))
          : badge("neutral", c.resolution === "keep_server" ? t("conflicts.kept") : t("conflicts.reapplied"))));
    });
    fillRows($("conflicts"), rows, t("conflicts.empty"), 4);
  }

  async function resolveConflict(conflict, resolution) {
    const keep = resolution === "keep_server";
    const ok = await confirmAction(
      keep ? t("conflicts.keep.title") : t("conflicts.reapply.title"),
      keep ? t("conflicts.keep.text", conflict.entity_key) : t("conflicts.reapply.text", conflict.entity_key),
      keep ? t("conflicts.keep") : t("conflicts.reapply.ok"));
    if (!ok) return;
    try {
      await api("POST", `/admin/v1/conflicts/${encodeURIComponent(conflict.id)}/resolve`, { resolution });
      toast(t("conflicts.done"));
    } catch (error) {
      toast(t("conflicts.failed", error.message), true);
    }
    refresh();
  }

  function renderDeadLetters(letters) {
    state.deadLetters = letters;
    const rows = letters.slice(0, 50).map((d) => {
      const open = !d.replayed_at && !d.discarded_at;
      return h("tr", { class: open ? "" : "handled", dataset: { deadLetterId: d.id } },
        h("td", {}, h("div", { class: "cell-main", text: d.kind }), h("div", { class: "cell-sub mono", text: d.entity_key })),
        h("td", {}, h("div", { text: d.reason }), h("div", { class: "cell-sub", text: tn("n.attempt", d.attempts) })),
        h("td", { text: ago(d.quarantined_at), title: d.quarantined_at }),
        h("td", {}, open
          ? h("div", { class: "actions" },
            h("button", { type: "button", class: "btn btn-small", text: t("letters.replay"), onclick: () => handleDeadLetter(d, "replay") }),
            h("button", { type: "button", class: "btn btn-danger btn-small", text: t("letters.discard"), onclick: () => handleDeadLetter(d, "discard") }))
          : badge("neutral", d.replayed_at ? t("letters.replayed") : t("letters.discarded"))));
    });
    fillRows($("dead-letters"), rows, t("letters.empty"), 4);
  }

  async function handleDeadLetter(letter, action) {
    const replay = action === "replay";
    const ok = await confirmAction(
      replay ? t("letters.replay.title") : t("letters.discard.title"),
      replay ? t("letters.replay.text", letter.kind, letter.entity_key) : t("letters.discard.text", letter.kind, letter.entity_key),
      replay ? t("letters.replay") : t("letters.discard"));
    if (!ok) return;
    try {
      await api("POST", `/admin/v1/dead-letters/${encodeURIComponent(letter.id)}/${action}`);
      toast(replay ? t("letters.replay.done") : t("letters.discard.done"));
    } catch (error) {
      toast(t("letters.failed", error.message), true);
    }
    refresh();
  }

  // ---------------------------------------------------------------------------------------------
  // Security events.

  function renderEvents(events) {
    state.events = events;
    const labels = new Map(state.devices.map((d) => [d.id, d.label]));
    const rows = events.slice(0, 60).map((e) => {
      const who = [];
      if (e.staff_id) who.push(h("div", { class: "mono", text: t("who.staff", shortId(e.staff_id)), title: e.staff_id }));
      if (e.device_id) who.push(h("div", { text: labels.get(e.device_id) || t("who.tablet", shortId(e.device_id)), title: e.device_id }));
      return h("tr", {},
        h("td", { text: when(e.at), title: e.at }),
        h("td", { text: code("event", e.action) }),
        h("td", {}, e.success ? badge("ok", t("events.ok")) : badge("bad", e.reason ? code("reason", e.reason) : t("events.failed"))),
        h("td", {}, who.length ? who : h("span", { class: "muted", text: "—" })),
        h("td", { class: "mono", text: e.source_ip || "—" }));
    });
    fillRows($("events"), rows, t("events.empty"), 5);
  }

  // ---------------------------------------------------------------------------------------------
  // Lockouts: a login locked on one tablet or from one address, lifted by the admin.

  function renderLockouts(lockouts) {
    state.lockouts = lockouts;
    const labels = new Map(state.devices.map((d) => [d.id, d.label]));
    const rows = lockouts.map((l) => {
      const where = l.device_id ? (labels.get(l.device_id) || t("who.tablet", shortId(l.device_id))) : t("lockouts.console", l.source);
      const stateCell = l.locked_until
        ? h("span", {}, badge("bad", t("lockouts.locked")), h("div", { class: "cell-sub", text: t("lockouts.until", clock(l.locked_until)) }))
        : badge("warn", tn("n.failure", l.failures));
      return h("tr", { dataset: { lockoutId: l.id } },
        h("td", { class: "mono", text: l.login }),
        h("td", { text: where, title: l.device_id || l.source || "" }),
        h("td", {}, stateCell),
        h("td", {}, h("button", {
          type: "button", class: "btn btn-small", text: t("lockouts.unlock"), dataset: { action: "unlock" },
          onclick: () => unlock(l, where),
        })));
    });
    fillRows($("lockouts"), rows, t("lockouts.empty"), 4);
  }

  async function unlock(lockout, where) {
    const ok = await confirmAction(t("lockouts.unlock.title", lockout.login, where), t("lockouts.unlock.text"), t("lockouts.unlock"));
    if (!ok) return;
    try {
      await api("POST", `/admin/v1/lockouts/${encodeURIComponent(lockout.id)}/unlock`);
      toast(t("lockouts.unlock.done", lockout.login));
    } catch (error) {
      toast(t("lockouts.unlock.failed", error.message), true);
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
      $("access-error").textContent = t("access.badId");
      $("access-error").hidden = false;
      return;
    }
    try {
      renderAccess(await api("GET", `/admin/v1/patients/${encodeURIComponent(id)}/access`));
    } catch (error) {
      $("access-error").textContent = t("access.failed", error.message);
      $("access-error").hidden = false;
    }
  });

  function renderAccess(records) {
    state.access = records;
    const rows = records.map((r) => h("tr", {},
        h("td", { text: when(r.at), title: r.at }),
        h("td", {}, h("div", { class: "cell-main", text: r.staff_name || (r.staff_id ? t("who.staff", shortId(r.staff_id)) : t("access.system")) }),
          r.staff_role ? h("div", { class: "cell-sub", text: code("role", r.staff_role) }) : null),
        h("td", { text: r.device_label || (r.device_id ? t("who.tablet", shortId(r.device_id)) : t("access.console")), title: r.device_id || "" }),
        h("td", {}, h("span", { class: "mono", text: r.action }),
          r.resource ? h("div", { class: "cell-sub mono", text: r.resource }) : null)));
    fillRows($("access"), rows, t("access.empty"), 4);
    $("access-table").hidden = false;
    setText("access-summary", records.length ? t("access.summary", tn("n.access", records.length)) : "");
  }

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
      const [status, devices, pending, conflicts, dead, events, lockouts, members] = await Promise.allSettled([
        api("GET", "/admin/v1/status"),
        api("GET", "/admin/v1/devices"),
        api("GET", "/admin/v1/devices/pending-pushes"),
        api("GET", "/admin/v1/conflicts"),
        api("GET", "/admin/v1/dead-letters"),
        api("GET", "/admin/v1/security-events"),
        api("GET", "/admin/v1/lockouts"),
        api("GET", "/admin/v1/staff"),
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
      if (members.status === "fulfilled") renderStaff(members.value);
      const failed = [status, devices, pending, conflicts, dead, events, lockouts, members].filter((r) => r.status === "rejected");
      state.refreshed = failed.length ? null : new Date();
      renderRefreshed();
    } finally {
      state.refreshing = false;
    }
  }

  function renderRefreshed() {
    if (state.refreshed === undefined) return;
    setText("refreshed", state.refreshed ? t("refreshed.at", LabI18n.clockSeconds(state.refreshed)) : t("refreshed.failed"));
  }

  // Everything drawn from data, again from the last data: after a language or time-zone change.
  function rerender() {
    if (!state.session) return;
    renderRefreshed();
    if (state.status) renderStatus(state.status);
    renderDevices();
    renderStaff(state.staff);
    renderConflicts(state.conflicts);
    renderDeadLetters(state.deadLetters);
    renderEvents(state.events);
    renderLockouts(state.lockouts);
    renderHistory();
    if (state.access) renderAccess(state.access);
    $("access-error").hidden = true;
  }

  LabI18n.onChange(() => {
    rerender();
    if (!$("login-error").hidden) $("login-error").hidden = true;
  });

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

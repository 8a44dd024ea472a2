(() => {
  "use strict";
  const KEY = "labedge.central.token";
  const REFRESH_MS = 15000;
  const ORDER = { degraded: 0, unknown: 1, failover: 2, online: 3 };
  const $ = (id) => document.getElementById(id);
  let timer = null;

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 60) return seconds + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min";
    if (seconds < 86400) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " d";
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function stop() {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
  }

  function showLogin(message) {
    stop();
    $("view").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("updated").textContent = "";
    $("token").focus();
  }

  function render(data) {
    const counts = { online: 0, failover: 0, degraded: 0, unknown: 0 };
    const rows = $("rows");
    rows.replaceChildren();
    const gateways = data.gateways.slice().sort((a, b) =>
      (ORDER[a.state] - ORDER[b.state]) || a.lab.localeCompare(b.lab));
    for (const g of gateways) {
      counts[g.state] = (counts[g.state] || 0) + 1;
      const tr = document.createElement("tr");
      cell(tr, g.lab).title = g.lab_name;
      const state = cell(tr, "");
      const badge = document.createElement("span");
      badge.className = "badge state-" + g.state;
      badge.textContent = g.silent ? g.state + " (silent)" : g.state;
      state.appendChild(badge);
      cell(tr, duration(g.feed_lag_s), "num" + (g.feed_lag_s > 300 ? " warn" : ""));
      cell(tr, g.backlog === null ? "—" : String(g.backlog), "num" + (g.backlog > 0 ? " warn" : ""));
      cell(tr, duration(g.oldest_unsent_s), "num" + (g.oldest_unsent_s > 900 ? " bad" : ""));
      cell(tr, g.last_contact_at ? duration(g.last_contact_age_s) + " ago" : "never", g.silent ? "bad" : "");
      const until = g.cert_not_after ? new Date(g.cert_not_after) : null;
      const soon = until !== null && until.getTime() - Date.now() < 30 * 86400 * 1000;
      cell(tr, until ? until.toLocaleDateString() : "—", soon ? "bad" : "");
      rows.appendChild(tr);
    }
    const summary = $("summary");
    summary.replaceChildren();
    for (const name of ["online", "failover", "degraded", "unknown"]) {
      const li = document.createElement("li");
      const badge = document.createElement("span");
      badge.className = "badge state-" + name;
      badge.textContent = counts[name] + " " + name;
      li.appendChild(badge);
      summary.appendChild(li);
    }
    $("silent-after").textContent = duration(data.silent_after_s);
    $("updated").textContent = "Updated " + new Date(data.generated_at).toLocaleTimeString();
  }

  async function refresh() {
    stop();
    const token = sessionStorage.getItem(KEY);
    if (!token) {
      showLogin("");
      return;
    }
    try {
      const response = await fetch("/central/v1/gateways", {
        headers: { "Authorization": "Bearer " + token, "Accept": "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
      if (response.status === 401) {
        sessionStorage.removeItem(KEY);
        showLogin("This token was refused.");
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      render(await response.json());
      $("login").hidden = true;
      $("view").hidden = false;
      $("logout").hidden = false;
      $("error").textContent = "";
    } catch (error) {
      $("error").textContent = "Could not refresh (" + error.message + "); the figures below may be stale.";
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    $("token").value = "";
    if (value) {
      sessionStorage.setItem(KEY, value);
      refresh();
    }
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    showLogin("");
  });
  refresh();
})();

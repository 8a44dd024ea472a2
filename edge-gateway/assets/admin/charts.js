// LabEdge console: small SVG line charts, drawn with DOM calls only (no library, no markup from strings).
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const HEIGHT = 170;
  const PAD = { left: 40, right: 10, top: 10, bottom: 22 };

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  // A round upper bound for the axis: 1, 2, 5 × 10^n.
  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 5, 10]) {
      if (value <= step * power) return step * power;
    }
    return 10 * power;
  }

  function shortNumber(value) {
    if (value >= 1e6) return (value / 1e6).toFixed(value >= 1e7 ? 0 : 1) + "M";
    if (value >= 1e3) return (value / 1e3).toFixed(value >= 1e4 ? 0 : 1) + "k";
    return String(Math.round(value * 10) / 10);
  }

  // The browser's own clock, for a caller that gives none.
  function localClock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // Time ticks at round steps (5 min … 1 h) within [t0, t1].
  function timeTicks(t0, t1) {
    const span = t1 - t0;
    const steps = [5, 10, 15, 30, 60].map((m) => m * 60000);
    const step = steps.find((s) => span / s <= 6) || 3600000;
    const ticks = [];
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
    return ticks;
  }

  /**
   * Draws a line chart into `figure` (a <figure> with a <figcaption>).
   * options: points [{t: ms, v: number|null, mode}], color, format(v) for the tooltip and the
   * current value, minSpanMs (the time axis covers at least that much), and the caller's words and
   * clock: clock(ms) for the time labels (the lab's time zone), collecting and noData texts.
   */
  function lineChart(figure, options) {
    const points = options.points || [];
    const format = options.format || shortNumber;
    const clock = options.clock || localClock;
    const width = Math.max(260, Math.floor(figure.clientWidth - 26));
    let svg = figure.querySelector("svg");
    if (svg) svg.remove();
    let tip = figure.querySelector(".chart-tip");
    if (!tip) {
      tip = document.createElement("div");
      tip.className = "chart-tip";
      tip.hidden = true;
      figure.appendChild(tip);
    }
    let now = figure.querySelector(".chart-now");
    if (!now) {
      now = document.createElement("span");
      now.className = "chart-now";
      figure.querySelector("figcaption").appendChild(now);
    }
    const last = [...points].reverse().find((p) => p.v !== null && p.v !== undefined);
    now.textContent = last ? format(last.v) : "";

    svg = el("svg", { viewBox: `0 0 ${width} ${HEIGHT}`, role: "img", "aria-label": options.label || "chart" });
    svg.dataset.points = String(points.filter((p) => p.v !== null && p.v !== undefined).length);
    figure.appendChild(svg);
    const plotW = width - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;

    if (points.length === 0) {
      el("text", { x: width / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "empty-text" }, svg).textContent =
        options.collecting || "…";
      return;
    }
    const t1 = points[points.length - 1].t;
    const t0 = Math.min(points[0].t, t1 - (options.minSpanMs || 10 * 60000));
    const values = points.map((p) => p.v).filter((v) => v !== null && v !== undefined);
    const max = niceMax(Math.max(0, ...values));
    const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * plotW;
    const y = (v) => PAD.top + plotH - (v / max) * plotH;

    // Periods without the cloud, behind everything.
    for (let i = 0; i < points.length; i++) {
      const mode = points[i].mode;
      if (mode !== "degraded" && mode !== "failover") continue;
      const start = i > 0 ? (points[i - 1].t + points[i].t) / 2 : points[i].t;
      const end = i + 1 < points.length ? (points[i].t + points[i + 1].t) / 2 : points[i].t;
      el("rect", {
        x: x(start), y: PAD.top, width: Math.max(1, x(end) - x(start)), height: plotH, class: "band-" + mode,
      }, svg);
    }
    // Grid and axes.
    for (const fraction of [0, 0.5, 1]) {
      const v = max * fraction;
      el("line", { x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v), class: "grid-line" }, svg);
      el("text", { x: PAD.left - 6, y: y(v) + 3, "text-anchor": "end", class: "axis-text" }, svg).textContent =
        shortNumber(v);
    }
    for (const t of timeTicks(t0, t1)) {
      el("text", { x: x(t), y: HEIGHT - 6, "text-anchor": "middle", class: "axis-text" }, svg).textContent = clock(t);
    }
    // The series: an area and a line per run of known values (a gap where the value is unknown).
    const runs = [];
    let run = [];
    for (const p of points) {
      if (p.v === null || p.v === undefined) {
        if (run.length) runs.push(run);
        run = [];
      } else {
        run.push(p);
      }
    }
    if (run.length) runs.push(run);
    for (const r of runs) {
      const line = r.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join("");
      const base = y(0).toFixed(1);
      const area = `${line}L${x(r[r.length - 1].t).toFixed(1)},${base}L${x(r[0].t).toFixed(1)},${base}Z`;
      el("path", { d: area, fill: options.color, "fill-opacity": 0.12, stroke: "none" }, svg);
      el("path", { d: line, class: "series-line", stroke: options.color }, svg);
      if (r.length === 1) el("circle", { cx: x(r[0].t), cy: y(r[0].v), r: 3, fill: options.color }, svg);
    }
    // Hover: the nearest sample's value and time.
    const cursor = el("line", { y1: PAD.top, y2: PAD.top + plotH, class: "cursor", visibility: "hidden" }, svg);
    const dot = el("circle", { r: 4, fill: options.color, stroke: "#fff", "stroke-width": 2, visibility: "hidden" }, svg);
    svg.addEventListener("mousemove", (event) => {
      const box = svg.getBoundingClientRect();
      const t = t0 + ((event.clientX - box.left) / box.width * width - PAD.left) / plotW * (t1 - t0);
      let best = points[0];
      for (const p of points) if (Math.abs(p.t - t) < Math.abs(best.t - t)) best = p;
      const px = x(best.t);
      cursor.setAttribute("x1", px);
      cursor.setAttribute("x2", px);
      cursor.setAttribute("visibility", "visible");
      if (best.v !== null && best.v !== undefined) {
        dot.setAttribute("cx", px);
        dot.setAttribute("cy", y(best.v));
        dot.setAttribute("visibility", "visible");
      } else {
        dot.setAttribute("visibility", "hidden");
      }
      tip.textContent = `${clock(best.t)} · ${best.v === null || best.v === undefined ? (options.noData || "—") : format(best.v)}`;
      tip.style.left = `${((px / width) * box.width) + (box.left - figure.getBoundingClientRect().left)}px`;
      tip.style.top = `${box.top - figure.getBoundingClientRect().top + 8}px`;
      tip.hidden = false;
    });
    svg.addEventListener("mouseleave", () => {
      cursor.setAttribute("visibility", "hidden");
      dot.setAttribute("visibility", "hidden");
      tip.hidden = true;
    });
  }

  window.LabCharts = { lineChart, shortNumber };
})();

// kubepulse dashboard: plain JS, no framework. Live data comes from /api/v1/stream (SSE).
// Every string from the network or Kubernetes is put in the DOM with textContent (el() below)
// or drawn on a canvas (cytoscape, uPlot); never with innerHTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const STALE_MS = 12000;  // no message for this long: the stream is lost
  const SERIES_REFRESH_MS = 5000;

  const state = {
    snap: null,
    edges: new Map(),        // edge id -> edge
    selectedEdge: "",
    selectedNode: "",        // workload drill-down
    selectedAlert: "",
    expanded: new Set(),     // workload node ids shown as their pods
    ns: "",
    search: "",
    lastMessage: 0,
    laidOut: false,
  };

  // -- DOM helper: text only ---------------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k === "class") node.className = v;
        else if (k === "text") node.textContent = v;
        else if (k === "data") Object.assign(node.dataset, v);
        else if (k === "title") node.title = v;
        else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v);
      }
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const fmt = {
    num(v, digits = 1) {
      if (v === null || v === undefined) return "–";
      if (typeof v !== "number") return String(v);
      if (Number.isInteger(v)) return String(v);
      return v.toFixed(Math.abs(v) < 1 ? 3 : digits);
    },
    pct(v) { return (100 * v).toFixed(v > 0 && v < 0.01 ? 1 : 0) + "%"; },
    time(iso) { return iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "–"; },
    dur(s) {
      s = Math.max(0, Math.round(s));
      if (s < 60) return s + " s";
      if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
      return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    },
  };

  // -- the map -----------------------------------------------------------------------------------
  const COLORS = { normal: "#5b9b6b", degraded: "#e09a1f", failing: "#d73a3a" };
  const cy = cytoscape({
    container: $("map"),
    wheelSensitivity: 0.3,
    minZoom: 0.1,
    maxZoom: 4,
    style: [
      { selector: "node", style: {
        "label": "data(label)", "font-size": 10, "text-valign": "bottom", "text-margin-y": 3,
        "background-color": "#8aa1b9", "width": 22, "height": 22,
        "min-zoomed-font-size": 6, "text-wrap": "ellipsis", "text-max-width": 140 } },
      { selector: "node[kind = 'pod'][?workloadNode]", style: { "shape": "round-rectangle",
        "background-color": "#4e79a7", "width": 34, "height": 22 } },
      { selector: "node[kind = 'podNode']", style: { "shape": "ellipse",
        "background-color": "#76a0cc", "width": 16, "height": 16, "font-size": 8 } },
      { selector: "node[kind = 'external']", style: { "shape": "diamond",
        "background-color": "#9c755f" } },
      { selector: "node[kind = 'host']", style: { "shape": "hexagon",
        "background-color": "#b07aa1" } },
      { selector: "node[kind = 'namespace']", style: {
        "background-color": "#eef2f7", "background-opacity": 0.6, "border-color": "#c3ccd8",
        "border-width": 1, "label": "data(label)", "text-valign": "top", "font-size": 11,
        "color": "#57606a", "shape": "round-rectangle" } },
      { selector: "node:parent[kind = 'pod']", style: { "background-color": "#dde8f4",
        "background-opacity": 0.7, "text-valign": "top", "border-color": "#4e79a7",
        "border-width": 1 } },
      { selector: "node[health = 'failing']", style: { "border-color": COLORS.failing,
        "border-width": 3 } },
      { selector: "node[health = 'degraded']", style: { "border-color": COLORS.degraded,
        "border-width": 3 } },
      { selector: "edge", style: {
        "width": "mapData(rate, 0, 40, 1.5, 6)", "line-color": COLORS.normal,
        "target-arrow-color": COLORS.normal, "target-arrow-shape": "triangle",
        "curve-style": "bezier", "arrow-scale": 0.8, "label": "data(label)", "font-size": 8,
        "text-rotation": "autorotate", "text-background-color": "#fff",
        "text-background-opacity": 0.85, "text-background-padding": 1, "color": "#444",
        "min-zoomed-font-size": 7 } },
      { selector: "edge[health = 'degraded']", style: { "line-color": COLORS.degraded,
        "target-arrow-color": COLORS.degraded } },
      { selector: "edge[health = 'failing']", style: { "line-color": COLORS.failing,
        "target-arrow-color": COLORS.failing, "line-style": "solid" } },
      { selector: "edge[!active]", style: { "line-style": "dashed", "opacity": 0.6 } },
      { selector: ".highlight", style: { "overlay-color": "#1f6feb", "overlay-opacity": 0.25,
        "overlay-padding": 6, "z-index": 10 } },
      { selector: ".faded", style: { "opacity": 0.15 } },
      { selector: "node.match", style: { "border-color": "#1f6feb", "border-width": 4 } },
    ],
  });

  function edgeLabel(e) {
    const r = e.rates;
    if (e.protocol === "dns") {
      const lat = r.dns_latency_ms === null ? "" : " " + fmt.num(r.dns_latency_ms) + " ms";
      const err = r.dns_error_ratio > 0 ? " " + fmt.pct(r.dns_error_ratio) + " err" : "";
      return "dns " + fmt.num(r.dns_queries_per_second) + "/s" + lat + err;
    }
    const cps = Math.max(r.connections_per_second, r.attempts_per_second);
    let s = ":" + e.port + " " + fmt.num(cps) + "/s";
    if (r.failure_ratio > 0) s += " " + fmt.pct(r.failure_ratio) + " fail";
    if (r.retransmits_per_second > 0) s += " " + fmt.num(r.retransmits_per_second) + " retx/s";
    if (r.rtt_ms !== null) s += " " + fmt.num(r.rtt_ms) + " ms";
    return s;
  }

  function visible(e) {
    return !state.ns || e.src.namespace === state.ns || e.dst.namespace === state.ns;
  }

  const RANK = { normal: 0, degraded: 1, failing: 2 };
  const worse = (a, b) => (RANK[a] >= RANK[b] ? a : b);

  function desiredElements() {
    const nodes = new Map();
    const edges = new Map();
    function endpoint(ep) {
      if (!nodes.has(ep.id)) {
        const parent = ep.namespace && ep.kind === "pod" ? "ns:" + ep.namespace : undefined;
        if (parent && !nodes.has(parent)) {
          nodes.set(parent, { id: parent, label: ep.namespace, kind: "namespace" });
        }
        nodes.set(ep.id, { id: ep.id, parent, kind: ep.kind, workloadNode: true,
          label: ep.kind === "pod" ? ep.workload || ep.id : ep.id, namespace: ep.namespace,
          health: "normal" });
      }
      return ep.id;
    }
    function podNode(id, workload) {
      if (id === workload) return id;
      if (!nodes.has(id)) {
        nodes.set(id, { id, parent: workload, kind: "podNode", label: id.split("/").pop(),
          health: "normal" });
      }
      return id;
    }
    function mark(id, health) {
      const n = nodes.get(id);
      if (n) n.health = worse(n.health, health);
    }
    for (const e of state.edges.values()) {
      if (!visible(e)) continue;
      const s = endpoint(e.src), d = endpoint(e.dst);
      const expand = (state.expanded.has(s) || state.expanded.has(d)) && e.pods.length;
      if (!expand) {
        edges.set(e.id, { id: e.id, source: s, target: d, edgeId: e.id, health: e.health,
          label: edgeLabel(e), rate: e.rates.connections_per_second + e.rates
            .dns_queries_per_second, active: e.active });
        if (e.health !== "normal") { mark(s, e.health); mark(d, e.health); }
        continue;
      }
      for (const p of e.pods) {
        const ps = state.expanded.has(s) ? podNode(p.src, s) : s;
        const pd = state.expanded.has(d) ? podNode(p.dst, d) : d;
        const id = e.id + "|" + ps + "|" + pd;
        if (edges.has(id)) continue;  // pod pairs collapsing onto one side: drawn once
        const pe = { ...e, rates: p.rates, health: p.health };
        edges.set(id, { id, source: ps, target: pd, edgeId: e.id, health: pe.health,
          label: edgeLabel(pe), rate: p.rates.connections_per_second, active: true });
        mark(ps, pe.health); mark(pd, pe.health);
      }
    }
    return { nodes, edges };
  }

  function renderMap() {
    const { nodes, edges } = desiredElements();
    let structural = false;
    cy.batch(() => {
      cy.elements().forEach((ele) => {
        const want = ele.isNode() ? nodes.get(ele.id()) : edges.get(ele.id());
        const parentChanged = ele.isNode() && want && (want.parent || null) !==
          (ele.data("parent") || null);
        if (!want || parentChanged) { cy.remove(ele); structural = true; }
      });
      for (const n of nodes.values()) {
        const have = cy.getElementById(n.id);
        if (have.length) have.data(n);
        else { cy.add({ group: "nodes", data: n }); structural = true; }
      }
      for (const e of edges.values()) {
        const have = cy.getElementById(e.id);
        if (have.length) have.data(e);
        else { cy.add({ group: "edges", data: e }); structural = true; }
      }
    });
    if (structural) layout(!state.laidOut);
    applySearch();
    applyHighlight();
  }

  function layout(fit) {
    if (!cy.nodes().length) return;
    cy.layout({ name: "cose", animate: false, fit: true, padding: 30, randomize: !state.laidOut,
      nodeRepulsion: () => 60000, idealEdgeLength: () => 70, nestingFactor: 0.8,
      gravity: 0.4, componentSpacing: 80, numIter: 1500 }).run();
    if (!fit) cy.fit(undefined, 30);
    state.laidOut = true;
  }

  function applySearch() {
    const q = state.search.trim().toLowerCase();
    cy.batch(() => {
      cy.elements().removeClass("faded match");
      if (!q) return;
      const hits = cy.nodes().filter((n) => String(n.id()).toLowerCase().includes(q)
        || String(n.data("label") || "").toLowerCase().includes(q));
      cy.elements().not(hits).not(hits.connectedEdges()).not(hits.ancestors())
        .addClass("faded");
      hits.addClass("match");
    });
  }

  function applyHighlight() {
    cy.elements().removeClass("highlight");
    const ids = new Set();
    if (state.selectedEdge) ids.add(state.selectedEdge);
    const a = state.snap && state.snap.alerts.alerts.find(
      (x) => x.fingerprint === state.selectedAlert);
    if (a) a.edges.forEach((id) => ids.add(id));
    cy.edges().filter((e) => ids.has(e.data("edgeId"))).addClass("highlight");
  }

  cy.on("tap", "edge", (evt) => selectEdge(evt.target.data("edgeId")));
  cy.on("tap", "node", (evt) => {
    const n = evt.target;
    if (n.data("kind") === "namespace") return;
    selectNode(n.data("kind") === "podNode" ? n.data("parent") : n.id());
  });
  cy.on("dbltap", "node", (evt) => toggleExpand(evt.target));
  cy.on("mouseover", "edge", (evt) => showTip(state.edges.get(evt.target.data("edgeId"))));
  cy.on("mouseout", "edge", () => { $("tip").hidden = true; });

  function toggleExpand(node) {
    let id = node.id();
    if (node.data("kind") === "podNode") id = node.data("parent");
    const n = cy.getElementById(id);
    if (!n.length || n.data("kind") !== "pod") return;
    if (state.expanded.has(id)) state.expanded.delete(id); else state.expanded.add(id);
    renderMap();
  }

  function showTip(e) {
    if (!e) return;
    const r = e.rates;
    const lines = [e.src.id + " → " + e.dst.id + ":" + e.port + " (" + e.protocol + ")",
      "health: " + e.health + (e.health_reason ? " (" + e.health_reason + ")" : ""),
      "connections/s " + fmt.num(r.connections_per_second) + ", failed " +
        fmt.pct(r.failure_ratio),
      "retransmits/s " + fmt.num(r.retransmits_per_second) + ", RTT " +
        fmt.num(r.rtt_ms) + " ms"];
    if (e.protocol === "dns") lines.push("DNS " + fmt.num(r.dns_queries_per_second) +
      " q/s, " + fmt.num(r.dns_latency_ms) + " ms, errors " + fmt.pct(r.dns_error_ratio));
    $("tip").textContent = lines.join("\n");
    $("tip").hidden = false;
  }

  // -- anomalies -------------------------------------------------------------------------------
  function flatten(obj, prefix, out) {
    for (const [k, v] of Object.entries(obj)) {
      const key = prefix ? prefix + "." + k : k;
      if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
      else out.push([key, Array.isArray(v) ? JSON.stringify(v) : fmt.num(v, 3)]);
    }
    return out;
  }

  function renderAlerts() {
    const alerts = state.snap.alerts.alerts;
    const firing = alerts.filter((a) => a.state === "firing").length;
    $("anomaly-count").textContent = firing + " firing, " + (alerts.length - firing) +
      " resolved";
    $("firing-pill").textContent = firing + " firing";
    $("firing-pill").className = "pill " + (firing ? "bad" : "ok");
    $("no-alerts").hidden = alerts.length > 0;
    const items = alerts.map((a) => {
      const ev = el("dl", { class: "evidence" });
      for (const [k, v] of flatten(a.evidence, "", [])) ev.append(el("dt", { text: k }),
        el("dd", { text: v }));
      const when = a.state === "firing"
        ? "since " + fmt.time(a.starts_at) + " (" + fmt.dur(a.duration_seconds) + ")"
        : fmt.time(a.starts_at) + "–" + fmt.time(a.ends_at) + " (" +
          fmt.dur(a.duration_seconds) + ")";
      const dst = a.dst + (a.dst_port !== null ? ":" + a.dst_port : "");
      return el("li", { class: [a.state, a.severity, a.fingerprint === state.selectedAlert
        ? "selected" : ""].join(" "), data: { fingerprint: a.fingerprint, state: a.state,
        type: a.type }, onclick: () => selectAlert(a) },
      el("div", { class: "alert-head" },
        el("span", { class: "pill " + a.severity, text: a.severity }),
        el("span", { class: "alert-type", text: a.type }),
        el("span", { class: "pill " + (a.state === "firing" ? "bad" : "ok"),
          text: a.state }),
        el("span", { class: "alert-when", text: when })),
      el("div", { class: "alert-edge", text: (a.src || "?") + " → " + (dst || "?") }),
      el("div", { class: "alert-cause", text: a.cause }),
      el("div", { class: "muted", text: a.summary }),
      ev);
    });
    $("alert-list").replaceChildren(...items);
  }

  function selectAlert(a) {
    state.selectedAlert = a.fingerprint;
    renderAlerts();
    if (a.edges.length) selectEdge(a.edges[0]);
    else applyHighlight();
    const hits = cy.edges().filter((e) => a.edges.includes(e.data("edgeId")));
    if (!hits.length) return;
    const ext = cy.extent(), bb = hits.boundingBox();  // move only if it is out of view
    if (bb.x1 < ext.x1 || bb.x2 > ext.x2 || bb.y1 < ext.y1 || bb.y2 > ext.y2) {
      cy.animate({ center: { eles: hits }, duration: 200 });
    }
  }

  // -- agent health ----------------------------------------------------------------------------
  function renderHealth() {
    const h = state.snap.health;
    $("node-name").textContent = h.node || "?";
    const missing = Object.entries(h.probes).filter(([, ok]) => !ok).map(([p]) => p);
    const lost = h.records_lost;
    const lostTotal = lost.kernel + lost.queue + lost.sink;
    const stale = h.last_tick_age_seconds === null || h.last_tick_age_seconds > 5;
    const pill = $("agent-pill");
    pill.textContent = stale ? "agent: no tick" : missing.length ? "agent: " +
      missing.length + " probe(s) missing" : "agent ok";
    pill.className = "pill " + (stale || missing.length ? "bad" : "ok");
    const rows = [
      ["node", h.node],
      ["probes attached", h.probes_attached + " / " + h.probes_total, missing.length > 0],
      ["missing", missing.join(", ") || "none", missing.length > 0],
      ["records lost", "kernel " + lost.kernel + " · queue " + lost.queue + " · sink " +
        lost.sink, lostTotal > 0],
      ["detection lag", fmt.num(h.detection_lag_seconds, 3) + " s",
        h.detection_lag_seconds > 2],
      ["last tick", h.last_tick_age_seconds === null ? "never" :
        fmt.num(h.last_tick_age_seconds, 1) + " s ago", stale],
      ["records read", String(h.records_received)],
      ["edges tracked", h.edges + " (cap " + h.limits.max_edges + "), pod pairs " +
        h.pod_edges],
      ["evicted", Object.entries(h.evictions).map(([k, v]) => k + " " + v).join(" · ")],
      ["version", h.version],
    ];
    $("health-list").replaceChildren(...rows.flatMap(([k, v, bad]) => [el("dt", { text: k }),
      el("dd", { class: bad ? "bad" : "", text: v, data: { key: k } })]));
  }

  // -- drill-down: charts and raw events ---------------------------------------------------------
  let seriesTimer = null;
  const charts = [];

  function selectEdge(id) {
    state.selectedEdge = id || "";
    state.selectedNode = "";
    $("node-edges").hidden = true;
    applyHighlight();
    renderDrillHead();
    clearInterval(seriesTimer);
    seriesTimer = null;
    if (state.selectedEdge) {
      loadSeries();
      seriesTimer = setInterval(loadSeries, SERIES_REFRESH_MS);
    } else {
      charts.forEach((c) => c.destroy());
      charts.length = 0;
      $("charts").replaceChildren();
      $("charts").hidden = true;
    }
    renderEvents();
  }

  // A workload (or peer): every edge in and out of it, and their raw records.
  function nodeEdges(id) {
    return Array.from(state.edges.values()).filter((e) => e.src.id === id || e.dst.id === id);
  }

  function selectNode(id) {
    selectEdge("");
    state.selectedNode = id;
    renderDrillHead();
    renderNode();
    renderEvents();
  }

  function renderNode() {
    const id = state.selectedNode;
    const rows = nodeEdges(id).map((e) => {
      const out = e.src.id === id;
      return el("tr", { class: "clickable", data: { edge: e.id },
        onclick: () => selectEdge(e.id) },
      el("td", { text: out ? "out →" : "in ←" }),
      el("td", { text: out ? e.dst.id : e.src.id }),
      el("td", { text: e.protocol === "dns" ? "dns" : String(e.port) }),
      el("td", {}, el("span", { class: "pill " + e.health, text: e.health })),
      el("td", { text: edgeLabel(e) }));
    });
    $("node-edges").tBodies[0].replaceChildren(...rows);
    $("node-edges").hidden = false;
  }

  function renderDrillHead() {
    const e = state.edges.get(state.selectedEdge);
    const head = $("drill-health");
    $("drill-close").hidden = !state.selectedEdge && !state.selectedNode;
    if (state.selectedNode) {
      const edges = nodeEdges(state.selectedNode);
      const worst = edges.reduce((h, x) => worse(h, x.health), "normal");
      $("drill-title").textContent = "Workload " + state.selectedNode + " (" +
        edges.length + " edges)";
      head.hidden = false;
      head.className = "pill " + worst;
      head.textContent = worst;
      $("drill-rates").textContent = "";
      return;
    }
    if (!state.selectedEdge) {
      $("drill-title").textContent = "Latest connection events (all edges)";
      $("drill-rates").textContent = "";
      head.hidden = true;
      return;
    }
    if (!e) { $("drill-rates").textContent = "(no traffic in the last window)"; return; }
    $("drill-title").textContent = e.src.id + " → " + e.dst.id + ":" + e.port + " (" +
      e.protocol + ")";
    head.hidden = false;
    head.className = "pill " + e.health;
    head.textContent = e.health + (e.health_reason ? ": " + e.health_reason : "");
    $("drill-rates").textContent = edgeLabel(e);
  }

  const OUTCOME_COLORS = { established_closed: "#5b9b6b", refused: "#d73a3a",
    timeout: "#e09a1f", unreachable: "#b07aa1", reset_sent: "#9c755f",
    reset_received: "#ff9da7", local_error: "#76b7b2", aborted_other: "#7f7f7f" };
  const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
    "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

  function makeChart(title, t, series, unit, width, range) {
    const box = el("div", { class: "chart", data: { chart: title } }, el("h4", { text: title }));
    const any = series.some((s) => s.values.some((v) => v !== null && v !== 0));
    if (!t.length || !any) {
      box.append(el("div", { class: "empty", text: "no data in the last 15 minutes" }));
      return box;
    }
    const opts = {
      width, height: 150,
      series: [{}].concat(series.map((s, i) => ({ label: s.label, stroke: s.color ||
        PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false }))),
      axes: [{}, { label: unit, size: 50 }],
      scales: { x: { time: true, range: () => range } },
      legend: { live: false },
    };
    charts.push(new uPlot(opts, [t].concat(series.map((s) => s.values)), box));
    return box;
  }

  async function loadSeries() {
    const id = state.selectedEdge;
    if (!id) return;
    let s;
    try {
      const r = await fetch("/api/v1/edges/" + encodeURIComponent(id) + "/series",
        { credentials: "same-origin" });
      if (r.status === 404) { $("drill-rates").textContent = "(edge expired)"; return; }
      if (!r.ok) return;
      s = await r.json();
    } catch (_) { return; }  // the banner reports a lost connection
    if (id !== state.selectedEdge) return;
    charts.forEach((c) => c.destroy());
    charts.length = 0;
    const b = s.bucket_seconds;
    const box = $("charts");
    box.hidden = false;
    const cols = box.clientWidth >= 1000 ? 3 : 2;
    box.style.gridTemplateColumns = "repeat(" + cols + ", minmax(0, 1fr))";
    const w = Math.max(260, Math.floor((box.clientWidth - (cols + 1) * 10) / cols) - 4);
    const end = s.t.length ? s.t[s.t.length - 1] + b : Date.now() / 1000;
    const range = [end - s.window_seconds, end];
    const chart = (title, t, series, unit) => makeChart(title, t, series, unit, w, range);
    const per = (m) => Object.entries(m).map(([k, v], i) => ({ label: k, values: v,
      color: OUTCOME_COLORS[k] || PALETTE[i % PALETTE.length] }));
    const boxes = [
      chart("Connections by outcome (per " + b + " s)", s.t,
        per(s.connections).concat([{ label: "attempts", values: s.attempts,
          color: "#4e79a7" }]), "conns"),
      chart("Retransmits (per " + b + " s)", s.t, [
        { label: "segments retransmitted", values: s.retransmits },
        { label: "SYN retransmits", values: s.syn_retransmits, color: "#e15759" }], "segs"),
      chart("RTT (ms)", s.t, [{ label: "mean", values: s.rtt_ms },
        { label: "max", values: s.rtt_max_ms, color: "#e15759" }], "ms"),
      chart("Drops by reason (per " + b + " s)", s.t, per(s.drops), "pkts"),
      chart("DNS latency (ms)", s.t, [{ label: "mean", values: s.dns_latency_ms },
        { label: "max", values: s.dns_latency_max_ms, color: "#e15759" }], "ms"),
      chart("DNS answers by rcode (per " + b + " s)", s.t, per(s.dns_rcodes).concat([
        { label: "timeouts", values: s.dns_timeouts, color: "#d73a3a" }]), "answers"),
    ];
    box.replaceChildren(...boxes);
  }

  async function renderEvents() {
    let events;
    if (state.selectedNode) {
      const ids = new Set(nodeEdges(state.selectedNode).map((e) => e.id));
      events = state.snap ? state.snap.events.events.filter((e) => ids.has(e.edge)) : [];
      $("events-title").textContent = "Raw connection records of this workload (newest " +
        events.length + ")";
    } else if (!state.selectedEdge) {
      events = state.snap ? state.snap.events.events : [];
      $("events-title").textContent = "Raw connection records (newest " + events.length + ")";
    } else {
      try {
        const r = await fetch("/api/v1/events?limit=50&edge=" +
          encodeURIComponent(state.selectedEdge), { credentials: "same-origin" });
        if (!r.ok) return;
        events = (await r.json()).events;
      } catch (_) { return; }
      $("events-title").textContent = "Raw connection records of this edge (newest " +
        events.length + ")";
    }
    const rows = events.map((e) => el("tr", { class: e.outcome && e.outcome !==
      "established_closed" ? "failed" : "" },
    el("td", { text: fmt.time(e.ts) }),
    el("td", { text: String(e.pid) }),
    el("td", { text: e.comm }),
    el("td", { text: e.direction }),
    el("td", { class: "addr" }, e.src_name, el("div", { class: "sub", text: e.src })),
    el("td", { class: "addr" }, e.dst_name, el("div", { class: "sub", text: e.dst })),
    el("td", { class: "outcome", text: e.outcome || e.kind }),
    el("td", { text: e.error }),
    el("td", { text: fmt.num(e.duration_ms) }),
    el("td", { text: String(e.retransmits) })));
    $("events").tBodies[0].replaceChildren(...rows);
  }

  // -- the stream -------------------------------------------------------------------------------
  function renderNamespaces() {
    const sel = $("ns-filter");
    const have = Array.from(sel.options).map((o) => o.value).slice(1).join("\n");
    const want = state.snap.edges.namespaces;
    if (have === want.join("\n")) return;
    sel.replaceChildren(el("option", { value: "", text: "all" }),
      ...want.map((ns) => el("option", { value: ns, text: ns })));
    sel.value = want.includes(state.ns) ? state.ns : "";
  }

  function apply(snap) {
    state.snap = snap;
    state.edges = new Map(snap.edges.edges.map((e) => [e.id, e]));
    renderNamespaces();
    renderMap();
    renderAlerts();
    renderHealth();
    renderDrillHead();
    if (state.selectedNode) renderNode();
    if (!state.selectedEdge) renderEvents();
  }

  function setStream(ok, text) {
    $("banner").hidden = ok;
    $("stream-status").textContent = text;
    document.body.dataset.stream = ok ? "live" : "lost";
  }

  let source = null;
  function connect() {
    source = new EventSource("/api/v1/stream");
    source.addEventListener("open", () => setStream(true, "live"));
    source.addEventListener("error", () => setStream(false, "stream lost, reconnecting"));
    source.addEventListener("ping", () => { state.lastMessage = Date.now(); });
    source.addEventListener("snapshot", (m) => {
      state.lastMessage = Date.now();
      setStream(true, "live · " + new Date().toLocaleTimeString([], { hour12: false }));
      apply(JSON.parse(m.data));
    });
  }
  setInterval(() => {
    if (state.lastMessage && Date.now() - state.lastMessage > STALE_MS) {
      setStream(false, "no update for " + Math.round((Date.now() - state.lastMessage) / 1000)
        + " s");
    }
  }, 1000);

  // -- controls ---------------------------------------------------------------------------------
  $("ns-filter").addEventListener("change", (e) => { state.ns = e.target.value;
    renderMap(); layout(true); });
  $("search").addEventListener("input", (e) => { state.search = e.target.value; applySearch(); });
  $("search").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    const hits = cy.nodes(".match");
    if (hits.length) cy.fit(hits, 60);
  });
  $("zoom-in").addEventListener("click", () => cy.zoom({ level: cy.zoom() * 1.3,
    renderedPosition: { x: cy.width() / 2, y: cy.height() / 2 } }));
  $("zoom-out").addEventListener("click", () => cy.zoom({ level: cy.zoom() / 1.3,
    renderedPosition: { x: cy.width() / 2, y: cy.height() / 2 } }));
  $("fit").addEventListener("click", () => cy.fit(undefined, 30));
  $("relayout").addEventListener("click", () => layout(true));
  $("collapse").addEventListener("click", () => { state.expanded.clear(); renderMap(); });
  $("drill-close").addEventListener("click", () => {
    state.selectedAlert = "";
    selectEdge("");
    if (state.snap) renderAlerts();
  });

  new ResizeObserver(() => cy.resize()).observe($("map"));

  // For tests and the curious: read-only handles, no data goes through them into the DOM.
  window.kubepulse = { cy, state, selectEdge, selectNode, expand: (id) => {
    state.expanded.add(id); renderMap(); } };
  connect();
})();

// backtestd's dashboard: no framework, no build step, nothing from another origin.
//
// Safety rule: text that came from a user or the server (strategy names, tickers, warnings,
// error messages, grid values) is only ever put into the page with textContent or as an SVG
// text node; innerHTML is never used. The server also sends a content security policy that
// allows no inline script.
"use strict";

(function () {
  // MARK: Polling schedule

  // The wait before the next GetBatchStatus poll, `elapsedMs` after the live stream broke:
  // 1 s for the first 30 s, 2 s up to 60 s, 5 s up to 120 s, 10 s up to 300 s, 30 s up to
  // 600 s, 60 s after (the same schedule as the Swift client's PollSchedule.standard).
  const POLL_STEPS = [[30000, 1000], [60000, 2000], [120000, 5000], [300000, 10000], [600000, 30000]];
  function pollInterval(elapsedMs) {
    for (const [until, delay] of POLL_STEPS) {
      if (elapsedMs < until) return delay;
    }
    return 60000;
  }

  // MARK: Metrics and formatting

  const METRICS = [
    ["total_return", "return", "percent"], ["cagr", "CAGR", "percent"], ["volatility", "vol", "percent"],
    ["sharpe", "Sharpe", "ratio"], ["sortino", "Sortino", "ratio"], ["max_drawdown", "max DD", "percent"],
    ["calmar", "Calmar", "ratio"], ["alpha", "alpha", "ratio"], ["beta", "beta", "ratio"],
    ["win_rate", "win rate", "percent"], ["profit_factor", "profit factor", "ratio"],
    ["trade_count", "trades", "count"], ["exposure", "exposure", "percent"], ["final_equity", "final equity", "money"],
  ];
  const MAX_ROWS = 1000;
  const TABLE_METRICS = ["total_return", "cagr", "sharpe", "sortino", "max_drawdown", "trade_count", "final_equity"];
  const metricInfo = (key) => METRICS.find((m) => m[0] === key);

  function format(value, kind) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    switch (kind) {
      case "percent": return (value * 100).toFixed(2) + "%";
      case "ratio": return value.toFixed(2);
      case "count": return String(value);
      case "money": return "$" + value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
      default: return String(value);
    }
  }

  function metricValue(row, key) {
    if (!row || row.status !== "ok") return null;
    if (key === "final_equity") return row.final_equity;
    return row.metrics ? row.metrics[key] : null;
  }

  // Higher is better for every metric but volatility; undefined values rank last.
  function compareRows(a, b, key) {
    const x = metricValue(a, key), y = metricValue(b, key);
    if ((x === null) !== (y === null)) return x === null ? 1 : -1;
    if (x !== null && x !== y) return key === "volatility" ? x - y : y - x;
    return a.index - b.index;
  }

  // MARK: DOM helpers (text only)

  const $ = (id) => document.getElementById(id);
  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  // MARK: Errors at the field the server names

  // Offsets of every value in a JSON text by path ("positions[0].entry.op"), so an error can be
  // shown at its field. A small scanner: enough for well-formed JSON; nothing for broken text.
  function jsonLocations(text) {
    const spots = {};
    let i = 0;
    const ws = () => { while (i < text.length && /\s/.test(text[i])) i++; };
    function str() {
      const start = i; i++;
      while (i < text.length && text[i] !== '"') { if (text[i] === "\\") i++; i++; }
      i++;
      return JSON.parse(text.slice(start, i));
    }
    function value(path, keyStart) {
      ws();
      const start = i;
      if (text[i] === "{") {
        i++; ws();
        while (i < text.length && text[i] !== "}") {
          ws(); const keyAt = i; const key = str(); ws(); i++; // ':'
          value(path ? path + "." + key : key, keyAt); ws();
          if (text[i] === ",") i++; ws();
        }
        i++;
      } else if (text[i] === "[") {
        i++; ws(); let n = 0;
        while (i < text.length && text[i] !== "]") {
          value(path + "[" + n + "]", null); n++; ws();
          if (text[i] === ",") i++; ws();
        }
        i++;
      } else if (text[i] === '"') {
        str();
      } else {
        while (i < text.length && !/[,\]}\s]/.test(text[i])) i++;
      }
      spots[path] = [keyStart === null ? start : keyStart, i];
    }
    try { value("", null); } catch (e) { /* broken JSON: no locations */ }
    return spots;
  }

  // The path in the editor's text of a field the server named: "strategy.positions[0].weight"
  // (the service's name for a single backtest), "variants[3].positions..." and "positions[0]"
  // (a JSON error in the file itself) all point into the strategy.
  function editorPath(field) {
    return withoutCall(field).replace(/^strategy\.?/, "").replace(/^variants\[\d+\]\.?/, "").replace(/^grid\.base_strategy\.?/, "");
  }

  function showError(boxId, textareaId, error, locate) {
    const box = $(boxId), area = $(textareaId);
    clear(box);
    const field = error.field || "";
    box.dataset.field = field;
    if (field) {
      box.appendChild(el("span", field, "field"));
      box.appendChild(document.createTextNode(": "));
    }
    box.appendChild(document.createTextNode(error.message || "error"));
    if (error.code) box.appendChild(el("span", " (" + error.code + ")", "meta"));
    box.hidden = false;
    area.classList.add("invalid");
    if (locate && field) {
      const spots = jsonLocations(area.value);
      let path = editorPath(field);
      // The deepest part of the path the text has.
      while (path && !spots[path]) path = path.replace(/(\.[^.[\]]*|\[\d+\])$/, "");
      const spot = spots[path];
      if (spot) {
        const line = area.value.slice(0, spot[0]).split("\n").length;
        box.appendChild(el("span", " — line " + line, "meta"));
        area.focus();
        area.setSelectionRange(spot[0], spot[1]);
      }
    }
  }

  // Errors about the axes ("grid[1]", the service's "run_batch.grid...") belong under the axes;
  // "grid.base_strategy..." is the strategy's.
  function isGridField(field) {
    const f = withoutCall(field || "");
    return f.startsWith("grid") && !f.startsWith("grid.base_strategy");
  }

  // The service's paths start with the call ("run_backtest.", "run_batch.", PROTOCOL.md "Field
  // paths"); the editor's text starts at the strategy.
  function withoutCall(field) {
    return field.replace(/^(run_backtest|run_batch)\./, "");
  }

  function hideError(boxId, textareaId) {
    $(boxId).hidden = true;
    clear($(boxId));
    delete $(boxId).dataset.field;
    $(textareaId).classList.remove("invalid");
  }

  // MARK: SVG charts (the HTML report's charts, drawn as DOM nodes)

  const SVG = "http://www.w3.org/2000/svg";
  function svgNode(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  // series: [{name, values, color, filled}]; dates: ["YYYY-MM-DD"].
  function lineChart(title, dates, series, yLabel, height) {
    const width = 960, m = { left: 80, right: 16, top: 28, bottom: 36 };
    const finite = series.flatMap((s) => s.values).filter((v) => v !== null && Number.isFinite(v));
    if (finite.length === 0 || dates.length < 2) return el("p", title + ": no data", "meta");
    let low = Math.min(...finite), high = Math.max(...finite);
    if (series.some((s) => s.filled)) { high = Math.max(high, 0); low = Math.min(low, 0); }
    if (high === low) { high += Math.max(Math.abs(high) * 0.01, 1); low -= Math.max(Math.abs(low) * 0.01, 1); }
    const p = { x: m.left, y: m.top, w: width - m.left - m.right, h: height - m.top - m.bottom };
    const x = (i) => p.x + (p.w * i) / (dates.length - 1);
    const y = (v) => p.y + p.h * (1 - (v - low) / (high - low));
    const svg = svgNode("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
    svg.appendChild(svgNode("text", { x: p.x, y: 18, class: "title" }, title));
    for (let t = 0; t <= 4; t++) {
      const v = low + ((high - low) * t) / 4, ty = y(v);
      svg.appendChild(svgNode("line", { x1: p.x, x2: p.x + p.w, y1: ty.toFixed(1), y2: ty.toFixed(1), class: "grid" }));
      svg.appendChild(svgNode("text", { x: p.x - 6, y: (ty + 4).toFixed(1), "text-anchor": "end" }, yLabel(v)));
    }
    for (let t = 0; t <= 4; t++) {
      const i = Math.floor(((dates.length - 1) * t) / 4);
      const anchor = t === 0 ? "start" : t === 4 ? "end" : "middle";
      svg.appendChild(svgNode("text", { x: x(i).toFixed(1), y: (p.y + p.h + 20).toFixed(1), "text-anchor": anchor }, dates[i]));
    }
    const stride = Math.max(1, Math.floor(dates.length / 2000));
    for (const s of series) {
      const pts = [];
      for (let i = 0; i < dates.length; i += stride) {
        const v = s.values[i];
        if (v !== null && Number.isFinite(v)) pts.push(x(i).toFixed(1) + "," + y(v).toFixed(1));
      }
      const lastV = s.values[dates.length - 1];
      if ((dates.length - 1) % stride !== 0 && lastV !== null && Number.isFinite(lastV)) pts.push(x(dates.length - 1).toFixed(1) + "," + y(lastV).toFixed(1));
      if (pts.length === 0) continue;
      if (s.filled) {
        const zero = y(0).toFixed(1), first = pts[0].split(",")[0], last = pts[pts.length - 1].split(",")[0];
        svg.appendChild(svgNode("polygon", { points: `${first},${zero} ${pts.join(" ")} ${last},${zero}`, fill: s.color, "fill-opacity": 0.25, stroke: "none" }));
      }
      svg.appendChild(svgNode("polyline", { points: pts.join(" "), fill: "none", stroke: s.color, "stroke-width": 1.5 }));
    }
    let legendX = p.x + p.w;
    for (const s of series.slice().reverse()) {
      legendX -= s.name.length * 7 + 30;
      svg.appendChild(svgNode("rect", { x: legendX.toFixed(1), y: 10, width: 12, height: 4, fill: s.color }));
      svg.appendChild(svgNode("text", { x: (legendX + 16).toFixed(1), y: 16 }, s.name));
    }
    return svg;
  }

  function drawdowns(values) {
    let peak = -Infinity;
    return values.map((v) => {
      if (v === null || !Number.isFinite(v)) return null;
      peak = Math.max(peak, v);
      return peak > 0 ? v / peak - 1 : null;
    });
  }

  const compactMoney = (v) => {
    const a = Math.abs(v);
    if (a >= 1e6) return "$" + (v / 1e6).toFixed(2) + "M";
    if (a >= 1e3) return "$" + (v / 1e3).toFixed(0) + "k";
    return "$" + v.toFixed(0);
  };

  // MARK: One result (single backtest or a batch variant's FULL result)

  function showResult(result, subtitle) {
    const section = $("result-section");
    section.hidden = false;
    $("result-title").textContent = result.strategy_name || "(unnamed strategy)";
    const bench = result.benchmark_ticker || "benchmark";
    $("result-meta").textContent = (subtitle ? subtitle + " · " : "") +
      `${result.start || "?"} to ${result.end || "?"}, ${result.trading_days} trading days · ` +
      `initial ${format(result.initial_capital, "money")} → final ${format(result.final_equity, "money")} · ` +
      `${result.orders.length} orders · data ${result.data_source}, engine ${result.engine}`;
    const dates = result.equity_curve.map((p) => p.date);
    const equity = result.equity_curve.map((p) => p.equity);
    const benchmark = result.equity_curve.map((p) => p.benchmark);
    const name = result.strategy_name || "strategy";
    const eq = $("equity-chart"), dd = $("drawdown-chart");
    clear(eq); clear(dd);
    eq.appendChild(lineChart("Equity", dates, [
      { name, values: equity, color: "#1f77b4" }, { name: bench, values: benchmark, color: "#ff7f0e" }], compactMoney, 320));
    dd.appendChild(lineChart("Drawdown", dates, [
      { name, values: drawdowns(equity), color: "#d62728", filled: true },
      { name: bench, values: drawdowns(benchmark), color: "#7f7f7f" }], (v) => (v * 100).toFixed(0) + "%", 220));

    $("benchmark-column").textContent = bench;
    const body = $("metrics-table").tBodies[0];
    clear(body);
    for (const [key, label, kind] of METRICS) {
      const tr = el("tr");
      tr.appendChild(el("td", label));
      if (key === "final_equity") {
        tr.appendChild(el("td", format(result.final_equity, kind)));
        tr.appendChild(el("td", format(benchmark.length ? benchmark[benchmark.length - 1] : null, kind)));
      } else {
        tr.appendChild(el("td", format(result.metrics[key], kind)));
        tr.appendChild(el("td", format(result.benchmark_metrics[key], kind)));
      }
      body.appendChild(tr);
    }
    const warnings = $("warnings");
    clear(warnings);
    for (const w of result.warnings) warnings.appendChild(el("li", w));
    $("warnings-section").hidden = result.warnings.length === 0;

    const orders = $("orders-table").tBodies[0];
    clear(orders);
    const shown = result.orders.slice(0, 500);
    for (const o of shown) {
      const tr = el("tr");
      tr.appendChild(el("td", o.date));
      tr.appendChild(el("td", o.ticker, "text"));
      tr.appendChild(el("td", o.side, o.side === "buy" ? "buy" : "sell"));
      tr.appendChild(el("td", o.quantity.toFixed(4)));
      tr.appendChild(el("td", format(o.price, "money")));
      tr.appendChild(el("td", format(o.commission, "money")));
      orders.appendChild(tr);
    }
    $("orders-meta").textContent = result.orders.length > shown.length
      ? `first ${shown.length} of ${result.orders.length} orders` : `${result.orders.length} orders`;
  }

  async function readJSON(response) {
    try { return await response.json(); } catch (e) { return { error: { code: "INTERNAL", message: `HTTP ${response.status}`, field: "" } }; }
  }

  async function runBacktest() {
    hideError("editor-error", "strategy-editor");
    $("backtest-status").textContent = "running…";
    $("run-backtest").disabled = true;
    try {
      const response = await fetch("/api/backtest", { method: "POST", headers: { "Content-Type": "application/json" }, body: $("strategy-editor").value });
      const answer = await readJSON(response);
      if (!response.ok) {
        showError("editor-error", "strategy-editor", answer.error || {}, true);
        $("backtest-status").textContent = "";
        return;
      }
      $("backtest-status").textContent = `done in ${answer.stats.total_ms.toFixed(1)} ms`;
      showResult(answer, "single backtest");
    } catch (e) {
      $("backtest-status").textContent = "request failed: " + e.message;
    } finally {
      $("run-backtest").disabled = false;
    }
  }

  // MARK: Batches

  const state = {
    batchId: null,
    total: 0,
    rows: [],            // by index: null while running, else the VariantDocument
    serverState: null,   // "partial" | "final" | "cancelled" | "failed"
    error: null,
    stats: null,
    sortKey: "sharpe",
    live: null,          // the AbortController of the live stream
    mode: "idle",        // "live" | "polling" | "done" | "idle"
    polls: 0,
    selected: null,
    generation: 0,       // bumps when a new batch starts, so a stale loop stops
  };

  function completedCount() { return state.rows.filter((r) => r !== null).length; }
  function isFinal() { return state.serverState === "final" && completedCount() === state.total && state.total > 0; }

  function headerText() {
    const done = completedCount();
    switch (state.serverState) {
      case "final": return isFinal() ? "Final Results" : `Partial Results (${done}/${state.total} complete)`;
      case "cancelled": return `Cancelled Results (${done}/${state.total} complete)`;
      case "failed": return `Failed Results (${done}/${state.total} complete)`;
      default: return `Partial Results (${done}/${state.total} complete)`;
    }
  }

  function rowLabel(row, index) {
    if (row && row.parameters && row.parameters.length) return row.parameters.map((p) => `${p.path}=${p.value}`).join(", ");
    return "#" + index;
  }

  function applyUpdate(update) {
    if (update.batch_id) state.batchId = update.batch_id;
    if (update.total !== state.total || state.rows.length !== update.total) {
      const rows = new Array(update.total).fill(null);
      for (let i = 0; i < Math.min(rows.length, state.rows.length); i++) rows[i] = state.rows[i];
      state.rows = rows;
      state.total = update.total;
    }
    for (const r of update.results) if (r.index >= 0 && r.index < state.total) state.rows[r.index] = r;
    state.serverState = update.state;
    if (update.stats) state.stats = update.stats;
    if (update.error) state.error = update.error;
    render();
  }

  function render() {
    $("batch-section").hidden = false;
    const final = isFinal();
    $("batch-header").textContent = headerText();
    const meta = [`batch ${state.batchId || "…"}`];
    if (state.stats && final) meta.push(`${state.stats.total_ms.toFixed(0)} ms, ${state.stats.variants_per_second.toFixed(1)} variants/s`);
    if (state.error) meta.push(`${state.error.code}: ${state.error.message}`);
    $("batch-meta").textContent = meta.join(" · ");
    // Sorting and the CSV exist only for a final batch: a ranking of whatever finished first
    // misleads, and a partial CSV looks complete.
    $("sort-metric").disabled = !final;
    const download = $("download-csv");
    download.disabled = !final;
    if (final) download.dataset.href = `/api/batches/${encodeURIComponent(state.batchId)}/csv?sort=${encodeURIComponent(state.sortKey)}`;
    else delete download.dataset.href;
    $("cancel-batch").disabled = final || state.serverState !== "partial" || !state.batchId;

    const columns = $("batch-columns");
    clear(columns);
    columns.appendChild(el("th", "#"));
    columns.appendChild(el("th", "variant", "text"));
    columns.appendChild(el("th", "strategy", "text"));
    columns.appendChild(el("th", "status", "text"));
    for (const key of TABLE_METRICS) {
      const th = el("th");
      const button = el("button", metricInfo(key)[1], "sort");
      button.type = "button";
      button.dataset.metric = key;
      button.disabled = !final;
      button.addEventListener("click", () => { state.sortKey = key; $("sort-metric").value = key; render(); });
      th.appendChild(button);
      if (final && key === state.sortKey) th.classList.add("sorted");
      columns.appendChild(th);
    }

    let order = state.rows.map((row, index) => ({ row, index }));
    if (final) order.sort((a, b) => compareRows(a.row, b.row, state.sortKey));
    // A sweep of thousands of variants: the table shows the first MAX_ROWS (the best, once
    // final); the CSV has them all.
    const shown = order.slice(0, MAX_ROWS);
    $("batch-more").textContent = order.length > shown.length
      ? `showing ${shown.length} of ${order.length} variants${final ? " (the best by " + metricInfo(state.sortKey)[1] + "); the CSV has all" : ""}` : "";
    const body = $("batch-rows");
    clear(body);
    for (const { row, index } of shown) {
      const tr = el("tr");
      tr.dataset.index = String(index);
      tr.appendChild(el("td", index));
      tr.appendChild(el("td", rowLabel(row, index), "text"));
      if (row === null) {
        tr.className = "running";
        tr.appendChild(el("td", "", "text"));
        tr.appendChild(el("td", "Running...", "text"));
        for (const _ of TABLE_METRICS) tr.appendChild(el("td", ""));
      } else if (row.status !== "ok") {
        tr.className = "failed";
        tr.appendChild(el("td", "", "text"));
        tr.appendChild(el("td", row.error ? `${row.error.code}: ${row.error.message}` : "error", "text"));
        for (const _ of TABLE_METRICS) tr.appendChild(el("td", ""));
      } else {
        tr.appendChild(el("td", row.strategy_name, "text"));
        tr.appendChild(el("td", row.warnings.length ? `ok (${row.warnings.length} warnings)` : "ok", "text"));
        for (const key of TABLE_METRICS) tr.appendChild(el("td", format(metricValue(row, key), metricInfo(key)[2])));
        if (row.warnings.length) tr.title = row.warnings.join("\n");
      }
      if (state.selected === index) tr.classList.add("selected");
      tr.addEventListener("click", () => showVariant(index));
      body.appendChild(tr);
    }
    renderHeatmap();
  }

  // A two-axis grid as a table of the sort metric: first axis down, second across.
  function renderHeatmap() {
    const section = $("heatmap-section"), table = $("heatmap");
    const done = state.rows.filter((r) => r && r.parameters && r.parameters.length === 2);
    if (done.length === 0) { section.hidden = true; return; }
    const axes = done[0].parameters.map((p) => p.path);
    const downSet = new Set(), acrossSet = new Set();
    for (const r of state.rows) {
      if (!r || !r.parameters || r.parameters.length !== 2) continue;
      downSet.add(r.parameters[0].value);
      acrossSet.add(r.parameters[1].value);
    }
    const down = [...downSet], across = [...acrossSet];
    // A heatmap wider or taller than this is unreadable in a page: the CLI's --heatmap is for those.
    if (down.length * across.length > 10000) { section.hidden = true; return; }
    const key = state.sortKey, kind = metricInfo(key)[2];
    const cells = new Map(done.map((r) => [r.parameters[0].value + "\u0000" + r.parameters[1].value, r]));
    let lo = Infinity, hi = -Infinity, count = 0;
    for (const r of done) {
      const v = metricValue(r, key);
      if (v !== null && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); count++; }
    }
    section.hidden = false;
    $("heatmap-title").textContent = `Heatmap: ${metricInfo(key)[1]} by ${axes[0]} (rows) and ${axes[1]} (columns)`;
    clear(table);
    const head = el("tr");
    head.appendChild(el("th", ""));
    for (const a of across) head.appendChild(el("th", a));
    table.appendChild(head);
    for (const d of down) {
      const tr = el("tr");
      tr.appendChild(el("th", d));
      for (const a of across) {
        const r = cells.get(d + "\u0000" + a);
        const v = r ? metricValue(r, key) : null;
        const td = el("td", r ? format(v, kind) : "…");
        if (v !== null && Number.isFinite(v) && count > 0) {
          let t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
          if (key === "volatility") t = 1 - t;
          td.style.backgroundColor = `hsl(${Math.round(t * 120)}, 65%, 72%)`;
        }
        if (r) td.addEventListener("click", () => showVariant(r.index));
        tr.appendChild(td);
      }
      table.appendChild(tr);
    }
  }

  async function showVariant(index) {
    if (!state.batchId) return;
    state.selected = index;
    render();
    const response = await fetch(`/api/batches/${encodeURIComponent(state.batchId)}/variants/${index}`);
    const answer = await readJSON(response);
    if (!response.ok) {
      $("live-status").textContent = `variant ${index}: ${answer.error ? answer.error.message : response.status}`;
      return;
    }
    showResult(answer, `batch ${state.batchId}, variant ${index}`);
  }

  function setBatchInURL(id) {
    const url = new URL(window.location.href);
    if (id) url.searchParams.set("batch", id); else url.searchParams.delete("batch");
    window.history.replaceState(null, "", url.toString());
  }

  function finished() {
    return isFinal() || state.serverState === "cancelled" || state.serverState === "failed";
  }

  async function runBatch() {
    hideError("editor-error", "strategy-editor");
    hideError("grid-error", "grid-axes");
    let strategy;
    try {
      strategy = JSON.parse($("strategy-editor").value);
    } catch (e) {
      showError("editor-error", "strategy-editor", { code: "INVALID_ARGUMENT", message: "the strategy is not valid JSON: " + e.message, field: "" }, false);
      return;
    }
    const grid = $("grid-axes").value.split("\n").map((l) => l.trim()).filter((l) => l.length > 0);
    if (state.live) state.live.abort();
    state.generation++;
    const generation = state.generation;
    Object.assign(state, { batchId: null, total: 0, rows: [], serverState: null, error: null, stats: null, mode: "live", polls: 0, selected: null });
    $("live-status").textContent = "starting…";
    const controller = new AbortController();
    state.live = controller;
    let response;
    try {
      response = await fetch("/api/batches", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ strategy, grid }), signal: controller.signal,
      });
    } catch (e) {
      $("live-status").textContent = "request failed: " + e.message;
      return;
    }
    if (!response.ok) {
      const answer = await readJSON(response);
      const error = answer.error || {};
      if (isGridField(error.field)) showError("grid-error", "grid-axes", error, false);
      else showError("editor-error", "strategy-editor", error, true);
      $("live-status").textContent = "";
      return;
    }
    $("live-status").textContent = "live stream";
    await readStream(response, generation, controller);
  }

  // Server-sent events from the POST's response body (EventSource cannot POST).
  async function readStream(response, generation, controller) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let ended = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let name = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) name = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (generation !== state.generation) return;
          if (name === "update") {
            const update = JSON.parse(data);
            if (!state.batchId && update.batch_id) setBatchInURL(update.batch_id);
            applyUpdate(update);
          } else if (name === "error") {
            const error = JSON.parse(data).error;
            state.error = error;
            if (!state.batchId) {
              if (isGridField(error.field)) showError("grid-error", "grid-axes", error, false);
              else showError("editor-error", "strategy-editor", error, true);
            }
            render();
          } else if (name === "end") {
            ended = true;
          }
        }
      }
    } catch (e) {
      // The connection broke (or the test broke it): fall through to polling.
    }
    if (generation !== state.generation) return;
    if (state.live === controller) state.live = null;
    if (finished()) {
      state.mode = "done";
      $("live-status").textContent = "live stream: done";
      render();
      return;
    }
    if (!state.batchId) {
      $("live-status").textContent = ended ? "the batch did not start" : "the stream broke before the batch started";
      return;
    }
    startPolling(generation, "live stream lost");
  }

  // MARK: Polling (GetBatchStatus) after a broken stream or a reload

  function knownRanges() {
    const parts = [];
    let i = 0;
    while (i < state.rows.length) {
      if (state.rows[i] === null) { i++; continue; }
      let j = i;
      while (j + 1 < state.rows.length && state.rows[j + 1] !== null) j++;
      parts.push(i === j ? String(i) : `${i}-${j}`);
      i = j + 1;
    }
    return parts.join(",");
  }

  async function startPolling(generation, why) {
    state.mode = "polling";
    const started = Date.now();
    for (;;) {
      if (generation !== state.generation) return;
      let wait = pollInterval(Date.now() - started);
      try {
        const response = await fetch(`/api/batches/${encodeURIComponent(state.batchId)}?known=${knownRanges()}`);
        state.polls++;
        const answer = await readJSON(response);
        if (generation !== state.generation) return;
        if (!response.ok) {
          const error = answer.error || {};
          if (response.status === 404) {
            state.error = error;
            state.mode = "done";
            $("live-status").textContent = `batch ${state.batchId}: ${error.message}`;
            render();
            return;
          }
          $("live-status").textContent = `${why}; poll failed (${error.message || response.status}), retrying`;
        } else {
          applyUpdate(answer);
          if (finished()) {
            state.mode = "done";
            $("live-status").textContent = `${why}; finished by polling (${state.polls} polls)`;
            render();
            return;
          }
          // A final batch whose results did not fit one answer: read the rest at once.
          if (answer.state === "final" && answer.results.length > 0) wait = 0;
          $("live-status").textContent = `${why}; polling every ${wait / 1000} s (${state.polls} polls)`;
        }
      } catch (e) {
        $("live-status").textContent = `${why}; server unreachable, retrying`;
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  async function cancelBatch() {
    if (!state.batchId) return;
    const response = await fetch(`/api/batches/${encodeURIComponent(state.batchId)}/cancel`, { method: "POST" });
    const answer = await readJSON(response);
    if (response.ok) { state.serverState = answer.state; render(); }
  }

  // MARK: Start

  const DEFAULT_STRATEGY = {
    name: "AAPL SMA trend", start: "2018-01-02", end: "2023-12-29", initial_capital: 100000, benchmark: "SPY",
    fill: "next_open", commission_bps: 1, slippage_bps: 2,
    positions: [{ ticker: "AAPL", weight: 1.0, entry: { lhs: "sma:20", op: ">", rhs: "sma:100" } }],
  };
  const DEFAULT_GRID = "positions[0].entry.lhs=sma:10,sma:20,sma:30,sma:40\npositions[0].entry.rhs=sma:100,sma:200";

  function start() {
    $("strategy-editor").value = JSON.stringify(DEFAULT_STRATEGY, null, 2);
    $("grid-axes").value = DEFAULT_GRID;
    const select = $("sort-metric");
    for (const key of TABLE_METRICS.concat(["volatility", "calmar", "win_rate", "exposure"])) {
      const option = el("option", metricInfo(key)[1]);
      option.value = key;
      select.appendChild(option);
    }
    select.value = state.sortKey;
    select.addEventListener("change", () => { state.sortKey = select.value; render(); });
    $("run-backtest").addEventListener("click", runBacktest);
    $("run-batch").addEventListener("click", runBatch);
    $("cancel-batch").addEventListener("click", cancelBatch);
    $("download-csv").addEventListener("click", () => {
      const href = $("download-csv").dataset.href;
      if (href && isFinal()) window.location.href = href;
    });
    fetch("/api/info").then(readJSON).then((info) => {
      if (info.server_version) $("server-info").textContent = `${info.server_version} · data ${info.data_source} · engine ${info.engine}`;
    }).catch(() => {});
    // Re-attach: the batch id in the URL survives a reload.
    const id = new URL(window.location.href).searchParams.get("batch");
    if (id) {
      state.generation++;
      state.batchId = id;
      $("live-status").textContent = "re-attaching…";
      startPolling(state.generation, "re-attached after reload");
    }
  }

  window.BacktestDashboard = {
    pollInterval,
    state,
    // For tests and demos: drops the live stream as a network failure would.
    breakLiveStream() { if (state.live) { state.live.abort(); return true; } return false; },
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();

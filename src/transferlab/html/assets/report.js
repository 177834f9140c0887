/* transferlab report pages: sortable, filterable tables; Plotly charts drawn from inline JSON;
   a click on a transfer heatmap cell lists the examples whose outcome changed. No network. */
(function () {
  "use strict";

  function blob(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // ---- tables ------------------------------------------------------------------------------
  // A cell sorts by its data-v attribute when it has one, else by the leading number of its
  // text (Unicode minus included), else by its text; empty and NA cells sort last.
  function sortKey(td) {
    if (!td) return { blank: true };
    var raw = td.hasAttribute("data-v") ? td.getAttribute("data-v") : td.textContent.trim();
    if (raw === "" || raw === "NA" || raw === "—" || raw === "nan") return { blank: true };
    var m = raw.replace(/\u2212/g, "-").match(/^[*+\s(]*(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)/i);
    if (m) return { num: parseFloat(m[1]) };
    return { text: raw.toLowerCase() };
  }

  function compare(a, b) {
    if (a.blank || b.blank) return a.blank && b.blank ? 0 : (a.blank ? 1 : -1);
    if (a.num !== undefined && b.num !== undefined) return a.num - b.num;
    if (a.num !== undefined) return -1;
    if (b.num !== undefined) return 1;
    return a.text < b.text ? -1 : (a.text > b.text ? 1 : 0);
  }

  function sortBy(table, th, index) {
    var body = table.tBodies[0];
    if (!body) return;
    var dir = th.getAttribute("data-dir") === "asc" ? "desc" : "asc";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("data-dir"); });
    th.setAttribute("data-dir", dir);
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (r, i) { return { row: r, key: sortKey(r.cells[index]), i: i }; });
    keyed.sort(function (x, y) {
      var c = compare(x.key, y.key);
      if (x.key.blank || y.key.blank) return c || x.i - y.i;  // blanks stay last either way
      return (dir === "asc" ? c : -c) || x.i - y.i;
    });
    keyed.forEach(function (k) { body.appendChild(k.row); });
  }

  // Every space-separated term must occur in the row (case-insensitive); `-term` excludes.
  function filterRows(table, query, counter) {
    var terms = query.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0, rows = table.tBodies[0] ? table.tBodies[0].rows : [];
    Array.prototype.forEach.call(rows, function (r) {
      var text = r.textContent.toLowerCase();
      var keep = terms.every(function (t) {
        return t.charAt(0) === "-" && t.length > 1 ? text.indexOf(t.slice(1)) < 0 : text.indexOf(t) >= 0;
      });
      r.classList.toggle("tl-hidden", !keep);
      if (keep) shown += 1;
    });
    if (counter) counter.textContent = shown + " of " + rows.length + " rows";
  }

  function initTable(table) {
    if (table.getAttribute("data-ready")) return;
    table.setAttribute("data-ready", "1");
    if (table.tHead && table.tHead.rows.length) {
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
        th.classList.add("tl-sortable");
        th.title = "sort";
        th.addEventListener("click", function () { sortBy(table, th, i); });
      });
    }
    var rows = table.tBodies[0] ? table.tBodies[0].rows.length : 0;
    if (rows >= 4 || table.classList.contains("tl-filterable")) {
      var wrap = table.closest(".tl-table-wrap") || table;
      var input = el("input", { type: "search", class: "tl-filter", placeholder: "filter rows (words; -word excludes)",
        "data-for": table.id || "" });
      var counter = el("span", { class: "tl-count" }, rows + " rows");
      input.addEventListener("input", function () { filterRows(table, input.value, counter); });
      var bar = el("div", { class: "tl-filter-bar" });
      bar.appendChild(input);
      bar.appendChild(counter);
      wrap.parentNode.insertBefore(bar, wrap);
    }
  }

  // ---- changed examples --------------------------------------------------------------------
  var EXAMPLES = null;

  function showExamples(group, point) {
    var panel = document.getElementById("examples-" + group);
    if (!panel) return;
    var source = String(point.y), target = String(point.x);
    panel.textContent = "";
    var cells = (EXAMPLES && EXAMPLES[group]) || {};
    var cell = cells[source + "\u0000" + target];
    if (source === "base") {
      panel.appendChild(el("p", {}, "The base row is the untrained model: click a trained cell to see the examples its adapter changed."));
      return;
    }
    if (!cell) {
      panel.appendChild(el("p", {}, "No per-example records for " + source + " \u2192 " + target +
        " (its evaluation artifacts are not in this run's store)."));
      return;
    }
    var head = el("h4", {}, source + " \u2192 " + target + " (seed " + cell.seed + ", " + cell.metric + ")");
    panel.appendChild(head);
    var summary = cell.changed + " of " + cell.total + " examples changed outcome against the base model: " +
      cell.improved + " better, " + cell.worse + " worse";
    summary += cell.rows.length < cell.changed ? "; showing " + cell.rows.length + "." : ".";
    if (cell.note) summary += " " + cell.note;
    panel.appendChild(el("p", { class: "tl-note" }, summary));
    if (!cell.rows.length) return;
    var wrap = el("div", { class: "tl-table-wrap" });
    var table = el("table", { class: "tl-table tl-examples-table tl-filterable" });
    var thead = el("thead"), tr = el("tr");
    ["uid", "change", "prompt", "reference", "base model", "adapter"].forEach(function (h) { tr.appendChild(el("th", {}, h)); });
    thead.appendChild(tr);
    table.appendChild(thead);
    var body = el("tbody");
    cell.rows.forEach(function (r) {
      var row = el("tr");
      row.appendChild(el("td", {}, r.uid));
      var better = r.adapter_score > r.base_score;
      row.appendChild(el("td", { class: better ? "tl-better" : "tl-worse", "data-v": r.adapter_score - r.base_score },
        (better ? "better " : "worse ") + fmt(r.base_score) + " \u2192 " + fmt(r.adapter_score)));
      ["prompt", "reference", "base", "adapter"].forEach(function (k) {
        var td = el("td");
        td.appendChild(el("pre", {}, r[k] === null || r[k] === undefined ? "\u2014" : r[k]));
        row.appendChild(td);
      });
      body.appendChild(row);
    });
    table.appendChild(body);
    wrap.appendChild(table);
    panel.appendChild(wrap);
    initTable(table);
    panel.scrollIntoView({ block: "nearest" });
  }

  function fmt(v) { return typeof v === "number" ? (Math.round(v * 1000) / 1000).toString() : String(v); }

  // ---- charts ------------------------------------------------------------------------------
  function drawCharts() {
    var charts = Array.prototype.slice.call(document.querySelectorAll("div.tl-chart"));
    if (!charts.length) return Promise.resolve();
    if (typeof Plotly === "undefined") throw new Error("Plotly is not loaded: the page lost its inline script");
    return Promise.all(charts.map(function (div) {
      var spec = blob(div.getAttribute("data-spec"));
      return Plotly.newPlot(div, spec.data, spec.layout, { responsive: false, displaylogo: false }).then(function () {
        var group = div.getAttribute("data-examples");
        if (group) div.on("plotly_click", function (ev) { if (ev.points && ev.points.length) showExamples(group, ev.points[0]); });
      });
    }));
  }

  document.addEventListener("DOMContentLoaded", function () {
    EXAMPLES = blob("tl-examples");
    Array.prototype.forEach.call(document.querySelectorAll("table.tl-table"), initTable);
    drawCharts().then(function () { document.body.setAttribute("data-ready", "1"); });
  });
})();

// The stats site's only script: sortable tables, charts (Vega-Lite through the bundled Vega),
// and explore's lookups in the static index. Values from the survey are scanned data: they are
// only ever put into the page with textContent, never as HTML.
(function () {
  "use strict";

  var STATUS = ["secure", "insecure", "bogus", "indeterminate", "pass", "fail", "ready",
    "at_risk", "botched"];

  // Tables --------------------------------------------------------------------------------------

  function cellKey(row, index, numeric) {
    var cell = row.cells[index];
    var raw = cell ? (cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent) : "";
    if (!numeric) return raw;
    var value = parseFloat(raw);
    return isNaN(value) ? null : value;
  }

  function sortBy(table, index, th) {
    var numeric = th.getAttribute("data-kind") === "num";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.filter.call(body.rows, function (r) { return !r.classList.contains("empty"); });
    var keyed = rows.map(function (row, position) {
      return {row: row, key: cellKey(row, index, numeric), position: position};
    });
    keyed.sort(function (a, b) {
      // Empty cells go last in both directions; ties keep their order.
      var empty = function (k) { return k === null || k === ""; };
      if (empty(a.key) || empty(b.key)) {
        if (empty(a.key) && empty(b.key)) return a.position - b.position;
        return empty(a.key) ? 1 : -1;
      }
      var order = numeric ? a.key - b.key : a.key.localeCompare(b.key, "en", {numeric: true});
      if (!ascending) order = -order;
      return order || a.position - b.position;
    });
    keyed.forEach(function (k) { body.appendChild(k.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) { cell.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  function sortable(table) {
    if (!table.tHead || table.getAttribute("data-sortable-ready")) return;
    table.setAttribute("data-sortable-ready", "1");
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.tabIndex = 0;
      th.title = "sort by " + th.textContent;
      th.addEventListener("click", function () { sortBy(table, index, th); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, index, th); }
      });
    });
  }

  // Charts --------------------------------------------------------------------------------------

  function drawCharts() {
    var targets = document.querySelectorAll(".vega[data-spec]");
    Array.prototype.forEach.call(targets, function (target) {
      var source = document.getElementById(target.getAttribute("data-spec"));
      if (!window.vegaEmbed) {
        target.textContent = "The chart script (assets/vega-bundle.js) is missing: the chart cannot be drawn.";
        target.className = "notice missing";
        return;
      }
      var spec = JSON.parse(source.textContent);
      window.vegaEmbed(target, spec, {renderer: "svg", actions: false}).then(function () {
        target.setAttribute("data-drawn", "1");
      }).catch(function (error) {
        target.textContent = "The chart could not be drawn: " + error;
        target.className = "notice missing";
      });
    });
  }

  // Explore -------------------------------------------------------------------------------------

  function fnv1a(text) {
    var bytes = new TextEncoder().encode(text);
    var value = 0x811c9dc5;
    for (var i = 0; i < bytes.length; i++) {
      value = Math.imul(value ^ bytes[i], 0x01000193) >>> 0;
    }
    return value >>> 0;
  }

  function canonical(text) {
    // Names are stored in presentation form, lower case (ASCII only: escapes stay as typed).
    var name = text.trim().replace(/[A-Z]/g, function (c) { return c.toLowerCase(); });
    if (name && name.charAt(name.length - 1) !== ".") name += ".";
    return name;
  }

  var explore = {info: null, shards: {}, waiting: {}};

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function words(value) {
    if (value === null || value === undefined) return "";
    return Array.isArray(value) ? value.join(", ") : String(value);
  }

  function status(value, field) {
    var span = el("span", words(value), "status");
    if (STATUS.indexOf(value) >= 0) span.classList.add("status-" + value);
    if (field) span.setAttribute("data-field", field);
    return span;
  }

  function table(id, caption, columns, rows) {
    var t = el("table", null, "sortable");
    t.id = id;
    t.appendChild(el("caption", caption));
    var head = t.createTHead().insertRow();
    columns.forEach(function (c) {
      var th = el("th", c[1]);
      th.scope = "col";
      th.setAttribute("data-kind", c[2] === "num" ? "num" : "text");
      if (c[2] === "num") th.className = "num";
      head.appendChild(th);
    });
    var body = t.createTBody();
    rows.forEach(function (r) {
      var tr = body.insertRow();
      columns.forEach(function (c) {
        var td = tr.insertCell();
        var v = r[c[0]];
        td.setAttribute("data-sort", words(v));
        if (c[2] === "num") { td.className = "num"; td.textContent = v === null || v === undefined ? "–" : Number(v).toLocaleString("en"); }
        else if (c[2] === "status") td.appendChild(status(v));
        else td.textContent = words(v);
      });
    });
    if (!rows.length) {
      var tr = body.insertRow();
      tr.className = "empty";
      var td = tr.insertCell();
      td.colSpan = columns.length;
      td.textContent = "none";
    }
    sortable(t);
    return t;
  }

  function show(name, entry) {
    var out = document.getElementById("explore-result");
    out.textContent = "";
    if (!entry) {
      var info = explore.info || {};
      out.appendChild(el("p", name + " is not in the survey's index" +
        (info.first_day ? " (" + info.names + " names seen from " + info.first_day + " to " + info.last_day + ")." : "."),
        "notice missing"));
      out.setAttribute("data-found", "0");
      return;
    }
    var latest = entry.latest;
    out.setAttribute("data-found", "1");
    var title = el("h2", null, "name");
    title.appendChild(el("span", latest.name, "name"));
    title.setAttribute("data-field", "name");
    out.appendChild(title);
    if (explore.info && latest.date !== explore.info.last_day) {
      out.appendChild(el("p", "Not a candidate on " + explore.info.last_day + ": last seen " + latest.date + ".", "notice"));
    }
    var facts = el("dl", null, "facts");
    [["day", latest.date, "date"], ["DNSSEC (MX answer)", latest.dnssec, "dnssec", true],
     ["reasons", words(latest.reasons), "reasons"], ["signed (DS)", latest.signed ? "yes" : "no", "signed"],
     ["DANE", latest.dane, "dane", true], ["DANE reasons", words(latest.dane_reasons), "dane_reasons"],
     ["rollover", latest.rollover, "rollover", true], ["rollover reasons", words(latest.rollover_reasons), "rollover_reasons"],
     ["MX", words(latest.mx), "mx"], ["sources", words(latest.sources), "sources"]].forEach(function (f) {
      facts.appendChild(el("dt", f[0]));
      var dd = el("dd");
      if (f[3]) dd.appendChild(status(f[1], f[2]));
      else { dd.textContent = f[1] === null || f[1] === undefined || f[1] === "" ? "–" : String(f[1]); dd.setAttribute("data-field", f[2]); }
      facts.appendChild(dd);
    });
    out.appendChild(facts);
    var hosts = entry.hosts.map(function (h) {
      return {host: h.host, provider: h.provider, dnssec: h.dnssec, tlsa: words(h.tlsa),
        dane: h.dane, reasons: words((h.reasons || []).concat(h.dane_reasons || [])),
        rollover: h.rollover, addresses: (h.addresses || []).map(function (a) {
          return a.address + ": " + a.dane + (a.dane_reasons && a.dane_reasons.length ? " (" + a.dane_reasons.join(", ") + ")" : "");
        }).join("; ")};
    });
    out.appendChild(table("explore-hosts", "MX hosts on " + latest.date, [
      ["host", "MX host"], ["provider", "provider"], ["dnssec", "TLSA answer", "status"],
      ["tlsa", "TLSA records"], ["dane", "DANE", "status"], ["reasons", "reasons"],
      ["rollover", "rollover", "status"], ["addresses", "per-address DANE"]], hosts));
    out.appendChild(table("explore-history", "History", [
      ["date", "day"], ["signed", "signed"], ["dnssec", "DNSSEC", "status"], ["reasons", "reasons"],
      ["dane", "DANE", "status"], ["rollover", "rollover", "status"]],
      entry.history.map(function (h) { return Object.assign({}, h, {signed: h.signed ? "yes" : "no"}); })));
  }

  function lookup(text) {
    var name = canonical(text);
    if (!name) return;
    var out = document.getElementById("explore-result");
    if (!explore.info) { out.textContent = "The explore index (explore/manifest.js) is missing."; return; }
    var n = fnv1a(name) % explore.info.shards;
    var done = function () { show(name, (explore.shards[n] || {})[name]); };
    if (explore.shards[n]) { done(); return; }
    (explore.waiting[n] = explore.waiting[n] || []).push(done);
    if (explore.waiting[n].length > 1) return;
    var script = document.createElement("script");
    script.src = "explore/shard-" + n + ".js";
    script.onerror = function () {
      out.textContent = "The explore index file explore/shard-" + n + ".js could not be loaded.";
      delete explore.waiting[n];
    };
    document.body.appendChild(script);
  }

  window.surveyExplore = {
    manifest: function (info) { explore.info = info; },
    shard: function (n, entries) {
      explore.shards[n] = entries;
      (explore.waiting[n] || []).forEach(function (f) { f(); });
      delete explore.waiting[n];
    },
  };

  function setupExplore() {
    var form = document.getElementById("explore-form");
    if (!form) return;
    var input = document.getElementById("q");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var name = canonical(input.value);
      if (!name) return;
      history.replaceState(null, "", "#q=" + encodeURIComponent(name));
      lookup(name);
    });
    var fromHash = function () {
      var match = /^#q=(.*)$/.exec(location.hash);
      if (!match) return;
      var name;
      try { name = decodeURIComponent(match[1]); } catch (e) { return; }
      input.value = name;
      lookup(name);
    };
    window.addEventListener("hashchange", fromHash);
    fromHash();
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), sortable);
    drawCharts();
    setupExplore();  // explore/manifest.js, deferred after this script, has run by now
  });
})();

/* dc-overview web UI: live dashboard tiles, live job progress, small helpers.
   Plain JavaScript, no build step; every value is put in the page as text. */
(function () {
  "use strict";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function num(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits || 0);
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (r.status === 401) { window.location.reload(); throw new Error("logged out"); }
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }

  /* -- dashboard ------------------------------------------------------------------ */

  function tile(t, serverUrl) {
    var a = el("a", "tile tile-" + t.health);
    a.href = serverUrl + t.id;
    a.dataset.name = t.name;
    var head = el("span", "tile-head");
    head.appendChild(el("span", "tile-name", t.name));
    head.appendChild(el("span", "tile-dot"));
    a.appendChild(head);
    a.appendChild(el("span", "tile-addr", t.address));
    var metrics = el("span", "tile-metrics");
    var gpus = el("span", null, (t.gpu_count === null ? "–" : t.gpu_count) + " GPU"); gpus.title = "GPUs";
    var temp = el("span", null, num(t.max_gpu_temp) + " °C"); temp.title = "Hottest GPU";
    var util = el("span", null, num(t.avg_gpu_util) + " %"); util.title = "Average GPU utilisation";
    metrics.appendChild(gpus); metrics.appendChild(temp); metrics.appendChild(util);
    a.appendChild(metrics);
    a.appendChild(el("span", "tile-reason", t.reason));
    return a;
  }

  function dashboard(root) {
    var url = root.dataset.overviewUrl, serverUrl = root.dataset.serverUrl;
    var every = (parseInt(root.dataset.refresh, 10) || 10) * 1000;
    var updated = root.querySelector("[data-updated]");
    var lastOk = Date.now(), failing = false, timer = null;

    function set(name, value) {
      var node = root.querySelector('[data-stat="' + name + '"]');
      if (node) node.textContent = value;
    }

    function apply(o) {
      ["servers_total", "servers_online", "servers_offline", "servers_unknown", "gpus_total"].forEach(function (k) { set(k, o[k]); });
      var exporters = root.querySelector('[data-stat="exporters"]');
      if (exporters) {
        if (o.exporters_up === null) {
          exporters.textContent = "–";
          exporters.appendChild(el("small", null, " " + o.exporters_installed + " installed"));
        } else {
          exporters.textContent = o.exporters_up;
          exporters.appendChild(el("small", null, " of " + (o.exporters_up + o.exporters_down) + " scraped"));
        }
      }
      var problem = root.querySelector("[data-prometheus-problem]");
      if (problem) {
        problem.hidden = o.prometheus.reachable;
        problem.querySelector("[data-prometheus-error]").textContent = o.prometheus.error || "";
      }
      var grid = root.querySelector("[data-tiles]");
      var fresh = document.createDocumentFragment();
      o.tiles.forEach(function (t) { fresh.appendChild(tile(t, serverUrl)); });
      grid.replaceChildren(fresh);
      var empty = root.querySelector("[data-tiles-empty]");
      if (empty) empty.hidden = o.tiles.length > 0;
    }

    function tick() {
      var seconds = Math.round((Date.now() - lastOk) / 1000);
      updated.textContent = (failing ? "refresh failed, retrying · " : "") + "updated " + (seconds < 2 ? "just now" : seconds + " s ago");
    }

    function refresh() {
      if (document.hidden) return;
      getJSON(url).then(function (o) { apply(o); lastOk = Date.now(); failing = false; tick(); })
        .catch(function () { failing = true; tick(); });
    }

    timer = setInterval(refresh, every);
    setInterval(tick, 1000);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
    return timer;
  }

  /* -- job progress -------------------------------------------------------------- */

  function job(root) {
    var stateNode = root.querySelector("[data-job-state]");
    var body = root.querySelector("[data-job-hosts]");
    var bar = root.querySelector("[data-job-bar]");
    var counts = root.querySelector("[data-job-counts]");
    var errorBox = root.querySelector("[data-job-error]");
    var source = null, polling = null;

    function apply(j) {
      stateNode.textContent = j.headline;
      stateNode.className = "badge job-" + j.state + (j.failed_hosts ? " job-partial" : "");
      var rows = document.createDocumentFragment();
      j.hosts.forEach(function (h) {
        var tr = el("tr");
        tr.appendChild(el("td", null, h.host));
        var kind = h.ok === true ? "good" : h.ok === false ? "bad" : "pending";
        var td = el("td"); td.appendChild(el("span", "badge host-" + kind, h.state.replace(/_/g, " "))); tr.appendChild(td);
        tr.appendChild(el("td", null, h.message));
        tr.appendChild(el("td", "muted", (h.updated_at || "").substring(11, 19)));
        rows.appendChild(tr);
      });
      body.replaceChildren(rows);
      bar.max = j.total || 1;
      bar.value = j.finished ? bar.max : j.done;
      counts.textContent = j.done + " of " + j.total + " done · " +
        Object.keys(j.counts).map(function (k) { return j.counts[k] + " " + k.replace(/_/g, " "); }).join(" · ");
      errorBox.hidden = !j.error;
      errorBox.textContent = j.error || "";
      if (j.finished) stop();
    }

    function stop() {
      if (source) { source.close(); source = null; }
      if (polling) { clearInterval(polling); polling = null; }
    }

    function poll() {
      polling = setInterval(function () { getJSON(root.dataset.jobUrl).then(apply).catch(function () {}); }, 1500);
    }

    if (window.EventSource) {
      source = new EventSource(root.dataset.eventsUrl, { withCredentials: true });
      source.addEventListener("progress", function (e) { apply(JSON.parse(e.data)); });
      source.onerror = function () { if (source) { source.close(); source = null; poll(); } };
    } else {
      poll();
    }
  }

  /* -- small helpers ------------------------------------------------------------------ */

  function helpers() {
    var all = document.querySelector("[data-check-all]");
    if (all) {
      all.addEventListener("change", function () {
        document.querySelectorAll('input[name="server"]').forEach(function (box) { box.checked = all.checked; });
      });
    }
    document.querySelectorAll("[data-copy]").forEach(function (node) {
      node.addEventListener("click", function () {
        var done = function () { node.classList.add("copied"); setTimeout(function () { node.classList.remove("copied"); }, 800); };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(node.textContent.trim()).then(done, function () {});
        } else {
          var range = document.createRange(); range.selectNodeContents(node);
          var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range); done();
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var d = document.getElementById("dashboard");
    if (d) dashboard(d);
    var j = document.getElementById("job");
    if (j) job(j);
    helpers();
  });
})();

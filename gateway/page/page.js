/* page.js -- panelgate's status page: asks for the admin key, polls /_gateway/status every 2 s
 * and draws it. Every string from the gateway goes into the DOM through textContent or
 * setAttribute, never as markup. The key lives in sessionStorage (this tab) only. */
(function () {
  "use strict";

  var STORE_KEY = "panelgate.adminKey";
  var POLL_MS = 2000;
  var TIMEOUT_MS = 5000;
  var SVG = "http://www.w3.org/2000/svg";
  var DASH = "\u2013";

  var st = {
    key: null,
    gen: 0,         /* bumped on sign-in and forget: answers of an older poll are dropped */
    timer: 0,
    prev: null,     /* {at: ms, req: {name: requests}} of the last good poll, for requests/s */
    lastOk: 0,      /* Date.now() of the last good poll */
    countdowns: []  /* [{el, until}] cool-downs counted down between polls */
  };

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) {
      e.setAttribute(k, String(attrs[k]));
    });
    return e;
  }

  function isNum(v) {
    return typeof v === "number" && isFinite(v);
  }

  function str(v) {
    return typeof v === "string" && v !== "" ? v : DASH;
  }

  function int(v) {
    return isNum(v) ? Math.round(v).toLocaleString("en-US") : DASH;
  }

  function ms(v) {
    return isNum(v) ? Math.round(v) + " ms" : DASH;
  }

  /* a count that fits a narrow cell: 9,999 then 10.0k, 100k, 1.2M */
  function compact(v) {
    if (!isNum(v)) return DASH;
    var a = Math.abs(v);
    if (a < 10000) return int(v);
    if (a < 1e6) return (v / 1e3).toFixed(a < 1e5 ? 1 : 0) + "k";
    return (v / 1e6).toFixed(a < 1e7 ? 2 : 1) + "M";
  }

  /* a latency that fits a narrow cell: 230 ms, 1.9 s */
  function shortMs(v) {
    if (!isNum(v)) return DASH;
    return v < 1000 ? Math.round(v) + " ms" : (v / 1000).toFixed(v < 10000 ? 1 : 0) + " s";
  }

  /* seconds as "42s", "5m 12s", "3h 04m", "2d 3h" */
  function dur(s) {
    if (!isNum(s) || s < 0) return DASH;
    s = Math.floor(s);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + pad(s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + pad(Math.floor(s / 60) % 60) + "m";
    return Math.floor(s / 86400) + "d " + (Math.floor(s / 3600) % 24) + "h";
  }

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function clear(e) {
    while (e.firstChild) e.removeChild(e.firstChild);
  }

  /* ---- key and polling ---- */

  function showError(msg) {
    var e = $("error");
    e.textContent = msg;
    e.hidden = !msg;
  }

  function setLive(text, cls) {
    var e = $("live");
    e.textContent = text;
    e.className = "live " + (cls || "");
    e.hidden = !text;
  }

  function stop() {
    st.gen++;
    clearTimeout(st.timer);
    st.timer = 0;
  }

  /* Forget every number shown: after a refused key nothing of an earlier answer stays. */
  function wipe() {
    clear($("upstreams"));
    clear(document.querySelector("#consumers tbody"));
    $("dash").hidden = true;
    $("summary").hidden = true;
    $("version").textContent = "";
    $("up-count").textContent = "";
    st.prev = null;
    st.lastOk = 0;
    st.countdowns = [];
    document.body.classList.remove("stale");
  }

  function askKey() {
    $("login").hidden = false;
    $("forget").hidden = true;
    setLive("");
    $("key").focus();
  }

  function start(key) {
    stop();
    st.key = key;
    $("login").hidden = true;
    $("forget").hidden = false;
    setLive("connecting\u2026", "wait");
    poll(st.gen);
  }

  function forget() {
    stop();
    st.key = null;
    try {
      sessionStorage.removeItem(STORE_KEY);
    } catch (e) { /* storage disabled: nothing kept */ }
    wipe();
    showError("");
    askKey();
  }

  function refused(status, msg) {
    forget();
    showError("Key refused (HTTP " + status + ")" + (msg ? ": " + msg : "") +
      ". Enter an admin key.");
  }

  function schedule(gen) {
    if (gen !== st.gen) return;
    st.timer = setTimeout(function () { poll(gen); }, POLL_MS);
  }

  function poll(gen) {
    var ctl = typeof AbortController === "function" ? new AbortController() : null;
    var to = setTimeout(function () { if (ctl) ctl.abort(); }, TIMEOUT_MS);
    fetch("status", {
      headers: { "Authorization": "Bearer " + st.key, "Accept": "application/json" },
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
      signal: ctl ? ctl.signal : undefined
    }).then(function (res) {
      return res.text().then(function (body) {
        return { status: res.status, body: body };
      });
    }).then(function (r) {
      clearTimeout(to);
      if (gen !== st.gen) return;
      answered(gen, r.status, r.body);
    }, function (err) {
      clearTimeout(to);
      if (gen !== st.gen) return;
      unreachable(err && err.name === "AbortError" ? "no answer within 5 s" : "network error");
      schedule(gen);
    });
  }

  function errMessage(body) {
    try {
      var e = JSON.parse(body).error;
      return e && typeof e.message === "string" ? e.message : "";
    } catch (x) {
      return "";
    }
  }

  function answered(gen, status, body) {
    if (status === 401 || status === 403) {
      refused(status, errMessage(body));
      return;
    }
    var data = null;
    if (status === 200) {
      try {
        data = JSON.parse(body);
      } catch (x) { /* below */ }
    }
    if (!data || typeof data !== "object") {
      var m = errMessage(body);
      unreachable(status === 200 ? "the answer is not JSON" :
        "HTTP " + status + (m ? ": " + m : ""));
    } else {
      showError("");
      document.body.classList.remove("stale");
      render(data);
    }
    schedule(gen);
  }

  /* The gateway did not answer usefully: say so, keep the last numbers (marked stale), retry. */
  function unreachable(why) {
    showError("Cannot read /_gateway/status (" + why + "); retrying every " +
      POLL_MS / 1000 + " s.");
    setLive("retrying", "bad");
    if (st.lastOk) document.body.classList.add("stale");
  }

  /* ---- rendering ---- */

  function render(d) {
    var now = performance.now();
    var rates = {};
    var req = {};
    var ups = Array.isArray(d.upstreams) ? d.upstreams : [];
    ups.forEach(function (u) {
      if (!u || typeof u.name !== "string") return;
      req[u.name] = u.requests;
      var p = st.prev && st.prev.req[u.name];
      var secs = st.prev ? (now - st.prev.at) / 1000 : 0;
      if (isNum(p) && isNum(u.requests) && secs > 0.2 && u.requests >= p)
        rates[u.name] = (u.requests - p) / secs;
    });
    st.prev = { at: now, req: req };
    st.lastOk = Date.now();

    renderSummary(d);
    st.countdowns = [];
    var grid = $("upstreams");
    clear(grid);
    ups.forEach(function (u) {
      if (u && typeof u.name === "string") grid.appendChild(card(u, rates[u.name], now));
    });
    $("up-count").textContent = "(" + grid.childNodes.length + ")";
    renderConsumers(d.consumers);
    $("dash").hidden = false;
    tick();
  }

  function renderSummary(d) {
    $("version").textContent = typeof d.version === "string" && d.version ?
      "v" + d.version : "";
    var started = $("started");
    clear(started);
    var t = typeof d.started === "string" ? Date.parse(d.started) : NaN;
    if (isNaN(t)) {
      started.textContent = str(d.started);
    } else {
      started.textContent = localTime(new Date(t));
      started.appendChild(el("span", "muted", " (up " + dur((Date.now() - t) / 1000) + ")"));
    }
    started.title = str(d.started);
    $("workers").textContent = int(d.workers);
    $("connections").textContent = int(d.connections);
    var store = $("store");
    clear(store);
    var s = d.store && typeof d.store === "object" ? d.store : {};
    store.appendChild(document.createTextNode(str(s.type) + " "));
    store.appendChild(pill(str(s.state), s.state === "ok" ? "good" : s.state ? "bad" : ""));
    $("summary").hidden = false;
  }

  function localTime(d) {
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function pill(text, kind) {
    return el("span", "pill " + (kind || ""), text);
  }

  var SESSION_KIND = { valid: "good", logging_in: "info", backoff: "warn", none: "" };

  function card(u, rate, now) {
    var c = el("article", "card upstream");
    c.setAttribute("data-upstream", u.name);

    var head = el("div", "card-head");
    head.appendChild(el("h3", "name", u.name));
    if (typeof u.client === "string") {
      var cl = pill(u.client, "client");
      cl.title = "HTTP client: " + (u.client === "h1" ? "panelgate's own HTTP/1.1" : u.client);
      head.appendChild(cl);
    }
    head.appendChild(cooldown(u, now));
    c.appendChild(head);

    var kpis = el("div", "kpis");
    var lat = u.latency_ms && typeof u.latency_ms === "object" ? u.latency_ms : {};
    kpis.appendChild(kpi("req/s", isNum(rate) ? rate.toFixed(rate < 10 ? 1 : 0) : DASH, "rate"));
    kpis.appendChild(kpi("requests", compact(u.requests), "requests", int(u.requests)));
    kpis.appendChild(kpi("p50", shortMs(lat.p50), "p50", ms(lat.p50) + ", last 5 minutes"));
    kpis.appendChild(kpi("p99", shortMs(lat.p99), "p99", ms(lat.p99) + ", last 5 minutes"));
    kpis.appendChild(kpi("queued", compact(u.queued), "queued", int(u.queued)));
    kpis.appendChild(kpi("in flight", compact(u.inflight), "inflight", int(u.inflight)));
    c.appendChild(kpis);

    var rows = el("div", "rows");
    row(rows, "session", sessionBlock(u.session));
    row(rows, "limits", buckets(u.buckets));
    row(rows, "errors", errors(u.errors));
    row(rows, "p99", sparkline(u.history));
    c.appendChild(rows);
    return c;
  }

  function row(rows, label, value) {
    rows.appendChild(el("div", "label", label));
    rows.appendChild(value);
  }

  function kpi(label, value, cls, exact) {
    var k = el("div", "kpi " + cls);
    if (exact) k.title = label + ": " + exact;
    var m = /^(\S+) (ms|s)$/.exec(value); /* a smaller unit: "1,234 ms" must fit a sixth */
    var v = el("div", "kpi-v", m ? m[1] : value);
    if (m) v.appendChild(el("span", "unit", " " + m[2]));
    k.appendChild(v);
    k.appendChild(el("div", "kpi-l", label));
    return k;
  }

  /* The panel asked for a pause (its 429 and Retry-After): counted down here between polls. */
  function cooldown(u, now) {
    var e = el("span", "cooldown");
    if (!isNum(u.cooldown_s)) {
      e.textContent = "cool-down " + DASH;
      e.setAttribute("data-left", "");
      return e;
    }
    st.countdowns.push({ el: e, until: now + u.cooldown_s * 1000 });
    return e;
  }

  /* Count cool-downs down between polls, and age the "updated" line. */
  function tick() {
    var now = performance.now();
    st.countdowns.forEach(function (cd) {
      var left = Math.max(0, Math.ceil((cd.until - now) / 1000));
      cd.el.setAttribute("data-left", String(left));
      cd.el.textContent = left > 0 ? "cool-down " + dur(left) : "no cool-down";
      cd.el.classList.toggle("active", left > 0);
    });
    if (st.lastOk && !document.body.classList.contains("stale")) {
      var ago = Math.round((Date.now() - st.lastOk) / 1000);
      setLive(ago < 1 ? "live" : "live \u00b7 " + ago + "s ago", "good");
    }
  }

  function sessionBlock(s) {
    var b = el("div", "session");
    if (!s || typeof s !== "object") {
      b.appendChild(el("span", "session-state muted", "no session"));
      return b;
    }
    var stEl = pill(str(s.state), SESSION_KIND[s.state] || "");
    stEl.classList.add("session-state");
    if (typeof s.state === "string") stEl.setAttribute("data-state", s.state);
    b.appendChild(stEl);
    if (s.state === "valid" || (isNum(s.age_s) && s.age_s > 0)) {
      b.appendChild(fact("age", dur(s.age_s)));
      b.appendChild(fact("expires in", dur(s.expires_in_s)));
    }
    b.appendChild(fact("logins", int(s.logins)));
    var f = fact("failed", int(s.login_failures));
    if (isNum(s.login_failures) && s.login_failures > 0) f.classList.add("bad");
    b.appendChild(f);
    if (isNum(s.backoff_s) && s.backoff_s > 0) {
      var bo = fact("backoff", dur(s.backoff_s));
      bo.classList.add("warn");
      b.appendChild(bo);
    }
    return b;
  }

  function fact(label, value) {
    var f = el("span", "fact");
    f.appendChild(el("span", "muted", label + " "));
    f.appendChild(el("b", null, value));
    return f;
  }

  function buckets(list) {
    var box = el("div", "buckets");
    if (!Array.isArray(list) || list.length === 0) {
      box.appendChild(el("span", "muted", Array.isArray(list) ? "none" : DASH));
      return box;
    }
    list.forEach(function (bk) {
      if (!bk || typeof bk !== "object") return;
      var row = el("div", "bucket");
      row.setAttribute("data-scope", str(bk.scope));
      row.appendChild(el("span", "scope", str(bk.scope)));
      var bar = el("div", "bar");
      var fill = el("div", "fill");
      var frac = isNum(bk.limit) && bk.limit > 0 && isNum(bk.remaining) ?
        Math.max(0, Math.min(1, bk.remaining / bk.limit)) : 0;
      fill.style.width = (frac * 100).toFixed(1) + "%";
      fill.classList.add(frac < 0.1 ? "bad" : frac < 0.3 ? "warn" : "good");
      bar.appendChild(fill);
      bar.setAttribute("role", "meter");
      bar.setAttribute("aria-valuemin", "0");
      bar.setAttribute("aria-valuemax", isNum(bk.limit) ? String(bk.limit) : "0");
      bar.setAttribute("aria-valuenow", isNum(bk.remaining) ? String(bk.remaining) : "0");
      row.appendChild(bar);
      var count = el("span", "count", int(bk.remaining) + "/" + int(bk.limit));
      if (frac < 0.1) count.classList.add("bad");
      row.appendChild(count);
      row.appendChild(el("span", "reset muted",
        isNum(bk.reset_s) ? "reset " + dur(bk.reset_s) : DASH));
      box.appendChild(row);
    });
    return box;
  }

  function errors(map) {
    var box = el("div", "errors");
    if (!map || typeof map !== "object") {
      box.appendChild(el("span", "muted", DASH));
      return box;
    }
    var codes = Object.keys(map).filter(function (k) { return isNum(map[k]) && map[k] > 0; });
    if (codes.length === 0) {
      box.appendChild(el("span", "muted", "none"));
      return box;
    }
    codes.sort(function (a, b) { return map[b] - map[a]; });
    codes.forEach(function (k) {
      var chip = el("span", "chip");
      chip.setAttribute("data-code", k);
      chip.appendChild(el("span", null, k + " "));
      chip.appendChild(el("b", null, int(map[k])));
      box.appendChild(chip);
    });
    return box;
  }

  /* p99 per minute as an inline SVG line (no markup strings: createElementNS). */
  function sparkline(hist) {
    var box = el("div", "spark");
    var pts = Array.isArray(hist) ? hist.filter(function (h) {
      return h && isNum(h.p99_ms);
    }) : [];
    if (pts.length === 0) {
      box.appendChild(el("span", "muted", DASH));
      return box;
    }
    var W = 300, H = 36, max = 1;
    pts.forEach(function (h) { if (h.p99_ms > max) max = h.p99_ms; });
    var ys = pts.map(function (h) { return (H - 2 - (h.p99_ms / max) * (H - 4)).toFixed(1); });
    var line = pts.length === 1 ? ["0," + ys[0], W + "," + ys[0]] : ys.map(function (y, i) {
      return (i * W / (pts.length - 1)).toFixed(1) + "," + y;
    });
    var g = svg("svg", {
      viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", "class": "spark-svg",
      role: "img", "aria-label": "p99 latency per minute, last " + pts.length + " minutes"
    });
    g.appendChild(svg("polygon", { points: "0," + H + " " + line.join(" ") + " " + W + "," + H,
      "class": "area" }));
    g.appendChild(svg("polyline", { points: line.join(" "), "class": "line",
      "vector-effect": "non-scaling-stroke" }));
    var t = svg("title", {});
    t.textContent = pts.map(function (h) {
      return str(h.t) + "  p99 " + ms(h.p99_ms) + "  requests " + int(h.requests) +
        "  errors " + int(h.errors);
    }).join("\n");
    g.appendChild(t);
    box.appendChild(g);
    box.appendChild(el("div", "spark-l muted",
      pts.length + (pts.length === 1 ? " minute" : " minutes") + " \u00b7 max " + ms(max)));
    return box;
  }

  function renderConsumers(list) {
    var body = document.querySelector("#consumers tbody");
    clear(body);
    if (!Array.isArray(list) || list.length === 0) {
      var tr = el("tr");
      var td = el("td", "muted", Array.isArray(list) ? "no consumers" : DASH);
      td.colSpan = 3;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    list.forEach(function (c) {
      if (!c || typeof c !== "object") return;
      var tr = el("tr");
      tr.setAttribute("data-consumer", str(c.name));
      tr.appendChild(el("td", null, str(c.name)));
      tr.appendChild(el("td", "num", int(c.requests)));
      var rl = el("td", "num", int(c.rate_limited));
      if (isNum(c.rate_limited) && c.rate_limited > 0) rl.classList.add("warn-t");
      tr.appendChild(rl);
      body.appendChild(tr);
    });
  }

  /* ---- wiring ---- */

  function init() {
    $("login").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var k = $("key").value.trim();
      $("key").value = "";
      if (!k) return;
      showError("");
      wipe();
      try {
        sessionStorage.setItem(STORE_KEY, k);
      } catch (e) { /* storage disabled: the key lives in this page only */ }
      start(k);
    });
    $("forget").addEventListener("click", forget);
    setInterval(tick, 500);
    var k = null;
    try {
      k = sessionStorage.getItem(STORE_KEY);
    } catch (e) { /* storage disabled */ }
    if (k) start(k);
    else askKey();
  }

  init();
})();

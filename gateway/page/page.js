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
    $("version").textContent = DASH;
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
    $("version").textContent = isNum(d.version) || typeof d.version === "string" ?
      "v" + d.version : DASH;
    var started = $("started");
    clear(started);
    var t = typeof d.started === "string" ? Date.parse(d.started) : NaN;
    if (isNaN(t)) {
      started.textContent = str(d.started);
    } else {
      started.textContent = new Date(t).toLocaleString();
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

  function pill(text, kind) {
    return el("span", "pill " + (kind || ""), text);
  }

  var SESSION_KIND = { valid: "good", logging_in: "info", backoff: "warn", none: "" };

  function card(u, rate, now) {
    var c = el("article", "card upstream");
    c.setAttribute("data-upstream", u.name);

    var head = el("div", "card-head");
    head.appendChild(el("h3", "name", u.name));
    if (typeof u.client === "string") head.appendChild(pill(u.client, "client"));
    head.appendChild(cooldown(u, now));
    c.appendChild(head);

    c.appendChild(sessionBlock(u));

    var kpis = el("div", "kpis");
    kpis.appendChild(kpi("req/s", isNum(rate) ? rate.toFixed(rate < 10 ? 1 : 0) : DASH, "rate"));
    kpis.appendChild(kpi("requests", int(u.requests), "requests"));
    var lat = u.latency_ms && typeof u.latency_ms === "object" ? u.latency_ms : {};
    kpis.appendChild(kpi("p50", ms(lat.p50), "p50"));
    kpis.appendChild(kpi("p99", ms(lat.p99), "p99"));
    kpis.appendChild(kpi("queued", int(u.queued), "queued"));
    kpis.appendChild(kpi("in flight", int(u.inflight), "inflight"));
    c.appendChild(kpis);

    c.appendChild(buckets(u.buckets));
    c.appendChild(errors(u.errors));
    c.appendChild(sparkline(u.history));
    return c;
  }

  function kpi(label, value, cls) {
    var k = el("div", "kpi " + cls);
    k.appendChild(el("div", "kpi-v", value));
    k.appendChild(el("div", "kpi-l", label));
    return k;
  }

  /* cooldown_s (SPEC 6); older gateways sent cooldown_ms */
  function cooldownSeconds(u) {
    if (isNum(u.cooldown_s)) return u.cooldown_s;
    if (isNum(u.cooldown_ms)) return u.cooldown_ms / 1000;
    return null;
  }

  function cooldown(u, now) {
    var e = el("span", "pill cooldown");
    var s = cooldownSeconds(u);
    if (s === null) {
      e.textContent = "cool-down " + DASH;
      e.setAttribute("data-left", "");
      return e;
    }
    st.countdowns.push({ el: e, until: now + s * 1000 });
    return e;
  }

  /* Count cool-downs down between polls, and age the "updated" line. */
  function tick() {
    var now = performance.now();
    st.countdowns.forEach(function (cd) {
      var left = Math.max(0, Math.ceil((cd.until - now) / 1000));
      cd.el.setAttribute("data-left", String(left));
      cd.el.textContent = left > 0 ? "cool-down " + dur(left) : "no cool-down";
      cd.el.classList.toggle("warn", left > 0);
    });
    if (st.lastOk && !document.body.classList.contains("stale")) {
      var ago = Math.round((Date.now() - st.lastOk) / 1000);
      setLive(ago < 1 ? "live" : "live \u00b7 " + ago + "s ago", "good");
    }
  }

  function sessionBlock(u) {
    var b = el("div", "session");
    var s = u.session && typeof u.session === "object" ? u.session : null;
    var stEl = pill(s ? str(s.state) : DASH, s ? SESSION_KIND[s.state] || "" : "");
    stEl.classList.add("session-state");
    if (s && typeof s.state === "string") stEl.setAttribute("data-state", s.state);
    b.appendChild(el("span", "label", "session"));
    b.appendChild(stEl);
    var facts = el("span", "facts");
    if (s) {
      facts.appendChild(fact("age", dur(s.age_s)));
      facts.appendChild(fact("expires in", dur(s.expires_in_s)));
      facts.appendChild(fact("logins", int(s.logins)));
      var f = fact("failed", int(s.login_failures));
      if (isNum(s.login_failures) && s.login_failures > 0) f.classList.add("bad");
      facts.appendChild(f);
      var bo = fact("backoff", isNum(s.backoff_s) && s.backoff_s > 0 ? dur(s.backoff_s) : "none");
      if (isNum(s.backoff_s) && s.backoff_s > 0) bo.classList.add("warn");
      facts.appendChild(bo);
    } else {
      facts.appendChild(fact("logins", int(u.logins)));
      if (!("logins" in u)) facts.appendChild(el("span", "muted", "no session"));
    }
    b.appendChild(facts);
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
      box.appendChild(el("div", "muted small", "no rate limit"));
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
      row.appendChild(el("span", "count", int(bk.remaining) + "/" + int(bk.limit)));
      row.appendChild(el("span", "reset muted",
        isNum(bk.reset_s) ? "reset " + dur(bk.reset_s) : DASH));
      box.appendChild(row);
    });
    return box;
  }

  function errors(map) {
    var box = el("div", "errors");
    box.appendChild(el("span", "label", "errors"));
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

  /* p99 of the last minutes as an inline SVG line (no markup strings: createElementNS). */
  function sparkline(hist) {
    var box = el("div", "spark");
    var pts = Array.isArray(hist) ? hist.filter(function (h) {
      return h && isNum(h.p99_ms);
    }) : [];
    var label = el("div", "spark-l");
    label.appendChild(el("span", "label", "p99 history"));
    box.appendChild(label);
    if (pts.length === 0) {
      label.appendChild(el("span", "muted small", DASH));
      return box;
    }
    var W = 300, H = 40, max = 1;
    pts.forEach(function (h) { if (h.p99_ms > max) max = h.p99_ms; });
    label.appendChild(el("span", "muted small", "max " + ms(max) + " \u00b7 " + pts.length + " min"));
    var g = svg("svg", {
      viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", "class": "spark-svg",
      role: "img", "aria-label": "p99 latency, last " + pts.length + " minutes"
    });
    var step = pts.length > 1 ? W / (pts.length - 1) : 0;
    var line = pts.map(function (h, i) {
      var x = pts.length > 1 ? i * step : W / 2;
      var y = H - 2 - (h.p99_ms / max) * (H - 4);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    if (pts.length === 1) line.unshift("0," + line[0].split(",")[1]);
    g.appendChild(svg("polygon", { points: "0," + H + " " + line.join(" ") + " " + W + "," + H,
      "class": "area" }));
    g.appendChild(svg("polyline", { points: line.join(" "), "class": "line",
      "vector-effect": "non-scaling-stroke" }));
    var t = svg("title", {});
    t.textContent = pts.map(function (h) {
      return str(h.t) + "  p99 " + ms(h.p99_ms) + "  req " + int(h.requests) +
        "  err " + int(h.errors);
    }).join("\n");
    g.appendChild(t);
    box.appendChild(g);
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

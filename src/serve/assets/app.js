// cutover serve: the dashboard's script. Vanilla JS, no library, nothing
// loaded from anywhere but this server. It polls the JSON endpoints every
// few seconds and updates the page in place; the view (sorting, filters,
// pages, the user shown) lives in the URL fragment, so a link reopens it:
// #sort=copied:desc&q=text&state=failed&page=2&user=a@b&iq=text&istate=failed&ikind=mail&iuser=a@b&isort=date:desc&ipage=1
"use strict";

(function () {
  const POLL_MS = 3000;
  const PAGE = 50;
  const SVG = "http://www.w3.org/2000/svg"; // a namespace name, not a URL that is fetched
  const $ = (id) => document.getElementById(id);

  // --- the view, from and to the fragment -----------------------------------
  const view = {};
  function readHash() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ""));
    const sort = (p.get("sort") || "email:asc").split(":");
    const isort = (p.get("isort") || "user:asc").split(":");
    Object.assign(view, {
      sort: sort[0], dir: sort[1] === "desc" ? "desc" : "asc",
      q: p.get("q") || "", state: p.get("state") || "", page: Math.max(1, parseInt(p.get("page") || "1", 10) || 1),
      user: p.get("user") || "",
      isort: isort[0], idir: isort[1] === "desc" ? "desc" : "asc",
      iq: p.get("iq") || "", istate: p.get("istate") || "", ikind: p.get("ikind") || "", iuser: p.get("iuser") || "",
      ipage: Math.max(1, parseInt(p.get("ipage") || "1", 10) || 1),
    });
  }
  function writeHash() {
    const p = new URLSearchParams();
    if (view.sort !== "email" || view.dir !== "asc") p.set("sort", view.sort + ":" + view.dir);
    for (const k of ["q", "state", "user", "iq", "istate", "ikind", "iuser"]) if (view[k]) p.set(k, view[k]);
    if (view.page > 1) p.set("page", view.page);
    if (view.isort !== "user" || view.idir !== "asc") p.set("isort", view.isort + ":" + view.idir);
    if (view.ipage > 1) p.set("ipage", view.ipage);
    const h = p.toString();
    history.replaceState(null, "", h ? "#" + h : location.pathname);
  }

  // --- formatting ---------------------------------------------------------------
  const num = (n) => (n == null ? "–" : Number(n).toLocaleString("en"));
  function bytes(n) {
    if (n == null) return "–";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0, v = Number(n);
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : v) + " " + u[i];
  }
  const rate = (bps) => (bps == null ? "–" : bytes(bps) + "/s");
  const time = (t) => (t ? t.replace("T", " ").replace("Z", " UTC") : "–");
  const pct = (f) => (f * 100).toFixed(f > 0 && f < 0.1 ? 1 : 0) + "%";
  function duration(s) {
    if (s == null) return "–";
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }
  const stateClass = (s) => "s-" + (["done", "failed", "partial", "syncing", "interrupted", "pending"].includes(s) ? s : "other");

  // --- DOM helpers (text only: nothing from the DB becomes markup) ---------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null) continue;
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }
  const td = (text, cls, title) => el("td", { class: cls, title: title, text: text == null ? "" : String(text) });
  // What a mailbox waits on while a run goes ("target budget"), or "".
  const WAIT_WORDS = {
    throttled: "server push-back", target_budget: "target budget", in_flight_bytes: "in-flight bytes",
    source_slot: "source slot", source_rate: "source rate", login_rate: "login rate",
  };
  function waitingOn(u) {
    return u.waiting_on ? (WAIT_WORDS[u.waiting_on] || u.waiting_on) : "";
  }
  function badge(state) { return el("span", { class: "state " + stateClass(state), text: state }); }
  function fillBody(table, rows, empty) {
    const body = $(table).tBodies[0];
    if (!rows.length && empty) {
      const cols = $(table).tHead.rows[0].cells.length;
      rows = [el("tr", {}, el("td", { colspan: cols, class: "muted", text: empty }))];
    }
    body.replaceChildren(...rows);
  }

  async function getJSON(path) {
    const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
    if (!r.ok) {
      let msg = r.status + " " + r.statusText;
      try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    return r.json();
  }

  // --- summary ------------------------------------------------------------------
  function card(label, value, sub, cls) {
    return el("div", { class: "card " + (cls || "") }, el("div", { class: "label", text: label }),
      el("div", { class: "value", text: value }), el("div", { class: "sub", text: sub || "" }));
  }
  function renderSummary(s) {
    const t = s.totals;
    $("meta").textContent = "State DB " + s.state_db + " · read " + time(s.refreshed) + " (" + s.refresh_ms +
      " ms) · cutover " + s.version + " · read-only, refreshes every few seconds";
    const err = $("error");
    err.hidden = !s.error;
    err.textContent = s.error || "";
    const sch = $("schedule");
    sch.hidden = !s.schedule;
    sch.textContent = s.schedule ? "Schedule: " + s.schedule.text : "";
    const handled = t.copied + t.skipped;
    const frac = t.source_messages ? Math.min(1, handled / t.source_messages) : (t.users && t.done === t.users ? 1 : 0);
    $("overall-bar").style.width = (frac * 100).toFixed(1) + "%";
    $("overall-text").textContent = pct(frac) + " of the source's messages dealt with: " + num(t.copied) +
      " copied and " + num(t.skipped) + " skipped of " + num(t.source_messages) + " (" + bytes(t.bytes_copied) +
      " of " + bytes(t.source_bytes) + ") · " + num(t.done) + " of " + num(t.users) + " users done, " +
      num(t.running) + " syncing now";
    const cards = [
      card("Users done", num(t.done) + " / " + num(t.users), num(t.not_done) + " failed, partial or interrupted", t.not_done ? "warn" : ""),
      card("Syncing now", num(t.running), "users with a sync under way"),
      card("Messages copied", num(t.copied), "of " + num(t.source_messages) + " in the source"),
      card("Data copied", bytes(t.bytes_copied), "of " + bytes(t.source_bytes)),
      card("Skipped", num(t.skipped), "left out by the rules (see the items below)"),
      card("Failed", num(t.failed), "messages; a rerun retries them", t.failed ? "bad" : ""),
      card("Deleted on source", num(t.deleted_on_source), "copies kept in the target"),
      card("Throttled", num(t.throttled), num(t.throttled_users) + " users told to slow down", t.throttled ? "warn" : ""),
    ];
    const waiting = Object.entries(t.waiting || {});
    if (waiting.length) cards.push(card("Waiting", num(waiting.reduce((a, [, n]) => a + n, 0)),
      waiting.map(([on, n]) => num(n) + " on " + (WAIT_WORDS[on] || on)).join(", ")));
    if (t.contacts) cards.push(card("Contacts written", num(t.contacts.written), num(t.contacts.failed) + " failed, " + num(t.contacts.with_notes) + " with notes", t.contacts.failed ? "bad" : ""));
    if (t.events) cards.push(card("Events written", num(t.events.written), num(t.events.failed) + " failed, " + num(t.events.with_notes) + " with notes", t.events.failed ? "bad" : ""));
    $("cards").replaceChildren(...cards);

    // Users by state.
    const states = Object.entries(s.states || {});
    const total = states.reduce((a, [, n]) => a + n, 0) || 1;
    $("states").replaceChildren(...states.map(([st, n]) => {
      const d = el("div", { class: stateClass(st), title: st + ": " + n });
      d.style.width = (n / total * 100) + "%";
      return d;
    }));
    $("states-legend").replaceChildren(...states.map(([st, n]) =>
      el("span", {}, el("i", { class: "sw " + stateClass(st) }), st + " " + num(n))));

    renderThroughput(s.throughput);

    $("throttle-text").textContent = t.throttled
      ? num(t.throttled) + " times, " + num(t.throttled_users) + " users. As the state DB records it: push-back that reached a user's retries " +
        "(IMAP throttling answers, refused connections, Graph 429s its client gave up retrying); the Graph client's own short waits are not recorded."
      : "No server has told cutover to slow down (as far as the state DB records: push-back that reached a user's retries).";
    fillBody("throttles", (s.throttles || []).map((x) => el("tr", {}, td(x.email), td(num(x.count), "n"), td(time(x.last)), td(x.reason || "", "wrap"))));

    fillBody("passes", (s.passes || []).map((p) => el("tr", {},
      td(p.pass, "n"), td(num(p.users), "n"), td(num(p.done), "n"), td(time(p.started)), td(p.finished ? time(p.finished) : "not finished"),
      td(num(p.copied), "n"), td(bytes(p.bytes), "n"), td(num(p.moved), "n"), td(num(p.flags_updated), "n"),
      td(num(p.renamed), "n"), td(num(p.deleted_kept), "n"), td(num(p.deleted_mirrored), "n"))), "No sync yet.");
    $("footer").textContent = "cutover " + s.version + " · this page only reads; it never changes the migration.";
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    return e;
  }
  function renderThroughput(tp) {
    const W = 640, H = 200, L = 48, R = 8, T = 10, B = 24;
    const chart = $("throughput");
    const now = Math.floor(Date.now() / 60000) * 60;
    const all = ((tp && tp.points) || []).filter((p) => p[0] >= now - 6 * 3600);
    // From the first copy (a few minutes before), at least half an hour, at most 6 hours.
    const from = Math.max(now - 6 * 3600, Math.min(now - 1800, (all.length ? all[0][0] : now) - 300));
    const pts = all.filter((p) => p[0] >= from);
    const max = Math.max(1, ...pts.map((p) => p[1]));
    const step = Math.pow(10, Math.floor(Math.log10(max)));
    const top = Math.ceil(max / step) * step;
    const x = (t) => L + (t - from) / (now + 60 - from) * (W - L - R);
    const y = (v) => H - B - v / top * (H - T - B);
    const parts = [];
    for (let i = 0; i <= 4; i++) {
      const v = top * i / 4;
      parts.push(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      parts.push(svg("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end" }, num(Math.round(v))));
    }
    for (let h = 0; h <= 6; h++) {
      const t = from + Math.round(h * (now + 60 - from) / 6);
      const d = new Date(t * 1000);
      parts.push(svg("text", { x: x(t), y: H - 6, "text-anchor": h === 0 ? "start" : h === 6 ? "end" : "middle" },
        String(d.getUTCHours()).padStart(2, "0") + ":" + String(d.getUTCMinutes()).padStart(2, "0")));
    }
    const bw = Math.max(1, (W - L - R) / ((now + 60 - from) / 60) - 0.3);
    for (const [t, n, b] of pts) {
      const r = svg("rect", { class: "col", x: x(t), y: y(n), width: bw, height: Math.max(0.5, H - B - y(n)) });
      r.append(svg("title", {}, time(new Date(t * 1000).toISOString().slice(0, 19) + "Z") + ": " + num(n) + " messages, " + bytes(b)));
      parts.push(r);
    }
    parts.push(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    chart.replaceChildren(...parts);
    const last = pts.filter((p) => p[0] >= now - 300);
    const perMin = last.reduce((a, p) => a + p[1], 0) / 5;
    $("rate-now").textContent = "(UTC; last 5 minutes: " + perMin.toFixed(1) + " messages/min)";
  }

  // --- users ----------------------------------------------------------------------
  function markSort(table, key, dir) {
    for (const th of $(table).tHead.rows[0].cells) {
      if (th.dataset.sort === key) th.setAttribute("aria-sort", dir === "desc" ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    }
  }
  function progressCell(u) {
    const bar = el("div", { class: "bar" }, el("div", { class: "fill" }));
    bar.firstChild.style.width = (u.progress * 100).toFixed(1) + "%";
    return el("td", { class: "progress-cell" }, el("div", { class: "progress" }, bar, el("span", { text: pct(u.progress) })));
  }
  function renderUsers(d) {
    const rows = d.rows.map((u) => {
      const skippedWhy = Object.entries(u.skipped_by_reason || {}).map(([r, n]) => n + " " + r).join(", ");
      const tr = el("tr", { "data-email": u.email, class: u.email === view.user ? "selected" : null },
        td(u.email), el("td", {}, badge(u.state)), td(waitingOn(u), null, u.waiting_since ? "since " + time(u.waiting_since) : null), progressCell(u),
        td(num(u.copied), "n"), td(num(u.source_messages), "n"), td(num(u.skipped), "n", skippedWhy || null),
        td(num(u.failed), "n"), td(bytes(u.bytes_copied), "n"), td(rate(u.last_rate), "n"),
        td(num(u.throttled), "n", u.last_throttle ? "last " + time(u.last_throttle) + ": " + (u.last_throttle_reason || "") : null),
        td(num(u.syncs), "n"), td(u.running_since ? "running since " + time(u.running_since) : time(u.last_sync)),
        td(u.last_error || "", "err"));
      tr.addEventListener("click", async () => {
        view.user = u.email; writeHash(); markSelected();
        await refreshDetail();
        $("detail").scrollIntoView({ block: "start" });
      });
      return tr;
    });
    fillBody("users", rows, "No user matches.");
    const pages = Math.max(1, Math.ceil(d.matched / PAGE));
    $("users-count").textContent = num(d.matched) + " of " + num(d.total) + " users";
    $("users-page").textContent = "page " + view.page + " of " + pages;
    $("users-prev").disabled = view.page <= 1;
    $("users-next").disabled = view.page >= pages;
    markSort("users", view.sort, view.dir);
  }
  function markSelected() {
    for (const tr of $("users").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.email === view.user);
  }

  // --- one user -----------------------------------------------------------------
  async function refreshDetail() {
    const box = $("detail");
    if (!view.user) { box.hidden = true; return; }
    let d;
    try { d = await getJSON("/api/user?email=" + encodeURIComponent(view.user)); } catch (e) {
      box.hidden = false; $("detail-title").textContent = view.user + ": " + e.message; return;
    }
    const u = d.user;
    box.hidden = false;
    $("detail-title").textContent = u.email;
    const facts = [
      ["State", u.state + (u.running_since ? ", syncing since " + time(u.running_since) : "")],
      ["Waiting on", u.waiting_on ? waitingOn(u) + (u.waiting_since ? " since " + time(u.waiting_since) : "") : "–"],
      ["Progress", pct(u.progress) + ": " + num(u.copied) + " copied, " + num(u.skipped) + " skipped, " + num(u.failed) + " failed of " + num(u.source_messages) + " in " + num(u.folders) + " folders"],
      ["Size", bytes(u.bytes_copied) + " copied of " + bytes(u.source_bytes)],
      ["Skipped because", Object.entries(u.skipped_by_reason || {}).map(([r, n]) => n + " " + r).join(", ") || "–"],
      ["Deleted on source", num(u.deleted_on_source) + " copies kept in the target"],
      ["Last sync", time(u.last_sync)],
      ["Last error", u.last_error || "–"],
      ["Throttled", num(u.throttled) + (u.last_throttle ? " (last " + time(u.last_throttle) + ": " + (u.last_throttle_reason || "") + ")" : "")],
    ];
    for (const [k, f] of [["Contacts", u.contacts], ["Events", u.events]]) {
      if (f) facts.push([k, num(f.written) + " written (" + num(f.with_notes) + " with notes), " + num(f.failed) + " failed, " +
        num(f.deleted_on_source_kept) + " deleted on source and kept, " + num(f.deleted) + " deleted"]);
    }
    $("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    fillBody("syncs", d.syncs.slice().reverse().map((s) => el("tr", {},
      td(time(s.started)), td(s.finished ? time(s.finished) : "running or stopped"), td(duration(s.duration_seconds), "n"),
      el("td", {}, badge(s.state)), td(num(s.copied), "n"), td(bytes(s.bytes), "n"), td(rate(s.bytes_per_second), "n"),
      td(num(s.moved), "n"), td(num(s.flags_updated), "n"), td(num(s.renamed), "n"), td(num(s.deleted_kept), "n"),
      td(num(s.deleted_mirrored), "n"), td(s.error || "", "err"))), "No sync yet.");
  }

  // --- items ----------------------------------------------------------------------
  function renderItems(d) {
    fillBody("items", d.rows.map((i) => el("tr", {},
      td(i.email), td(i.kind), td(i.place, "wrap"), td(i.item), td(i.subject || "", "wrap"), td(i.state),
      td(i.reason, "err"), td(i.size == null ? "" : bytes(i.size), "n"), td(time(i.date)))), "Nothing skipped or failed matches.");
    const pages = Math.max(1, Math.ceil(d.matched / PAGE));
    $("items-count").textContent = num(d.matched) + " items";
    $("items-page").textContent = "page " + view.ipage + " of " + pages;
    $("items-prev").disabled = view.ipage <= 1;
    $("items-next").disabled = view.ipage >= pages;
    markSort("items", view.isort, view.idir);
  }

  // --- polling ----------------------------------------------------------------------
  function usersPath() {
    const p = new URLSearchParams({ sort: view.sort, dir: view.dir, offset: (view.page - 1) * PAGE, limit: PAGE });
    if (view.q) p.set("q", view.q);
    if (view.state) p.set("state", view.state);
    return "/api/users?" + p;
  }
  function itemsPath() {
    const p = new URLSearchParams({ sort: view.isort, dir: view.idir, offset: (view.ipage - 1) * PAGE, limit: PAGE });
    if (view.iq) p.set("q", view.iq);
    if (view.istate) p.set("state", view.istate);
    if (view.ikind) p.set("kind", view.ikind);
    if (view.iuser) p.set("user", view.iuser);
    return "/api/items?" + p;
  }
  let timer = null, busy = false, again = false, itemsKey = "", itemsAt = 0;
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    clearTimeout(timer);
    try {
      const [s, u] = await Promise.all([getJSON("/api/summary"), getJSON(usersPath())]);
      renderSummary(s);
      renderUsers(u);
      // The item search reads the DB: again when the view changed, else every 15 s.
      const key = itemsPath();
      if (key !== itemsKey || Date.now() - itemsAt > 15000) {
        renderItems(await getJSON(key));
        itemsKey = key;
        itemsAt = Date.now();
      }
      if (view.user) await refreshDetail();
      document.documentElement.setAttribute("data-dashboard", "ready");
    } catch (e) {
      const err = $("error");
      err.hidden = false;
      err.textContent = "Cannot reach the dashboard's server (" + e.message + "); retrying.";
    } finally {
      busy = false;
      if (again) { again = false; setTimeout(refresh, 0); }
      timer = setTimeout(refresh, POLL_MS);
    }
  }

  // --- controls ---------------------------------------------------------------------
  function syncControls() {
    $("user-q").value = view.q; $("user-state").value = view.state;
    $("item-q").value = view.iq; $("item-state").value = view.istate; $("item-kind").value = view.ikind; $("item-user").value = view.iuser;
  }
  function debounce(f, ms) { let t; return () => { clearTimeout(t); t = setTimeout(f, ms); }; }
  function onChange(id, key, pageKey) {
    const input = $(id);
    const apply = () => { view[key] = input.value.trim(); view[pageKey] = 1; writeHash(); refresh(); };
    input.addEventListener(input.tagName === "SELECT" ? "change" : "input", input.tagName === "SELECT" ? apply : debounce(apply, 300));
  }
  function sortable(table, key, dirKey, pageKey) {
    for (const th of $(table).tHead.rows[0].cells) {
      if (!th.dataset.sort) continue;
      th.tabIndex = 0;
      const go = () => {
        if (view[key] === th.dataset.sort) view[dirKey] = view[dirKey] === "asc" ? "desc" : "asc";
        else { view[key] = th.dataset.sort; view[dirKey] = th.classList.contains("n") ? "desc" : "asc"; }
        view[pageKey] = 1; writeHash(); refresh();
      };
      th.addEventListener("click", go);
      th.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
    }
  }
  function start() {
    readHash();
    syncControls();
    onChange("user-q", "q", "page"); onChange("user-state", "state", "page");
    onChange("item-q", "iq", "ipage"); onChange("item-state", "istate", "ipage"); onChange("item-kind", "ikind", "ipage"); onChange("item-user", "iuser", "ipage");
    sortable("users", "sort", "dir", "page");
    sortable("items", "isort", "idir", "ipage");
    $("users-prev").addEventListener("click", () => { view.page = Math.max(1, view.page - 1); writeHash(); refresh(); });
    $("users-next").addEventListener("click", () => { view.page += 1; writeHash(); refresh(); });
    $("items-prev").addEventListener("click", () => { view.ipage = Math.max(1, view.ipage - 1); writeHash(); refresh(); });
    $("items-next").addEventListener("click", () => { view.ipage += 1; writeHash(); refresh(); });
    $("detail-items").addEventListener("click", () => {
      view.iuser = view.user; view.ipage = 1; writeHash(); syncControls(); refresh();
      $("items-section").scrollIntoView({ block: "start" });
    });
    $("detail-close").addEventListener("click", () => { view.user = ""; writeHash(); $("detail").hidden = true; markSelected(); });
    window.addEventListener("hashchange", () => { readHash(); syncControls(); refresh(); });
    refresh();
  }
  document.addEventListener("DOMContentLoaded", start);
})();

// Markets: instruments by underlying and expiry (calls | strike | puts with bid/ask, mark, IV and
// greeks), each expiry's smile, and each underlying's ATM term structure. Bid/ask are live
// from the stream's book.<name> channels, marks, IV and greeks from its `marks` channel (every
// instrument, after each block that moved them); a gap or a reconnect refetches /v1/instruments.
import { get } from "./api.js";
import { Book } from "./book.js";
import { atmVol, smileChart, smileData, termChart, termData } from "./charts.js";
import { date, el, fail, pct, scaled, usd } from "./fmt.js";

const COLS = ["bid", "ask", "mark", "IV", "Δ", "Γ", "vega", "θ"];

function sideCells(ins, book) {
  if (!ins) return COLS.map(() => el("td", {}, ""));
  const b = book?.best("bids"), a = book?.best("asks");
  const g = ins.greeks || {};
  return [
    el("td", { class: "bid", "data-testid": "bid" }, b ? usd(b[0]) : "–"),
    el("td", { class: "ask", "data-testid": "ask" }, a ? usd(a[0]) : "–"),
    el("td", { "data-testid": "mark" }, usd(ins.mark)),
    el("td", { "data-testid": "iv" }, pct(ins.iv)),
    el("td", {}, scaled(g.delta, 3)),
    el("td", {}, scaled(g.gamma, 5)),
    el("td", {}, usd(g.vega)),
    el("td", {}, usd(g.theta)),
  ];
}

// instruments -> [{underlying, spot, expiries: [{expiry, strikes: [[strike, {call, put}]]}]}]
function group(instruments) {
  const by = new Map();
  for (const i of instruments) {
    if (!by.has(i.underlying)) by.set(i.underlying, { underlying: i.underlying, spot: null, expiries: new Map() });
    const u = by.get(i.underlying);
    if (i.spot !== null && i.spot !== undefined) u.spot = Number(i.spot) / 1e6;
    if (!u.expiries.has(i.expiry)) u.expiries.set(i.expiry, new Map());
    const s = u.expiries.get(i.expiry);
    if (!s.has(i.strike)) s.set(i.strike, {});
    s.get(i.strike)[i.type] = i;
  }
  return [...by.values()].sort((a, b) => a.underlying.localeCompare(b.underlying)).map((u) => ({
    ...u,
    expiries: [...u.expiries.entries()].sort((a, b) => a[0] - b[0]).map(([expiry, s]) => ({
      expiry, strikes: [...s.entries()].sort((a, b) => Number(a[0]) - Number(b[0])) })),
  }));
}

const ivOf = (i) => (i && i.iv !== null && i.iv !== undefined ? i.iv / 1e6 : NaN);

function smilePoints(strikes) {
  return strikes.map(([strike, { call, put }]) => ({ strike: Number(strike) / 1e6, iv: Number.isFinite(ivOf(call)) ? ivOf(call) : ivOf(put) }));
}

const smileRows = (strikes) => strikes.map(([strike, { call, put }]) => ({ strike: Number(strike) / 1e6, call: ivOf(call), put: ivOf(put) }));

export function markets(root, stream) {
  const books = new Map(); // name -> Book
  const unsubs = [];
  const charts = new Map(); // "term <underlying>" | "smile <underlying> <expiry>" -> Chart, kept across renders
  let instruments = [], error = null, pending = false, closed = false, used = new Set();

  function chart(key, make, [data, note]) { // this render's figure for `key`
    if (!charts.has(key)) charts.set(key, make());
    const c = charts.get(key);
    c.set(data, note);
    used.add(key);
    return c.el;
  }

  function render() {
    if (closed) return; // a render scheduled before the view was left
    pending = false;
    used = new Set();
    const out = [];
    const nowS = Date.now() / 1000;
    for (const u of group(instruments)) {
      const term = u.expiries.map((e) => ({
        days: (e.expiry - nowS) / 86400, iv: atmVol(smilePoints(e.strikes), u.spot) }));
      out.push(el("section", { class: "underlying", "data-underlying": u.underlying },
        el("h2", {}, `${u.underlying}`, u.spot === null ? "" : ` · spot ${u.spot.toFixed(2)} USD`),
        el("div", { class: "charts" }, chart("term " + u.underlying, termChart, termData(term)))));
      for (const e of u.expiries) {
        const tbl = el("table", { class: "chain" },
          el("thead", {},
            el("tr", {}, el("th", { colspan: 8 }, "calls"), el("th", {}, ""), el("th", { colspan: 8 }, "puts")),
            el("tr", {}, COLS.map((h) => el("th", {}, h)), el("th", {}, "strike"), COLS.map((h) => el("th", {}, h)))),
          el("tbody", {}, e.strikes.map(([strike, { call, put }]) => el("tr", { "data-strike": strike },
            sideCells(call, call && books.get(call.name)),
            el("td", { class: "strike" }, usd(strike, 0), " ",
              call ? el("a", { href: "#/instrument/" + encodeURIComponent(call.name), title: call.name, "data-instrument": call.name }, "C") : "", " ",
              put ? el("a", { href: "#/instrument/" + encodeURIComponent(put.name), title: put.name, "data-instrument": put.name }, "P") : ""),
            sideCells(put, put && books.get(put.name))))));
        out.push(el("h3", {}, `${u.underlying} · expiry ${date(e.expiry)}`),
          el("div", { class: "expiry" }, tbl,
            chart(`smile ${u.underlying} ${e.expiry}`, smileChart, smileData(smileRows(e.strikes)))));
      }
    }
    if (out.length === 0 && !error) out.push(el("p", { class: "note" }, "No instruments listed."));
    root.replaceChildren(el("section", { id: "markets" }, el("h1", {}, "Markets"),
      el("p", { class: "note" }, "Bid/ask, marks, IV and greeks live from the stream; " +
        "ATM vol: IV interpolated at spot; vega per vol point, θ per day (USDC)."),
      error ? fail(error) : "", ...out));
    for (const [key, c] of charts) if (!used.has(key)) { c.destroy(); charts.delete(key); }
  }

  function schedule() {
    if (pending) return;
    pending = true;
    setTimeout(render, 50); // coalesce a burst of book deltas into one render
  }

  function take(list) {
    instruments = list;
    for (const i of instruments) {
      if (books.has(i.name)) continue;
      const b = new Book(i.name, 20, schedule);
      books.set(i.name, b);
      unsubs.push(b.attach(stream));
      b.resync();
    }
    schedule();
  }

  async function load() {
    try {
      take((await get("/instruments")).instruments);
      error = null;
    } catch (e) {
      error = e;
      schedule();
    }
  }

  root.replaceChildren(el("section", { id: "markets" }, el("h1", {}, "Markets"), el("p", {}, "Loading…")));
  load();
  unsubs.push(stream.subscribe("marks", (d) => { error = null; take(d.instruments); }, load));
  return () => { unsubs.forEach((u) => u()); pending = closed = true; charts.forEach((c) => c.destroy()); };
}

// The page's router and views (hash routes): #/markets, #/instrument/<name>, #/chain,
// #/account[/<address>]. Each view renders into <main> and returns its cleanup (unsubscribes).
import { get, Stream } from "./api.js";
import { Book } from "./book.js";
import { smile } from "./smile.js";
import { amount, date, el, pct, scaled, short, time, usd } from "./fmt.js";

const view = document.getElementById("view");
const stream = new Stream((live) => {
  const c = document.getElementById("conn");
  c.textContent = live ? "live" : "offline";
  c.classList.toggle("live", live);
});
stream.on("control", (d) => { if (d.op === "error") console.warn("stream:", d.error?.code, d.error?.message); });
stream.on("heartbeat", (d) => { document.getElementById("head").textContent = `block ${d.head}`; });

function blockLink(n) { return el("a", { href: "#/chain/" + n }, String(n)); }
function fail(e) { return el("p", { class: "error" }, `error: ${e.message}`); }

// -- Markets: instruments by underlying and expiry, calls | strike | puts, and the smile --------

const GREEKS = ["bid", "ask", "mark", "IV", "Δ", "Γ", "vega", "θ"];

function sideCells(ins, book) {
  if (!ins) return GREEKS.map(() => el("td", {}, ""));
  const b = book?.best("bids"), a = book?.best("asks");
  const g = ins.greeks || {};
  return [
    el("td", { class: "bid" }, b ? usd(b[0]) : "–"),
    el("td", { class: "ask" }, a ? usd(a[0]) : "–"),
    el("td", {}, usd(ins.mark)),
    el("td", {}, pct(ins.iv)),
    el("td", {}, scaled(g.delta, 3)),
    el("td", {}, scaled(g.gamma, 5)),
    el("td", {}, usd(g.vega)),
    el("td", {}, usd(g.theta)),
  ];
}

function markets() {
  const books = new Map(); // name -> Book
  const unsubs = [];
  let instruments = [];
  let timer = null;

  function render() {
    const groups = new Map(); // "ETH 1700000000" -> {underlying, expiry, strikes: Map(strike -> {call, put})}
    for (const i of instruments) {
      const key = `${i.underlying} ${i.expiry}`;
      if (!groups.has(key)) groups.set(key, { underlying: i.underlying, expiry: i.expiry, strikes: new Map() });
      const s = groups.get(key).strikes;
      if (!s.has(i.strike)) s.set(i.strike, {});
      s.get(i.strike)[i.type] = i;
    }
    const out = [];
    for (const g of [...groups.values()].sort((a, b) => a.underlying.localeCompare(b.underlying) || a.expiry - b.expiry)) {
      const rows = [...g.strikes.entries()].sort((a, b) => Number(a[0]) - Number(b[0]));
      const table = el("table", {},
        el("thead", {},
          el("tr", {}, el("th", { colspan: 8 }, "calls"), el("th", {}, ""), el("th", { colspan: 8 }, "puts")),
          el("tr", {}, GREEKS.map((h) => el("th", {}, h)), el("th", {}, "strike"), GREEKS.map((h) => el("th", {}, h)))),
        el("tbody", {}, rows.map(([strike, { call, put }]) => el("tr", {},
          sideCells(call, call && books.get(call.name)),
          el("td", { class: "strike" }, usd(strike, 0), " ",
            call ? el("a", { href: "#/instrument/" + encodeURIComponent(call.name), title: call.name }, "C") : "", " ",
            put ? el("a", { href: "#/instrument/" + encodeURIComponent(put.name), title: put.name }, "P") : ""),
          sideCells(put, put && books.get(put.name))))));
      const pts = rows.map(([strike, { call, put }]) => {
        const i = call || put;
        return { strike: Number(strike) / 1e6, iv: i.iv === null ? NaN : i.iv / 1e6 };
      });
      out.push(el("h2", {}, `${g.underlying} · expiry ${date(g.expiry)}`),
        el("div", { class: "expiry" }, table, smile(pts)));
    }
    if (out.length === 0) out.push(el("p", { class: "note" }, "No instruments listed."));
    const spot = instruments.find((i) => i.spot !== null);
    view.replaceChildren(el("h1", {}, "Markets"),
      el("p", { class: "note" }, spot ? `spot ${usd(spot.spot)} USD · ` : "",
        "bid/ask live from the stream; marks, IV and greeks refresh every 5 s; vega per vol point, θ per day (USDC)"),
      ...out);
  }

  async function load() {
    try {
      instruments = (await get("/instruments")).instruments;
    } catch (e) {
      view.replaceChildren(fail(e));
      return;
    }
    for (const i of instruments) {
      if (books.has(i.name)) continue;
      const b = new Book(i.name, 20, render);
      books.set(i.name, b);
      unsubs.push(b.attach(stream));
      b.resync();
    }
    render();
  }

  load();
  timer = setInterval(load, 5000);
  return () => { clearInterval(timer); unsubs.forEach((u) => u()); };
}

// -- One instrument: both sides of its book and its recent trades, live -------------------------

function instrument(name) {
  const bookEl = el("div", {}), tradesEl = el("tbody", {}), infoEl = el("p", { class: "note" });
  let trades = [];

  const drawBook = (b) => {
    const side = (s, cls) => el("table", {},
      el("thead", {}, el("tr", {}, el("th", {}, s === "bids" ? "bid" : "ask"), el("th", {}, "amount"))),
      el("tbody", {}, b.levels(s).map(([p, a]) => el("tr", {}, el("td", { class: cls }, usd(p)), el("td", {}, amount(a))))));
    bookEl.replaceChildren(el("div", { class: "cols" }, side("bids", "bid"), side("asks", "ask")),
      el("p", { class: "note" }, `book sequence ${b.sequence}`));
  };
  const drawTrades = () => {
    tradesEl.replaceChildren(...trades.slice(0, 50).map((t) => el("tr", {},
      el("td", {}, time(t.timestamp)), el("td", { class: t.takerSide === "buy" ? "bid" : "ask" }, t.takerSide),
      el("td", {}, usd(t.price)), el("td", {}, amount(t.amount)))));
  };
  const loadTrades = async () => {
    try {
      trades = (await get(`/trades?instrument=${encodeURIComponent(name)}&limit=50`)).trades;
      drawTrades();
    } catch (e) { tradesEl.replaceChildren(el("tr", {}, el("td", {}, e.message))); }
  };

  view.replaceChildren(el("h1", {}, name), infoEl,
    el("div", { class: "cols" },
      el("section", {}, el("h2", {}, "Book"), bookEl),
      el("section", {}, el("h2", {}, "Recent trades"),
        el("table", {}, el("thead", {}, el("tr", {}, ["time", "taker", "price", "amount"].map((h) => el("th", {}, h)))), tradesEl))));

  get(`/instruments/${encodeURIComponent(name)}`).then((i) => {
    const g = i.greeks || {};
    infoEl.textContent = `${i.underlying} ${i.type} strike ${usd(i.strike, 0)} expiry ${date(i.expiry)} · mark ${usd(i.mark)} · IV ${pct(i.iv)} · Δ ${scaled(g.delta)} · tick ${usd(i.tickSize)}`;
  }, (e) => infoEl.replaceChildren(fail(e)));

  const book = new Book(name, 20, drawBook);
  const unsubs = [
    book.attach(stream),
    stream.subscribe("trades." + name, (t) => { trades.unshift(t); drawTrades(); }, loadTrades),
  ];
  book.resync();
  loadTrades();
  return () => unsubs.forEach((u) => u());
}

// -- The chain: latest blocks, their roots, tx counts and L1 batch status -------------------------

const SHOWN = 12;

function chain(focus) {
  const rows = new Map(); // number -> {block, status}
  const tbody = el("tbody", {});
  let timer = null;

  function draw() {
    const ns = [...rows.keys()].sort((a, b) => b - a);
    tbody.replaceChildren(...ns.map((n) => {
      const { block, status } = rows.get(n);
      const h = block.header;
      return el("tr", {},
        el("td", {}, blockLink(n)), el("td", {}, time(h.timestamp)), el("td", {}, String(block.txs.length)),
        el("td", { class: "mono left", title: h.hash }, short(h.hash)),
        el("td", { class: "mono left", title: h.stateRoot }, short(h.stateRoot)),
        el("td", { class: "mono left", title: h.withdrawalRoot }, short(h.withdrawalRoot)),
        el("td", { class: "left status-" + (status?.status || "sealed") },
          status ? status.status + (status.batch === null ? "" : ` (batch ${status.batch})`) : "…"));
    }));
  }

  async function addBlock(n) {
    try {
      const block = await get(`/blocks/${n}`);
      rows.set(n, { block, status: rows.get(n)?.status || null });
      const ns = [...rows.keys()].sort((a, b) => b - a);
      for (const old of ns.slice(SHOWN)) if (old !== focus) rows.delete(old);
      draw();
      await refreshStatus(n);
    } catch (e) { console.warn("block", n, e); }
  }

  async function refreshStatus(n) {
    try {
      const r = rows.get(n);
      if (r) { r.status = await get(`/blocks/${n}/status`); draw(); }
    } catch (e) { console.warn("status", n, e); }
  }

  async function load() {
    try {
      const latest = (await get("/blocks/latest")).header.number;
      const want = [];
      for (let n = latest; n >= 0 && n > latest - SHOWN; n--) want.push(n);
      if (focus !== undefined && focus <= latest) want.push(focus);
      await Promise.all(want.filter((n) => !rows.has(n)).map(addBlock));
    } catch (e) { view.append(fail(e)); }
  }

  view.replaceChildren(el("h1", {}, "Chain"),
    el("p", { class: "note" }, "Latest blocks, live from the stream. L1 status: sealed (not in a batch on L1 yet), posted (in an L1 batch), final (the batch is final on L1)."),
    el("table", {}, el("thead", {}, el("tr", {},
      ["block", "time", "txs", "hash", "state root", "withdrawal root", "L1"].map((h) => el("th", { class: "left" }, h)))), tbody));
  const unsub = stream.subscribe("blocks", (h) => addBlock(h.number), load);
  load();
  timer = setInterval(() => {
    for (const [n, r] of rows) if (r.status?.status !== "final") refreshStatus(n);
  }, 5000);
  return () => { clearInterval(timer); unsub(); };
}

// -- An account: its public figures (the account proof); private figures need sign-in ----------

function account(address) {
  const result = el("div", {});
  const input = el("input", { placeholder: "0x… account address", value: address || "", spellcheck: "false" });
  const form = el("form", { onsubmit: (ev) => { ev.preventDefault(); location.hash = "#/account/" + input.value.trim(); } },
    input, " ", el("button", { type: "submit" }, "Show"));
  view.replaceChildren(el("h1", {}, "Account"), form, result,
    el("p", { class: "note" }, "Public figures only (the account's leaf in the state tree). Signing in with a wallet, to see margin, positions and open orders (GET /v1/accounts/{address}, signed auth headers), is next."));
  if (address) {
    get(`/proofs/accounts/${encodeURIComponent(address)}`).then((p) => {
      result.replaceChildren(el("table", {}, el("tbody", {},
        [["account", p.account], ["collateral (USDC)", usd(p.collateral)], ["as of block", blockLink(p.block)],
         ["pending changes", String(p.pendingChanges)], ["state root", p.stateRoot], ["leaf index", String(p.index)],
         ["leaf", p.leaf], ["positions hash", p.positionsHash], ["proof length", String(p.proof.length)]]
          .map(([k, v]) => el("tr", {}, el("th", { class: "left" }, k), el("td", { class: "left mono" }, v))))));
    }, (e) => result.replaceChildren(fail(e)));
  }
  return () => {};
}

// -- router -------------------------------------------------------------------------------------

let cleanup = () => {};

function route() {
  cleanup();
  const [, page = "markets", arg] = (location.hash || "#/markets").split("/");
  const param = arg === undefined ? undefined : decodeURIComponent(arg);
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === "#/" + (page === "instrument" ? "markets" : page));
  }
  if (page === "instrument" && param) cleanup = instrument(param);
  else if (page === "chain") cleanup = chain(param === undefined ? undefined : Number(param));
  else if (page === "account") cleanup = account(param);
  else cleanup = markets();
}

window.addEventListener("hashchange", route);
route();

// One instrument: its book (live), the cumulative depth chart beside it, recent trades (live),
// mark, IV and greeks (live from the stream's `marks` channel).
import { get } from "./api.js";
import { Book } from "./book.js";
import { depthChart, depthData } from "./charts.js";
import { amount, date, el, fail, pct, scaled, table, time, usd } from "./fmt.js";

export function instrument(root, stream, name) {
  const bookEl = el("div", { id: "book" }), depth = depthChart();
  const tradesBody = el("tbody", {}), infoEl = el("div", { class: "info" });
  let trades = [];

  const drawBook = (b) => {
    const side = (s, cls) => table([s === "bids" ? "bid" : "ask", "amount", "total"], (() => {
      let total = 0;
      return b.levels(s).map(([p, a]) => {
        total += Number(a) / 1e6;
        return el("tr", { "data-price": p, "data-side": s === "bids" ? "bid" : "ask" },
          el("td", { class: cls }, usd(p)), el("td", {}, amount(a)), el("td", {}, String(+total.toFixed(6))));
      });
    })(), { class: "side-" + s });
    bookEl.replaceChildren(el("div", { class: "cols" }, side("bids", "bid"), side("asks", "ask")),
      el("p", { class: "note" }, `book sequence ${b.sequence}`));
    const num = (levels) => levels.map(([p, a]) => [Number(p) / 1e6, Number(a) / 1e6]);
    depth.set(...depthData(num(b.levels("bids")), num(b.levels("asks"))));
  };
  const drawTrades = () => {
    tradesBody.replaceChildren(...trades.slice(0, 50).map((t) => el("tr", { "data-trade": `${t.takerOrder}:${t.makerOrder}` },
      el("td", {}, time(t.timestamp)), el("td", { class: t.takerSide === "buy" ? "bid" : "ask" }, t.takerSide),
      el("td", {}, usd(t.price)), el("td", {}, amount(t.amount)))));
  };
  const loadTrades = async () => {
    try {
      trades = (await get(`/trades?instrument=${encodeURIComponent(name)}&limit=50`)).trades;
      drawTrades();
    } catch (e) { tradesBody.replaceChildren(el("tr", {}, el("td", {}, e.message))); }
  };
  const drawInfo = (i) => {
    const g = i.greeks || {};
    infoEl.replaceChildren(table(["underlying", "type", "strike", "expiry", "spot", "mark", "IV", "Δ", "Γ", "vega", "θ", "tick", "step"],
      [el("tr", {}, [i.underlying, i.type, usd(i.strike, 0), date(i.expiry), usd(i.spot), usd(i.mark), pct(i.iv),
        scaled(g.delta, 3), scaled(g.gamma, 5), usd(g.vega), usd(g.theta), usd(i.tickSize), amount(i.amountStep)]
        .map((v) => el("td", {}, v)))], { class: "instrument-info" }),
    el("p", {}, el("a", { href: "#/account" }, "Trade it"), " (sign in on the account page)"));
  };
  const loadInfo = async () => {
    try { drawInfo(await get(`/instruments/${encodeURIComponent(name)}`)); } catch (e) { infoEl.replaceChildren(fail(e)); }
  };
  const onMarks = (d) => { const i = d.instruments.find((x) => x.name === name); if (i) drawInfo(i); };

  root.replaceChildren(el("section", { id: "instrument", "data-instrument": name },
    el("p", {}, el("a", { href: "#/markets" }, "← Markets")),
    el("h1", {}, name), infoEl,
    el("div", { class: "cols" },
      el("section", {}, el("h2", {}, "Book"), bookEl),
      el("section", {}, el("h2", {}, "Depth"), depth.el),
      el("section", {}, el("h2", {}, "Recent trades"),
        table(["time", "taker", "price", "amount"], [], { id: "trades" })))));
  document.querySelector("#trades tbody").replaceWith(tradesBody);

  const book = new Book(name, 50, drawBook);
  const unsubs = [
    book.attach(stream),
    stream.subscribe("trades." + name, (t) => { trades.unshift(t); drawTrades(); }, loadTrades),
    stream.subscribe("marks", onMarks, loadInfo),
  ];
  book.resync();
  loadTrades();
  loadInfo();
  return () => { unsubs.forEach((u) => u()); depth.destroy(); };
}

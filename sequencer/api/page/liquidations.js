// Liquidations (docs/liquidation.md): open auctions with their current price, and the insurance
// fund (GET /v1/liquidations); refreshed on each event of the stream's liquidations channel,
// and polled (an auction's discount grows with time).
import { get } from "./api.js";
import { accountLink, amount, el, fail, table, usd } from "./fmt.js";

const POLL_MS = 5000;

export function liquidations(root, stream) {
  const fundEl = el("div", { id: "insurance-fund" }), auctionsEl = el("div", { id: "auctions" }), eventsEl = el("tbody", {});
  let closed = false, timer = null;
  const events = [];

  async function load() {
    try {
      const r = await get("/liquidations");
      if (closed) return;
      const f = r.insuranceFund;
      fundEl.replaceChildren(table(["address", "balance", "shortfall", "fee share", "enabled"],
        [el("tr", {}, el("td", { class: "left" }, accountLink(f.address)), el("td", { "data-testid": "fund-balance" }, usd(f.balance)),
          el("td", { class: f.shortfall !== "0" ? "ask" : "" }, usd(f.shortfall)), el("td", {}, `${(f.feeSharePpm / 1e4).toFixed(2)}%`),
          el("td", {}, f.enabled ? "yes" : "no"))]));
      auctionsEl.replaceChildren(r.auctions.length === 0 ? el("p", { class: "note", "data-testid": "no-auctions" }, "No open auctions.")
        : table(["account", "elapsed", "discount", "collateral", "equity", "IM", "MM", "price (full take)", "insolvent", "positions"],
          r.auctions.map((a) => el("tr", { "data-auction": a.account },
            el("td", { class: "left" }, accountLink(a.account)), el("td", {}, `${a.elapsed} s`), el("td", {}, `${(a.discountPpm / 1e4).toFixed(2)}%`),
            el("td", {}, usd(a.collateral)), el("td", {}, usd(a.equity)), el("td", {}, usd(a.initialMargin)), el("td", {}, usd(a.maintenanceMargin)),
            el("td", {}, usd(a.price)), el("td", {}, a.insolvent ? "yes" : "no"),
            el("td", { class: "left" }, a.positions.map((p) => `${p.instrument} ${amount(p.amount)}`).join(", "))))));
    } catch (e) { if (!closed) auctionsEl.replaceChildren(fail(e)); }
  }

  function onEvent(d) {
    events.unshift(d);
    events.length = Math.min(events.length, 20);
    eventsEl.replaceChildren(...events.map((e) => el("tr", {},
      el("td", { class: "left" }, e.type), el("td", { class: "left" }, e.account ? accountLink(e.account) : "–"),
      el("td", { class: "left" }, e.type === "shortfall" ? `shortfall ${usd(e.shortfall)} (+${usd(e.added)})`
        : e.type === "taken" ? `${(e.fractionPpm / 1e4).toFixed(1)}% by ${e.liquidator} for ${usd(e.price)}` : ""))));
    load();
  }

  root.replaceChildren(el("section", { id: "liquidations" }, el("h1", {}, "Liquidations"),
    el("h2", {}, "Insurance fund"), fundEl,
    el("h2", {}, "Open auctions"), auctionsEl,
    el("h2", {}, "Events (live)"), el("table", {}, eventsEl)));
  const unsub = stream.subscribe("liquidations", onEvent, load);
  load();
  timer = setInterval(load, POLL_MS);
  return () => { closed = true; clearInterval(timer); unsub(); };
}

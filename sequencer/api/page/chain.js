// The chain: latest blocks (live from the stream's blocks channel) with roots, transactions and
// L1 status (GET /v1/blocks/{n}/status: sealed → posted in batch N → final), the latest L1
// messages (deposits credited, forced withdrawals) and the solvency figures (GET /v1/solvency).
import { get, getOrNull } from "./api.js";
import { accountLink, amount, blockLink, el, fail, short, table, time, usd } from "./fmt.js";

const SHOWN = 12, MESSAGES = 10, POLL_MS = 5000;

function statusText(s) {
  if (!s) return "…";
  if (s.status === "sealed") return "sealed";
  return `${s.status} · batch ${s.batch}`;
}

export function chain(root, stream, focus) {
  const rows = new Map(); // number -> {block, status}
  const tbody = el("tbody", {}), solvencyEl = el("div", { id: "solvency" }), messagesEl = el("div", { id: "l1-messages" });
  const errorEl = el("div", {});
  const messages = new Map(); // nonce -> L1 message view
  let timer = null, closed = false;

  function draw() {
    const ns = [...rows.keys()].sort((a, b) => b - a);
    tbody.replaceChildren(...ns.map((n) => {
      const { block, status } = rows.get(n);
      const h = block.header;
      const txs = block.txs.length === 0 ? "0" : el("details", {}, el("summary", {}, String(block.txs.length)),
        el("div", { class: "mono left" }, block.txs.map((t) => el("div", { title: t }, short(t)))));
      return el("tr", { "data-block": n, "data-status": status?.status || "sealed", class: n === focus ? "focus" : null },
        el("td", {}, blockLink(n)), el("td", {}, time(h.timestamp)), el("td", { class: "left" }, txs),
        el("td", { class: "mono left", title: h.hash }, short(h.hash)),
        el("td", { class: "mono left", title: h.stateRoot }, short(h.stateRoot)),
        el("td", { class: "mono left", title: h.txRoot }, short(h.txRoot)),
        el("td", { class: "mono left", title: h.withdrawalRoot }, short(h.withdrawalRoot)),
        el("td", {}, String(h.l1DepositCursor ?? "–")),
        el("td", { class: "left l1 status-" + (status?.status || "sealed") }, statusText(status)));
    }));
  }

  async function refreshStatus(n) {
    try {
      const r = rows.get(n);
      if (r) { r.status = await get(`/blocks/${n}/status`); if (!closed) draw(); }
    } catch (e) { console.warn("status", n, e.message); }
  }

  async function addBlock(n) {
    try {
      const block = await get(`/blocks/${n}`);
      rows.set(n, { block, status: rows.get(n)?.status || null });
      const ns = [...rows.keys()].sort((a, b) => b - a);
      for (const old of ns.slice(SHOWN)) if (old !== focus) rows.delete(old);
      if (!closed) draw();
      await refreshStatus(n);
    } catch (e) { console.warn("block", n, e.message); }
  }

  async function loadBlocks() {
    try {
      const latest = (await get("/blocks/latest")).header.number;
      const want = [];
      for (let n = latest; n >= 0 && n > latest - SHOWN; n--) want.push(n);
      if (focus !== undefined && Number.isInteger(focus) && focus >= 0 && focus <= latest) want.push(focus);
      errorEl.replaceChildren();
      await Promise.all(want.filter((n) => !rows.has(n)).map(addBlock));
    } catch (e) { errorEl.replaceChildren(fail(e)); }
  }

  function drawSolvency(s) {
    const l1 = s.l1;
    const verdict = !l1 ? "no L1 follower on this node: the Bridge's balance is not read"
      : l1.covered === null ? `Bridge balance unknown (${l1.error})`
        : l1.covered ? "covered: the Bridge holds at least what L2 owes" : "NOT covered: the Bridge holds less than L2 owes";
    solvencyEl.replaceChildren(table(["as of block", "Σ collateral", "shortfall", "owed", "Bridge balance", "insurance fund", "L1 messages processed"],
      [el("tr", {}, el("td", {}, blockLink(s.block)), el("td", {}, usd(s.collateralTotal)), el("td", {}, usd(s.shortfall)),
        el("td", { "data-testid": "owed" }, usd(s.owed)), el("td", { "data-testid": "bridge-balance" }, l1 ? usd(l1.bridgeBalance) : "–"),
        el("td", {}, usd(s.insuranceFund?.balance)), el("td", {}, String(s.l1MessageCursor)))]),
    el("p", { class: "note " + (l1 && l1.covered === false ? "error" : ""), "data-testid": "solvency-verdict" }, verdict,
      ". The Bridge also holds unpaid withdrawals and deposits not credited yet; the full check replayed from L1 is optrollup monitor's."));
  }

  function drawMessages() {
    const ms = [...messages.values()].sort((a, b) => Number(b.nonce) - Number(a.nonce));
    messagesEl.replaceChildren(ms.length === 0 ? el("p", { class: "note" }, "No L1 messages processed yet.")
      : table(["nonce", "kind", "account", "amount", "status", "L2 block"], ms.map((m) =>
        el("tr", { "data-l1-message": m.nonce }, el("td", {}, String(m.nonce)), el("td", { class: "left" }, m.kind),
          el("td", { class: "left" }, m.account ? accountLink(m.account) : "–"), el("td", {}, usd(m.amount)),
          el("td", { class: "left" }, m.status ?? "–"), el("td", {}, m.block === null || m.block === undefined ? "–" : blockLink(m.block))))));
  }

  async function loadSolvency() {
    try {
      const s = await get("/solvency");
      drawSolvency(s);
      const want = [];
      for (let n = s.l1MessageCursor - 1; n >= 0 && n >= s.l1MessageCursor - MESSAGES; n--) if (!messages.has(n)) want.push(n);
      const got = await Promise.all(want.map((n) => getOrNull(`/l1-messages/${n}`)));
      for (const m of got) if (m) messages.set(Number(m.nonce), m);
      for (const n of [...messages.keys()]) if (n < s.l1MessageCursor - MESSAGES) messages.delete(n);
      drawMessages();
    } catch (e) { solvencyEl.replaceChildren(fail(e)); }
  }

  root.replaceChildren(el("section", { id: "chain" }, el("h1", {}, "Chain"),
    el("p", { class: "note" }, "Latest blocks, live from the stream. L1: sealed (in no batch on L1 yet) → posted (in L1 batch N) → final (the batch is final on L1)."),
    errorEl,
    el("table", { id: "blocks" }, el("thead", {}, el("tr", {},
      ["block", "time", "txs", "hash", "state root", "tx root", "withdrawal root", "L1 msgs", "L1 status"].map((h) => el("th", { class: "left" }, h)))), tbody),
    el("h2", {}, "Solvency"), solvencyEl,
    el("h2", {}, "L1 messages (deposits credited, forced withdrawals)"), messagesEl));
  const unsub = stream.subscribe("blocks", (d) => addBlock(d.header.number), loadBlocks);
  loadBlocks();
  loadSolvency();
  timer = setInterval(() => {
    for (const [n, r] of rows) if (r.status?.status !== "final") refreshStatus(n);
    loadSolvency();
  }, POLL_MS);
  return () => { closed = true; clearInterval(timer); unsub(); };
}

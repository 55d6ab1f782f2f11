// An account. Public, by address: its leaf in the state tree (collateral) and its withdrawals
// with their L1 status and the ready-to-send finalize call. Signed in (wallet.js) as that
// account: margin, positions with greeks, open orders (cancel buttons) live over the stream's
// orders.<account> channel, and an order form that signs an EIP-712 Order and POSTs it.
import { get, info } from "./api.js";
import { toChecksum } from "./crypto.js";
import { amount, blockLink, copyButton, date, el, fail, pct, scaled, short, table, toUnits, usd } from "./fmt.js";
import * as wallet from "./wallet.js";

const MAX_WITHDRAWALS = 50, POLL_MS = 10000;

function kv(rows) {
  return el("table", { class: "kv" }, el("tbody", {}, rows.map(([k, v]) =>
    el("tr", {}, el("th", { class: "left" }, k), el("td", { class: "left mono" }, v)))));
}

export function finalizeCommand(f) {
  return `cast send ${f.to} ${f.data} --rpc-url "$L1_RPC_URL" --keystore "$L1_KEYSTORE"`; // no raw key on a command line
}

function signinPanel(address) {
  const s = wallet.current();
  const panel = el("section", { id: "signin" }, el("h2", {}, "Sign in"));
  if (s) {
    panel.append(el("p", { "data-testid": "signed-in" }, "Signed in as ", el("a", { href: "#/account/" + s.account, class: "mono" }, s.account),
      s.kind === "session" ? ` with session key ${short(s.signer)}` + (s.expiry ? ` (until ${date(s.expiry)})` : "") : " with its own key",
      " ", el("button", { type: "button", id: "signout", onclick: () => wallet.signOut() }, "Sign out")));
    if (address && address.toLowerCase() !== s.account.toLowerCase()) {
      panel.append(el("p", { class: "note" }, "This page shows another account: its private figures need its own sign-in."));
    }
    return panel;
  }
  const key = el("input", { type: "password", id: "signin-key", placeholder: "private key (0x…, 64 hex digits)", autocomplete: "off", spellcheck: "false" });
  const acct = el("input", { id: "signin-account", placeholder: "account (only if the key is a session key of it)", spellcheck: "false" });
  const msg = el("p", { class: "note", "data-testid": "signin-message" },
    "The key stays in this page's memory: it signs here and is never sent. Reloading forgets it.");
  const go = (fn) => async (ev) => {
    ev.preventDefault();
    msg.className = "note";
    msg.textContent = "Signing in…";
    try {
      const got = await fn();
      key.value = "";
      if (!location.hash.endsWith(got.account)) location.hash = "#/account/" + got.account;
    } catch (e) {
      msg.className = "error";
      msg.textContent = `sign-in failed: ${e.message}`;
    }
  };
  const useKey = go(async () => wallet.signIn(key.value, acct.value.trim() || undefined));
  const session = go(() => wallet.signInWithSessionKey(key.value, 86400));
  panel.append(el("form", { id: "signin-form", onsubmit: useKey }, key, " ", acct, " ",
    el("button", { type: "submit", id: "signin-key-button" }, "Sign in with this key"), " ",
    el("button", { type: "button", id: "signin-session-button", onclick: session }, "Create a session key (24 h)")),
  el("p", { class: "note" }, "A session key: the page makes a new key, your key signs its registration once (POST /v1/session_keys), and only the new key is kept."),
  msg);
  return panel;
}

function withdrawalRow(w) {
  const f = w.finalize;
  const cmd = f ? el("div", {}, el("code", { class: "mono cmd", "data-testid": "finalize" }, finalizeCommand(f)), " ",
    copyButton(() => finalizeCommand(f)),
    el("details", {}, el("summary", {}, "raw L1 call"), el("div", { class: "mono wrap" }, `to ${f.to}`), el("div", { class: "mono wrap" }, `data ${f.data}`)))
    : w.status === "paid" ? "paid on L1" : el("span", { class: "note" }, "once its batch is final");
  return el("tr", { "data-withdrawal": w.nonce, "data-status": w.status },
    el("td", {}, w.nonce), el("td", {}, usd(w.amount)), el("td", { class: "left mono", title: w.recipient }, short(w.recipient)),
    el("td", { class: "left status-" + w.status }, w.status), el("td", {}, blockLink(w.block)),
    el("td", {}, w.batch === null ? "–" : String(w.batch)), el("td", { class: "left" }, cmd));
}

function orderForm(account, instruments, onDone) {
  const select = el("select", { name: "instrument" }, instruments.map((i) => el("option", { value: i.name }, i.name)));
  const side = el("select", { name: "side" }, el("option", { value: "buy" }, "buy"), el("option", { value: "sell" }, "sell"));
  const price = el("input", { name: "price", placeholder: "price (USDC)", inputmode: "decimal", class: "short" });
  const amt = el("input", { name: "amount", placeholder: "amount (contracts)", inputmode: "decimal", class: "short" });
  const tif = el("select", { name: "timeInForce" }, el("option", { value: "0" }, "GTC"), el("option", { value: "1" }, "IOC"), el("option", { value: "2" }, "FOK"));
  const postOnly = el("input", { type: "checkbox", name: "postOnly" });
  const result = el("p", { class: "note", "data-testid": "order-result" });
  const submit = async (ev) => {
    ev.preventDefault();
    result.className = "note";
    result.textContent = "Signing…";
    try {
      const { limits } = await info();
      const ttl = Math.min(limits.maxOrderTtl || 86400, 86400);
      const order = { account, instrument: select.value, isBuy: side.value === "buy", price: toUnits(price.value),
        amount: toUnits(amt.value), nonce: wallet.orderNonce(), expiry: String((await wallet.syncedNow()) + ttl),
        timeInForce: Number(tif.value), postOnly: postOnly.checked, reduceOnly: false };
      const r = await wallet.signAndPost("/orders", "Order", order);
      result.textContent = `${r.status}: ${r.orderHash} (filled ${amount(r.filledAmount)})`;
      result.dataset.orderHash = r.orderHash;
      onDone();
    } catch (e) {
      result.className = "error";
      result.textContent = `order rejected: ${e.message}`;
    }
  };
  return el("form", { id: "order-form", onsubmit: submit },
    select, " ", side, " ", price, " ", amt, " ", tif, " ", el("label", {}, postOnly, " post only"), " ",
    el("button", { type: "submit" }, "Sign and place"), result);
}

export function account(root, stream, param) {
  const s0 = wallet.current();
  let address = param;
  if (!address && s0) address = s0.account;
  if (address && /^0x[0-9a-fA-F]{40}$/.test(address)) address = toChecksum(address);
  const input = el("input", { id: "account-address", placeholder: "0x… account address", value: address || "", spellcheck: "false" });
  const form = el("form", { onsubmit: (ev) => { ev.preventDefault(); location.hash = "#/account/" + input.value.trim(); } },
    input, " ", el("button", { type: "submit" }, "Show"));
  const publicEl = el("div", { "data-testid": "public" }), privateEl = el("div", { id: "private" });
  const withdrawalsEl = el("div", { id: "withdrawals" });
  let closed = false, timer = null, unsubOrders = null, refreshPending = null;

  const mine = () => {
    const s = wallet.current();
    return s && address && s.account.toLowerCase() === address.toLowerCase();
  };

  async function loadPublic() {
    try {
      const p = await get(`/proofs/accounts/${encodeURIComponent(address)}`);
      publicEl.replaceChildren(kv([["account", p.account], ["collateral (USDC)", usd(p.collateral)], ["as of block", blockLink(p.block)],
        ["pending changes", String(p.pendingChanges)], ["state root", p.stateRoot], ["leaf index", String(p.index)],
        ["positions hash", p.positionsHash]]));
    } catch (e) { publicEl.replaceChildren(fail(e)); }
  }

  async function loadWithdrawals() {
    try {
      const { withdrawals: rows } = await get(`/accounts/${encodeURIComponent(address)}/withdrawals?limit=${MAX_WITHDRAWALS}`);
      if (closed) return;
      withdrawalsEl.replaceChildren(rows.length === 0 ? el("p", { class: "note" }, "No sealed withdrawals.")
        : table(["nonce", "amount", "recipient", "status", "block", "batch", "finalize on L1"], rows.map(withdrawalRow)));
    } catch (e) { withdrawalsEl.replaceChildren(fail(e)); }
  }

  async function cancel(orderHash, button) {
    button.disabled = true;
    try {
      await wallet.signAndPost("/cancel", "Cancel", { account: address, orderHash });
      loadPrivate();
    } catch (e) {
      button.disabled = false;
      button.title = e.message;
      privateEl.prepend(el("p", { class: "error" }, `cancel failed: ${e.message}`));
    }
  }

  async function loadPrivate() {
    if (!mine()) {
      privateEl.replaceChildren(el("p", { class: "note" }, "Equity, margin, positions, open orders and order entry need a sign-in as this account (private reads are signed, sequencer/api/auth.py)."));
      return;
    }
    try {
      const [a, instruments] = await Promise.all([get(`/accounts/${address}`, await wallet.authHeaders()), get("/instruments")]);
      if (closed) return;
      const positions = a.positions.length === 0 ? el("p", { class: "note" }, "No positions.")
        : table(["instrument", "amount", "mark", "IV", "Δ", "Γ", "vega", "θ"], a.positions.map((p) => {
          const g = p.greeks || {};
          return el("tr", { "data-position": p.instrument }, el("td", { class: "left" }, el("a", { href: "#/instrument/" + encodeURIComponent(p.instrument) }, p.instrument)),
            el("td", {}, amount(p.amount)), el("td", {}, usd(p.mark)), el("td", {}, pct(p.iv)),
            el("td", {}, scaled(g.delta, 3)), el("td", {}, scaled(g.gamma, 5)), el("td", {}, usd(g.vega)), el("td", {}, usd(g.theta)));
        }), { id: "positions" });
      const orders = a.openOrders.length === 0 ? el("p", { class: "note" }, "No open orders.")
        : table(["instrument", "side", "price", "amount", "remaining", "expiry", "hash", ""], a.openOrders.map((o) => {
          const b = el("button", { type: "button", "data-testid": "cancel" }, "Cancel");
          b.addEventListener("click", () => cancel(o.orderHash, b));
          return el("tr", { "data-order": o.orderHash }, el("td", { class: "left" }, o.instrument), el("td", { class: o.isBuy ? "bid" : "ask" }, o.isBuy ? "buy" : "sell"),
            el("td", {}, usd(o.price)), el("td", {}, amount(o.amount)), el("td", {}, amount(o.remaining)), el("td", {}, date(o.expiry)),
            el("td", { class: "mono", title: o.orderHash }, short(o.orderHash)), el("td", {}, b));
        }), { id: "open-orders" });
      const keep = privateEl.querySelector("#order-form");
      privateEl.replaceChildren(
        kv([["collateral", usd(a.collateral)], ["equity", usd(a.equity)], ["initial margin", usd(a.initialMargin)],
          ["maintenance margin", usd(a.maintenanceMargin)], ["available", usd(a.available)], ["margin mode", a.marginMode],
          ["withdrawal nonce", a.withdrawalNonce], ["in liquidation since", a.liquidationStartedAt ? date(a.liquidationStartedAt) : "–"],
          ["frozen", a.frozen ? "yes" : "no"]]),
        el("h2", {}, "Positions"), positions, el("h2", {}, "Open orders"), orders,
        el("h2", {}, "Place an order"), keep || orderForm(address, instruments.instruments, () => scheduleRefresh()));
    } catch (e) {
      if (!closed) privateEl.replaceChildren(fail(e));
    }
  }

  function scheduleRefresh() {
    if (refreshPending) return;
    refreshPending = setTimeout(() => { refreshPending = null; if (!closed) loadPrivate(); }, 200);
  }


  root.replaceChildren(el("section", { id: "account", "data-account": address || "" }, el("h1", {}, "Account"), form,
    signinPanel(address),
    address ? [el("h2", {}, "Public (the account's leaf)"), publicEl, el("h2", {}, "Private"), privateEl,
      el("h2", {}, "Withdrawals"), withdrawalsEl] : el("p", { class: "note" }, "Enter an address, or sign in.")));
  if (address) {
    loadPublic();
    loadPrivate();
    loadWithdrawals();
    if (mine()) {
      unsubOrders = stream.subscribe("orders." + address, () => scheduleRefresh(), () => scheduleRefresh(),
        async () => ({ auth: await wallet.auth() }));
    }
    timer = setInterval(() => { loadPublic(); loadWithdrawals(); if (mine()) loadPrivate(); }, POLL_MS);
  }
  return () => {
    closed = true;
    clearInterval(timer);
    clearTimeout(refreshPending);
    if (unsubOrders) unsubOrders();
  };
}

// The page's router (hash routes) and its one WebSocket: #/markets, #/instrument/<name>,
// #/chain[/<block>], #/account[/<address>], #/channels[/<account or id>], #/liquidations.
// Each view renders into <main> and returns its cleanup (timers, stream subscriptions).
import { Stream } from "./api.js";
import { account } from "./account.js";
import { chain } from "./chain.js";
import { channels } from "./channels.js";
import { instrument } from "./instrument.js";
import { liquidations } from "./liquidations.js";
import { markets } from "./markets.js";
import * as wallet from "./wallet.js";

const view = document.getElementById("view");
const stream = new Stream((live) => {
  const c = document.getElementById("conn");
  c.textContent = live ? "live" : "offline";
  c.classList.toggle("live", live);
});
stream.on("control", (d) => { if (d.op === "error") console.warn("stream:", d.error?.code, d.error?.message); });
stream.on("heartbeat", (d) => {
  document.getElementById("head").textContent = `block ${d.head}`;
  if (d.time) wallet.setNodeTime(d.time);
});

function whoami(s) {
  const w = document.getElementById("whoami");
  if (!w) return;
  w.replaceChildren();
  if (s) {
    const a = document.createElement("a");
    a.href = "#/account/" + s.account;
    a.textContent = s.account.slice(0, 8) + "…" + s.account.slice(-4);
    a.title = `signed in as ${s.account}` + (s.kind === "session" ? ` (session key ${s.signer})` : "");
    w.append(a);
  }
}

let cleanup = () => {};

export function route() {
  cleanup();
  cleanup = () => {};
  const [, page = "markets", ...rest] = (location.hash || "#/markets").split("/");
  const arg = rest.length ? rest.join("/") : undefined;
  const param = arg === undefined || arg === "" ? undefined : decodeURIComponent(arg);
  const tab = page === "instrument" ? "markets" : page;
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === "#/" + tab);
  }
  try {
    if (page === "instrument" && param) cleanup = instrument(view, stream, param);
    else if (page === "chain") cleanup = chain(view, stream, param === undefined ? undefined : Number(param));
    else if (page === "account") cleanup = account(view, stream, param);
    else if (page === "channels") cleanup = channels(view, stream, param);
    else if (page === "liquidations") cleanup = liquidations(view, stream);
    else cleanup = markets(view, stream);
  } catch (e) {
    console.warn("view", page, e);
    view.textContent = `error: ${e.message}`;
  }
}

wallet.onChange((s) => { whoami(s); route(); });
window.addEventListener("hashchange", route);
route();

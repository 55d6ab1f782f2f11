// State channels (docs/channels.md): the rollup's channels (GET /v1/channels, newest first,
// optionally of one account), or one by id (GET /v1/channels/{id}).
import { get } from "./api.js";
import { accountLink, date, el, fail, short, table, usd } from "./fmt.js";

const POLL_MS = 10000;

function row(c) {
  return el("tr", { "data-channel": c.channelId, "data-status": c.status },
    el("td", { class: "mono left", title: c.channelId }, el("a", { href: "#/channels/" + c.channelId }, short(c.channelId))),
    el("td", { class: "left" }, accountLink(c.a)), el("td", { class: "left" }, accountLink(c.b)),
    el("td", {}, usd(c.depositA)), el("td", {}, usd(c.depositB)), el("td", {}, date(c.openedAt)),
    el("td", {}, `${c.challengePeriod} s`), el("td", { class: "left status-" + c.status }, c.status),
    el("td", {}, c.closedTurnNum ?? "–"));
}

const HEADERS = ["channel", "a", "b", "deposit a", "deposit b", "opened", "challenge period", "status", "closed at turn"];

export function channels(root, stream, param) {
  const listEl = el("div", {}), detailEl = el("div", {});
  const filter = el("input", { id: "channels-account", placeholder: "0x… account (party or signer), or a channel id", spellcheck: "false",
    value: param || "" });
  let closed = false, timer = null;

  async function load() {
    const q = filter.value.trim();
    try {
      if (/^0x[0-9a-fA-F]{64}$/.test(q)) {
        const c = await get(`/channels/${q}`);
        if (closed) return;
        listEl.replaceChildren(table(HEADERS, [row(c)]));
        detailEl.replaceChildren(el("pre", { class: "mono" }, JSON.stringify(c, null, 2)));
        return;
      }
      const path = q ? `/channels?account=${encodeURIComponent(q)}` : "/channels";
      const { channels: cs } = await get(path);
      if (closed) return;
      detailEl.replaceChildren();
      listEl.replaceChildren(cs.length === 0 ? el("p", { class: "note", "data-testid": "no-channels" }, "No channels.")
        : table(HEADERS, cs.map(row)));
    } catch (e) { if (!closed) listEl.replaceChildren(fail(e)); }
  }

  root.replaceChildren(el("section", { id: "channels" }, el("h1", {}, "Channels"),
    el("p", { class: "note" }, "Two parties trade off-rollup and settle the net here; a channel is open, closed (co-signed final state) or concluded (on L1)."),
    el("form", { onsubmit: (ev) => { ev.preventDefault(); location.hash = "#/channels/" + filter.value.trim(); } },
      filter, " ", el("button", { type: "submit" }, "Show")),
    listEl, detailEl));
  load();
  timer = setInterval(load, POLL_MS);
  return () => { closed = true; clearInterval(timer); };
}

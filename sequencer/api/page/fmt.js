// Formatting of the API's integers (design.md: money in collateral base units, 6 decimals).
export const SCALE = 1e6;

export function usd(x, digits = 2) {
  if (x === null || x === undefined) return "–";
  return (Number(x) / SCALE).toFixed(digits);
}

export function amount(x) {
  if (x === null || x === undefined) return "–";
  return String(Number(x) / SCALE);
}

export function pct(iv) { // iv is annualised × 10^6
  return iv === null || iv === undefined ? "–" : (iv / 1e4).toFixed(1) + "%";
}

export function scaled(x, digits = 3) { // delta, gamma: × 10^6; vega, theta: base units
  return x === null || x === undefined ? "–" : (x / SCALE).toFixed(digits);
}

export function date(ts) {
  return new Date(ts * 1000).toISOString().slice(0, 16).replace("T", " ") + "Z";
}

export function time(ts) {
  return new Date(ts * 1000).toISOString().slice(11, 19);
}

export function short(hex) {
  return hex ? hex.slice(0, 10) + "…" + hex.slice(-6) : "–";
}

// el("td", {class: "bid"}, "1.5"): an element; strings become text nodes (never HTML).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// "1.5" -> "1500000": a decimal number of USDC or contracts in base units (6 decimals), exactly
export function toUnits(text) {
  const m = String(text).trim().match(/^(\d*)(?:\.(\d*))?$/);
  if (!m || (m[1] === "" && !m[2])) throw new Error(`not a decimal number: ${text}`);
  const frac = (m[2] || "");
  if (frac.length > 6) throw new Error(`at most 6 decimals: ${text}`);
  return (BigInt(m[1] || "0") * 1000000n + BigInt(frac.padEnd(6, "0"))).toString();
}

// a button that copies `text()` to the clipboard (falls back to selecting a textarea)
export function copyButton(text, label = "Copy") {
  const b = el("button", { type: "button", class: "copy" }, label);
  b.addEventListener("click", async () => {
    const t = typeof text === "function" ? text() : text;
    try {
      await navigator.clipboard.writeText(t);
    } catch {
      const ta = el("textarea", {}, t);
      document.body.append(ta);
      ta.select();
      try { document.execCommand("copy"); } catch { /* nothing more to try */ }
      ta.remove();
    }
    b.textContent = "Copied";
    setTimeout(() => { b.textContent = label; }, 1500);
  });
  return b;
}

export function fail(e) { return el("p", { class: "error" }, `error: ${e.message}`); }

export function blockLink(n) { return el("a", { href: "#/chain/" + n }, String(n)); }

export function accountLink(a) { return el("a", { href: "#/account/" + a, class: "mono", title: a }, short(a)); }

// a table: headers and rows of cells (each a string, a Node, or an array of those)
export function table(headers, rows, attrs = {}) {
  return el("table", attrs,
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

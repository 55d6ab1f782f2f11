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

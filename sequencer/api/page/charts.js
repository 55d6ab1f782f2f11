// The page's charts, drawn with uPlot (npm package `uplot`, pinned in package.json, served by the
// node from node_modules at /page/vendor/): each expiry's smile, an underlying's ATM term
// structure, an instrument's cumulative depth. Without uPlot installed each chart is a note.
import { el } from "./fmt.js";

const VENDOR = "/page/vendor/";
const MISSING = "Chart library not installed: run `npm ci` at the node's repository root.";
let uPlot; // undefined: loading; null: not installed; else the constructor
let loading;

// uPlot, imported once for every chart (and its stylesheet, before the first chart draws)
function load() {
  loading ??= import(VENDOR + "uPlot.esm.js").then(
    (m) => new Promise((done) => {
      const css = el("link", { rel: "stylesheet", href: VENDOR + "uPlot.min.css" });
      css.onload = css.onerror = () => done((uPlot = m.default));
      document.head.append(css);
    }),
    () => { uPlot = null; });
  return loading;
}

// A figure (data-testid = testid) holding one uPlot chart, kept across renders: set() its data.
class Chart {
  constructor(testid, caption, options) {
    this.box = el("div", { class: "plot" });
    this.note = el("span", { class: "note" });
    this.el = el("figure", { class: "chart", "data-testid": testid }, this.box, el("figcaption", {}, caption, " ", this.note));
    this.options = options; // (uPlot) -> uPlot options
    this.plot = this.data = null;
    load().then(() => this.draw());
  }

  // data: uPlot's [xs, ...ys] (xs ascending, null for no value); note: shown in the caption
  set(data, note = "") {
    const same = JSON.stringify([data, note]);
    if (same === this.same) return; // unchanged (a book delta re-renders the markets view)
    this.same = same;
    this.data = data;
    this.note.textContent = note;
    this.draw();
  }

  draw() {
    if (this.gone || uPlot === undefined || this.data === null) return;
    if (uPlot === null) this.box.replaceChildren(el("p", { class: "note missing-lib" }, MISSING));
    else if (this.plot) this.plot.setData(this.data);
    else this.plot = new uPlot(this.options(uPlot), this.data, this.box);
  }

  destroy() {
    this.gone = true;
    this.plot?.destroy();
  }
}

const FONT = "11px system-ui, sans-serif";
const axis = (label, values, size = 40) => ({
  label, size, ...(values ? { values } : {}), font: FONT, labelFont: FONT, labelSize: 16, stroke: "#6a737d",
  grid: { stroke: "#eee", width: 1 }, ticks: { stroke: "#ddd", width: 1 } });
const pct = (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%");
const ivAxis = axis("implied vol", (u, vs) => vs.map((v) => (v * 100).toFixed(0) + "%"), 48);
// IV axis range: the data with some room, at least 10 vol points tall (a flat smile would
// otherwise fill the whole height or stretch to 0-100 %)
const ivRange = (u, min, max) => {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  const mid = (min + max) / 2, half = Math.max((max - min) * 0.6, 0.05);
  return [Math.max(0, mid - half), mid + half];
};
const line = (label, stroke, more = {}) => ({ label, stroke, width: 1.5, value: (u, v) => pct(v), points: { size: 5, fill: stroke }, ...more });
const opts = (width, height, xLabel, xValue, yAxis, series, yRange) => ({
  width, height, cursor: { drag: { x: false, y: false } },
  scales: { x: { time: false }, y: yRange ? { range: yRange } : {} },
  axes: [axis(xLabel), yAxis],
  series: [{ label: xLabel, value: (u, v) => (v === null || v === undefined ? "–" : xValue(v)) }, ...series],
});

// each expiry's smile: IV of the calls' and the puts' marks against strike (USD)
export function smileChart() {
  return new Chart("smile", "smile: IV vs strike", () => opts(340, 210, "strike (USD)", (v) => v.toFixed(0), ivAxis,
    [line("calls", "#0b57d0"), line("puts", "#9a6700", { dash: [5, 4] })], ivRange));
}

// rows: [{strike: USD, call: IV or NaN, put: IV or NaN}] (IV a fraction: 0.8 = 80%)
export function smileData(rows) {
  const r = [...rows].sort((a, b) => a.strike - b.strike);
  const iv = (v) => (Number.isFinite(v) ? v : null);
  const data = [r.map((x) => x.strike), r.map((x) => iv(x.call)), r.map((x) => iv(x.put))];
  return [data, data[1].concat(data[2]).some((v) => v !== null) ? "" : "(no marks yet)"];
}

// an underlying's ATM term structure: ATM IV against days to expiry
export function termChart() {
  return new Chart("term-structure", "ATM vol term structure", () => opts(340, 210, "days to expiry", (v) => v.toFixed(1) + " d", ivAxis,
    [line("ATM IV", "#0b57d0")], ivRange));
}

// points: [{days, iv}]
export function termData(points) {
  const p = points.filter((x) => Number.isFinite(x.iv) && Number.isFinite(x.days)).sort((a, b) => a.days - b.days);
  return [[p.map((x) => x.days), p.map((x) => x.iv)], p.length ? "" : "(no marks yet)"];
}

// ATM implied vol of each expiry: IV interpolated linearly in strike at spot (the nearest
// strike's IV when spot is outside the listed strikes). rows: [{strike, iv}] (USD, fraction).
export function atmVol(rows, spot) {
  const pts = rows.filter((r) => Number.isFinite(r.iv)).sort((a, b) => a.strike - b.strike);
  if (pts.length === 0 || !Number.isFinite(spot)) return NaN;
  if (spot <= pts[0].strike) return pts[0].iv;
  for (let i = 1; i < pts.length; i++) {
    const [a, b] = [pts[i - 1], pts[i]];
    if (spot <= b.strike) return a.iv + ((b.iv - a.iv) * (spot - a.strike)) / (b.strike - a.strike || 1);
  }
  return pts[pts.length - 1].iv;
}

// an order book's cumulative depth, stepped: bids out to the left of the spread, asks to the right
export function depthChart() {
  const amount = (u, v) => (v === null || v === undefined ? "–" : String(+v.toFixed(6)));
  const side = (label, stroke, fill, align) => ({ label, stroke, fill, width: 1.5, value: amount, points: { show: false },
    paths: (u, ...a) => uPlot.paths.stepped({ align, extend: true })(u, ...a) });
  return new Chart("depth", "cumulative depth", () => opts(420, 240, "price (USD)", (v) => v.toFixed(2),
    axis("amount (contracts)", null, 48),
    [side("bids", "#116329", "rgba(17, 99, 41, .2)", -1), side("asks", "#b3261e", "rgba(179, 38, 30, .2)", 1)],
    (u, min, max) => [0, max > 0 ? max * 1.1 : 1]));
}

// bids, asks: [[price, amount], ...] best first (numbers: USD, contracts)
export function depthData(bids, asks) {
  const cum = (levels) => { let t = 0; return levels.map(([p, a]) => [p, (t += a)]); };
  const b = cum(bids).reverse(), a = cum(asks); // each ascending in price; every bid below every ask
  const data = [[...b, ...a].map(([p]) => p), [...b.map(([, c]) => c), ...a.map(() => null)],
    [...b.map(() => null), ...a.map(([, c]) => c)]];
  return [data, b.length + a.length ? "" : "(empty book)"];
}

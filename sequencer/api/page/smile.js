// The volatility smile of one expiry: IV against strike, as a small SVG (no chart library).
const NS = "http://www.w3.org/2000/svg";

function node(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// points: [{strike: USD number, iv: fraction (0.8 = 80%)}]
export function smile(points, width = 280, height = 160) {
  const svg = node("svg", { class: "smile", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const pts = points.filter((p) => Number.isFinite(p.iv)).sort((a, b) => a.strike - b.strike);
  svg.append(node("title", {}, "implied volatility vs strike"));
  if (pts.length === 0) {
    svg.append(node("text", { x: 10, y: height / 2 }, "no marks yet"));
    return svg;
  }
  const pad = { l: 36, r: 8, t: 8, b: 20 };
  let [x0, x1] = [pts[0].strike, pts[pts.length - 1].strike];
  let y0 = Math.min(...pts.map((p) => p.iv)), y1 = Math.max(...pts.map((p) => p.iv));
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 - y0 < 0.02) { y0 -= 0.01; y1 += 0.01; }
  const X = (v) => pad.l + ((v - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const Y = (v) => height - pad.b - ((v - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  svg.append(node("line", { x1: pad.l, y1: height - pad.b, x2: width - pad.r, y2: height - pad.b, stroke: "#ccc" }));
  svg.append(node("line", { x1: pad.l, y1: pad.t, x2: pad.l, y2: height - pad.b, stroke: "#ccc" }));
  svg.append(node("text", { x: pad.l, y: height - 6 }, String(x0)));
  svg.append(node("text", { x: width - pad.r, y: height - 6, "text-anchor": "end" }, String(x1)));
  svg.append(node("text", { x: 2, y: pad.t + 8 }, (y1 * 100).toFixed(0) + "%"));
  svg.append(node("text", { x: 2, y: height - pad.b }, (y0 * 100).toFixed(0) + "%"));
  svg.append(node("polyline", { class: "line", points: pts.map((p) => `${X(p.strike)},${Y(p.iv)}`).join(" ") }));
  for (const p of pts) {
    const c = node("circle", { class: "pt", cx: X(p.strike), cy: Y(p.iv), r: 2.5 });
    c.append(node("title", {}, `${p.strike}: ${(p.iv * 100).toFixed(1)}%`));
    svg.append(c);
  }
  return svg;
}
